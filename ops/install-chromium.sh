#!/usr/bin/env bash
# Prints "CHROMIUM CHROMEDRIVER": the headless browser and its WebDriver for the review
# screens' browser tests, installing Debian's `chromium` and `chromium-driver` when absent.
#
# Order: $SV0_CHROMIUM and $SV0_CHROMEDRIVER if both are set; else `chromium` and
# `chromedriver` on PATH; else `apt-get install` (as root, or with passwordless sudo). A machine
# where neither works fails here, loudly: the browser tests never skip.
set -euo pipefail

if [ -n "${SV0_CHROMIUM:-}" ] && [ -n "${SV0_CHROMEDRIVER:-}" ]; then
  echo "$SV0_CHROMIUM $SV0_CHROMEDRIVER"
  exit 0
fi
find_pair() {
  local browser driver
  browser="$(command -v chromium || command -v chromium-browser || true)"
  driver="$(command -v chromedriver || true)"
  if [ -n "$browser" ] && [ -n "$driver" ]; then
    echo "$browser $driver"
    return 0
  fi
  return 1
}
if find_pair; then
  exit 0
fi
echo "installing chromium and chromium-driver with apt-get (the browser tests need them)" >&2
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "error: chromium and chromedriver are missing and this user cannot install them; install Debian's chromium and chromium-driver, or set SV0_CHROMIUM and SV0_CHROMEDRIVER" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
if ! find_pair; then
  echo "error: chromium or chromedriver is still missing after apt-get install" >&2
  exit 1
fi
