#!/bin/sh
# ServerInfo latency and throughput of gitaly against the floor: a bare
# grpc-core server answering every call with an empty message, on the same
# kind of unix socket, driven by the same C client (bench/load_client.c) at
# 1, 8 and 64 calls in flight. Prints both and the ratios gitaly / floor.
# Usage: bench/serverinfo_floor.sh <builddir>   (BENCH_SECONDS, default 5)
set -e
BUILD=$(cd "${1:-build}" && pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
. "$(dirname "$0")/lib.sh"
bench_build_helpers

scratch=$(mktemp -d /tmp/gbench.XXXXXX)
ECHO_PID=
GITALY_PID=
cleanup() { set +e; bench_stop "$GITALY_PID"; bench_stop "$ECHO_PID"; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

bench_start_gitaly "$scratch/g"
"$HELPERS/echo_server" "$scratch/echo.sock" "$(nproc)" 2>/dev/null &
ECHO_PID=$!
while [ ! -S "$scratch/echo.sock" ]; do sleep 0.05; done

method=/gitaly.ServerService/ServerInfo
echo "ServerInfo over unix socket, ${SECONDS_PER_RUN}s per run, $(nproc) CPUs"
printf '%-6s %-7s %10s %10s %10s\n' conc server rps p50_us p99_us
for conc in 1 8 64; do
	f=$("$HELPERS/load_client" "unix:$scratch/echo.sock" "$method" "$conc" "$SECONDS_PER_RUN")
	g=$("$HELPERS/load_client" "unix:$GITALY_SOCK" "$method" "$conc" "$SECONDS_PER_RUN")
	echo "$f" | awk -v c="$conc" '{for(i=1;i<=NF;i++){split($i,a,"=");v[a[1]]=a[2]}
		printf "%-6s %-7s %10s %10s %10s\n", c, "floor", v["rps"], v["p50_us"], v["p99_us"]}'
	echo "$g" | awk -v c="$conc" '{for(i=1;i<=NF;i++){split($i,a,"=");v[a[1]]=a[2]}
		printf "%-6s %-7s %10s %10s %10s\n", c, "gitaly", v["rps"], v["p50_us"], v["p99_us"]}'
	echo "$f $g" | awk -v c="$conc" '{n=0;for(i=1;i<=NF;i++){split($i,a,"=");
		if(a[1]=="conc")n++; v[n,a[1]]=a[2]}
		printf "%-6s %-7s %9.2fx %9.2fx %9.2fx   (gitaly/floor; rps: lower is worse)\n", c, "ratio",
		v[2,"rps"]/v[1,"rps"], v[2,"p50_us"]/v[1,"p50_us"], v[2,"p99_us"]/v[1,"p99_us"]}'
	case "$g" in *"errors=0 "*) ;; *) echo "gitaly run had errors: $g" >&2; exit 1;; esac
done
