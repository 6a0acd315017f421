#!/bin/sh
# Unary-call latency and throughput of gitaly against the floor: a bare
# grpc-core server answering every call with an empty message, on the same
# kind of unix socket, driven by the same C client (bench/load_client.c) at
# 1, 8 and 64 calls in flight. Prints both and the ratios gitaly / floor for
# two methods: grpc.health.v1.Health/Check (pure RPC runtime: no work, no
# access-log line) and gitaly.ServerService/ServerInfo (per storage: stat,
# writeability probe, statfs, filesystem id, plus an access-log line).
# Each cell is the median of BENCH_ROUNDS runs (default 5) in which floor and
# gitaly alternate, so a burst of load from elsewhere on the machine hits
# both sides alike and one noisy run does not decide the figure.
# Usage: bench/serverinfo_floor.sh <builddir>
#   BENCH_SECONDS: length of each run (default 3); BENCH_ROUNDS (default 5);
#   BENCH_METHODS: space-separated methods (default: both above);
#   BENCH_CONC: concurrencies (default "1 8 64").
set -e
BUILD=$(cd "${1:-build}" && pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-5}
METHODS=${BENCH_METHODS:-/grpc.health.v1.Health/Check /gitaly.ServerService/ServerInfo}
CONCS=${BENCH_CONC:-1 8 64}
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

# field <line> <name>: the value of name=value in a load_client line
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# median of the numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }

echo "unix socket, ${ROUNDS} rounds x ${SECONDS_PER_RUN}s per run, $(nproc) CPUs, load average: $(cut -d" " -f1-3 /proc/loadavg)"
for method in $METHODS; do
echo
echo "$method (medians of $ROUNDS alternating rounds)"
printf '%-6s %-7s %10s %10s %10s\n' conc server rps p50_us p99_us
for conc in $CONCS; do
	: >"$scratch/floor" ; : >"$scratch/gitaly"
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		f=$("$HELPERS/load_client" "unix:$scratch/echo.sock" "$method" "$conc" "$SECONDS_PER_RUN")
		g=$("$HELPERS/load_client" "unix:$GITALY_SOCK" "$method" "$conc" "$SECONDS_PER_RUN")
		case "$g" in *"errors=0 "*) ;; *) echo "gitaly run had errors: $g" >&2; exit 1;; esac
		echo "$f" >>"$scratch/floor"
		echo "$g" >>"$scratch/gitaly"
		r=$((r + 1))
	done
	for side in floor gitaly; do
		for k in rps p50_us p99_us; do
			while read -r line; do field "$line" $k; done <"$scratch/$side" | median >"$scratch/$side.$k"
		done
		printf '%-6s %-7s %10s %10s %10s\n' "$conc" "$side" "$(cat "$scratch/$side.rps")" \
			"$(cat "$scratch/$side.p50_us")" "$(cat "$scratch/$side.p99_us")"
	done
	awk -v c="$conc" -v fr="$(cat "$scratch/floor.rps")" -v gr="$(cat "$scratch/gitaly.rps")" \
		-v f5="$(cat "$scratch/floor.p50_us")" -v g5="$(cat "$scratch/gitaly.p50_us")" \
		-v f9="$(cat "$scratch/floor.p99_us")" -v g9="$(cat "$scratch/gitaly.p99_us")" \
		'BEGIN {printf "%-6s %-7s %9.2fx %9.2fx %9.2fx   (gitaly/floor; rps: lower is worse)\n", c, "ratio", gr/fr, g5/f5, g9/f9}'
done
done
echo
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
