#!/bin/sh
# `make bench`: runs every benchmark against the given build directory.
# Usage: bench/run.sh <builddir> [serverinfo_floor|rss|browse|packcache|transport ...]
set -e
dir=$(dirname "$0")
BUILD=${1:-build}
shift 2>/dev/null || true
[ -x "$BUILD/bin/gitaly" ] || { echo "no $BUILD/bin/gitaly; run make build" >&2; exit 1; }
which="${*:-serverinfo_floor rss browse packcache transport}"
for b in $which; do
	echo "== $b"
	"$dir/$b.sh" "$BUILD"
done
