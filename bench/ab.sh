#!/bin/sh
# A/B comparison of two gitaly builds against the same floor, for deciding
# between variants on a noisy machine: the floor (bench/echo_server.c), build
# A and build B are started once, then driven in turn, round after round, by
# the same client (bench/load_client.c), so a burst of load from elsewhere
# hits all three alike. Prints the median rps/p50/p99 per side and the p50
# ratios to the floor.
# Usage: bench/ab.sh <build-A> <build-B>
#   BENCH_SECONDS (default 2), BENCH_ROUNDS (default 5),
#   BENCH_METHODS (default: ServerInfo), BENCH_CONC (default "1 8 64").
set -e
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-2}
ROUNDS=${BENCH_ROUNDS:-5}
METHODS=${BENCH_METHODS:-/gitaly.ServerService/ServerInfo}
CONCS=${BENCH_CONC:-1 8 64}
BUILD=$A
. "$(dirname "$0")/lib.sh"
bench_build_helpers

scratch=$(mktemp -d /tmp/gbench.XXXXXX)
ECHO_PID=
A_PID=
B_PID=
cleanup() { set +e; bench_stop "$A_PID"; bench_stop "$B_PID"; bench_stop "$ECHO_PID"; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

BUILD=$A bench_start_gitaly "$scratch/a"
A_PID=$GITALY_PID
A_SOCK=$GITALY_SOCK
BUILD=$B bench_start_gitaly "$scratch/b"
B_PID=$GITALY_PID
B_SOCK=$GITALY_SOCK
"$HELPERS/echo_server" "$scratch/echo.sock" "$(nproc)" 2>/dev/null &
ECHO_PID=$!
while [ ! -S "$scratch/echo.sock" ]; do sleep 0.05; done

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }

echo "A=$A B=$B"
echo "${ROUNDS} rounds x ${SECONDS_PER_RUN}s, $(nproc) CPUs, load average: $(cut -d" " -f1-3 /proc/loadavg)"
for method in $METHODS; do
	echo
	echo "$method"
	printf '%-6s %-6s %10s %10s %10s %10s\n' conc side rps p50_us p99_us p50/floor
	for conc in $CONCS; do
		: >"$scratch/floor"; : >"$scratch/A"; : >"$scratch/B"
		r=0
		while [ $r -lt "$ROUNDS" ]; do
			"$HELPERS/load_client" "unix:$scratch/echo.sock" "$method" "$conc" "$SECONDS_PER_RUN" >>"$scratch/floor"
			"$HELPERS/load_client" "unix:$A_SOCK" "$method" "$conc" "$SECONDS_PER_RUN" >>"$scratch/A"
			"$HELPERS/load_client" "unix:$B_SOCK" "$method" "$conc" "$SECONDS_PER_RUN" >>"$scratch/B"
			r=$((r + 1))
		done
		f50=
		for side in floor A B; do
			for k in rps p50_us p99_us; do
				while read -r line; do field "$line" $k; done <"$scratch/$side" | median >"$scratch/$side.$k"
			done
			p50=$(cat "$scratch/$side.p50_us")
			[ -n "$f50" ] || f50=$p50
			printf '%-6s %-6s %10s %10s %10s %9.2fx\n' "$conc" "$side" "$(cat "$scratch/$side.rps")" \
				"$p50" "$(cat "$scratch/$side.p99_us")" "$(awk -v a="$p50" -v b="$f50" 'BEGIN {print a / b}')"
		done
	done
done
echo
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
