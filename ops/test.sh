#!/usr/bin/env bash
# The test command of README.md, run by CI (.ci/run) on a fresh machine with Rust.
# It prepares what the tests need, then runs formatting and lint checks and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The JetStream tests run a real nats-server: the pinned one, installed on first use.
SV0_NATS_SERVER="$(./ops/install-nats-server.sh)"
export SV0_NATS_SERVER
# The review screens' browser tests drive headless Chromium through WebDriver.
browsers="$(./ops/install-chromium.sh)"
read -r SV0_CHROMIUM SV0_CHROMEDRIVER <<< "$browsers"
export SV0_CHROMIUM SV0_CHROMEDRIVER
# ... and check every screen with axe-core (the pinned release, downloaded on first use).
SV0_AXE="$(./ops/install-axe.sh)"
export SV0_AXE
# The PKCS #11 tests keep signing keys in SoftHSM2.
if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "SoftHSM2 is missing; installing it" >&2
  if ! { apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null; }; then
    echo "error: the PKCS #11 tests need SoftHSM2 (apt-get install softhsm2)" >&2
    exit 1
  fi
fi
# The RFC 3161 tests run a real Time Stamping Authority (`openssl ts -reply`) and check what SV0
# stores with `openssl ts -verify`.
if ! command -v openssl >/dev/null 2>&1; then
  echo "openssl is missing; installing it" >&2
  if ! { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }; then
    echo "error: the timestamping tests need openssl (apt-get install openssl)" >&2
    exit 1
  fi
fi

if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "warning: rustfmt is not installed; skipping the format check" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  echo "warning: clippy is not installed; skipping the lint check" >&2
fi
# The supply chain: licences, duplicate versions (crypto above all) and sources, as deny.toml
# says, with the pinned cargo-deny (installed on first use; a failed install fails the run).
CARGO_DENY="$(./ops/install-cargo-deny.sh)"
# cargo-deny reads the metadata of every platform's crates offline: fetch them all first (a
# build downloads only this platform's).
cargo fetch --locked
"$CARGO_DENY" --offline check bans licenses sources
cargo test --workspace --locked "$@"
