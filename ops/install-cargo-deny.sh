#!/usr/bin/env bash
# Prints the path of a cargo-deny for the supply-chain check, installing the pinned one when
# needed: $SV0_CARGO_DENY if set; else the pinned version under target/tools; else
# `cargo install --locked` of that version (from crates.io) into target/tools. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

want="0.18.3"
if [ -n "${SV0_CARGO_DENY:-}" ]; then
  echo "$SV0_CARGO_DENY"
  exit 0
fi
root="target/tools/cargo-deny"
binary="$root/bin/cargo-deny"
if [ -x "$binary" ] && "$binary" --version 2>/dev/null | grep -q " $want\$"; then
  echo "$PWD/$binary"
  exit 0
fi
echo "installing cargo-deny $want into $root (cargo install --locked; a few minutes once)" >&2
cargo install --quiet --locked --version "$want" --root "$root" cargo-deny >&2
"$binary" --version >&2
echo "$PWD/$binary"
