#!/usr/bin/env bash
# Prints the path of axe-core's axe.min.js for the review screens' accessibility check,
# downloading the pinned release from the npm registry into target/tools on first use
# (hash-checked; nothing of it is committed). $SV0_AXE overrides. Fails loudly when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SV0_AXE:-}" ]; then
  echo "$SV0_AXE"
  exit 0
fi
version="4.14.1"
sha256="e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745"
dir="target/tools/axe-core-$version"
if [ -f "$dir/axe.min.js" ]; then
  echo "$PWD/$dir/axe.min.js"
  exit 0
fi
echo "installing axe-core $version from the npm registry into $dir" >&2
mkdir -p "$dir"
tarball="$dir/axe-core.tgz"
url="https://registry.npmjs.org/axe-core/-/axe-core-$version.tgz"
if command -v curl >/dev/null 2>&1; then
  curl -sSfL --retry 3 -o "$tarball" "$url"
else
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$tarball"
fi
echo "$sha256  $tarball" | sha256sum -c - >&2
tar -xzf "$tarball" -C "$dir" --strip-components=1 package/axe.min.js package/LICENSE
rm -f "$tarball"
echo "$PWD/$dir/axe.min.js"
