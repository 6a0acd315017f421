#!/bin/sh
# Memory of a gitaly with two storages: resident set size when idle after
# startup, after 1,000 ServerInfo calls and after 100,000 (growth between the
# last two would be a leak or an unbounded cache).
# Usage: bench/rss.sh <builddir>
set -e
BUILD=$(cd "${1:-build}" && pwd)
. "$(dirname "$0")/lib.sh"
bench_build_helpers

scratch=$(mktemp -d /tmp/gbench.XXXXXX)
GITALY_PID=
cleanup() { set +e; bench_stop "$GITALY_PID"; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

bench_start_gitaly "$scratch/g"
sleep 1
idle=$(rss_kib "$GITALY_PID")
"$HELPERS/load_client" "unix:$GITALY_SOCK" /gitaly.ServerService/ServerInfo count 999 >/dev/null
k1=$(rss_kib "$GITALY_PID")
"$HELPERS/load_client" "unix:$GITALY_SOCK" /gitaly.ServerService/ServerInfo count 99000 >/dev/null
k100=$(rss_kib "$GITALY_PID")
echo "gitaly RSS (KiB): idle=$idle after_1k=$k1 after_100k=$k100 growth_1k_to_100k=$((k100 - k1))"
