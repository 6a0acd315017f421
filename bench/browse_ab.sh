#!/bin/bash
# Two gitaly builds against each other on the browsing benchmark's unary
# calls, interleaved call by call on a shared machine: for each method and
# round, the empty-RPC floor, build A and build B run one after another
# for BENCH_SECONDS each. Every line gives p50/p99 and the server's CPU
# time per call (utime+stime from /proc over the run, divided by the
# calls), which swings far less with the neighbours' load than latency.
# Usage: bench/browse_ab.sh <build-A> <build-B>
#   BROWSE_CACHE: directory holding browse.git (as bench/browse.sh makes it;
#   required, copied into a scratch storage); BENCH_ROUNDS (default 3);
#   BENCH_SECONDS (default 2); BENCH_CONC (calls in flight, default 1);
#   BENCH_METHODS: comma-separated "Service/Method reqname unary|stream"
#   (default FindCommit, TreeEntry, RefExists).
set -e
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
BUILD=$B
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-2}
CONC=${BENCH_CONC:-1}
METHODS=${BENCH_METHODS:-CommitService/FindCommit find_commit unary,CommitService/TreeEntry tree_entry stream,RefService/RefExists ref_exists unary}
[ -d "$BROWSE_CACHE/browse.git" ] || { echo "BROWSE_CACHE/browse.git missing (run bench/browse.sh with BROWSE_CACHE first)" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
bench_build_helpers
if [ ! -x "$HELPERS/call_client" ] || [ "$BENCH_DIR/call_client.c" -nt "$HELPERS/call_client" ]; then
	cc -O2 -Wall -o "$HELPERS/call_client" "$BENCH_DIR/call_client.c" \
		$(pkg-config --cflags --libs grpc) -lpthread
fi
CC_="$HELPERS/call_client"

scratch=$(mktemp -d /tmp/gbench-ab.XXXXXX)
PID_A= PID_B= ECHO_PID=
cleanup() { set +e; bench_stop "$PID_A"; bench_stop "$PID_B"; bench_stop "$ECHO_PID"; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null

# Each server its own copy of the repository (same objects and refs).
for s in a b; do
	mkdir -p "$scratch/$s/st-default"
	cp -a "$BROWSE_CACHE/browse.git" "$scratch/$s/st-default/browse.git"
done
GITALY_BUILD="$B" /usr/bin/python3 "$BENCH_DIR/browse_setup.py" "$scratch/a/st-default/browse.git" \
	default browse.git "$scratch/req"
# The repository's directory must look old enough for the validation cache
# (its ctime is now); servers started after a short pause see it as any
# long-lived repository after its first few seconds.
BUILD=$A bench_start_gitaly "$scratch/a"
PID_A=$GITALY_PID SOCK_A=$GITALY_SOCK
BUILD=$B bench_start_gitaly "$scratch/b"
PID_B=$GITALY_PID SOCK_B=$GITALY_SOCK
"$HELPERS/echo_server" "$scratch/echo.sock" "$(nproc)" 2>/dev/null &
ECHO_PID=$!
while [ ! -S "$scratch/echo.sock" ]; do sleep 0.05; done
sleep 3

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "A=$A"
echo "B=$B"
echo "$(nproc) CPUs, ${CONC} in flight, ${SECS}s runs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %-6s %8s %10s %10s %12s\n' method server rps p50_us p99_us cpu_us/call
IFS=,
for m in $METHODS; do
	IFS=$' \t\n'
	set -- $m
	mode=
	[ "$3" = stream ] && mode=stream
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		for s in floor A B; do
			case $s in
			floor) pid=$ECHO_PID sock=$scratch/echo.sock ;;
			A) pid=$PID_A sock=$SOCK_A ;;
			B) pid=$PID_B sock=$SOCK_B ;;
			esac
			c0=$(cpu "$pid")
			l=$("$CC_" "unix:$sock" "/gitaly.$1" "$scratch/req/$2.bin" "$CONC" "$SECS" $mode)
			c1=$(cpu "$pid")
			case "$l" in *"errors=0 "*) ;; *) echo "run had errors: $l" >&2; exit 1;; esac
			echo "$l" | awk -v m="$1" -v s="$s" -v c0="$c0" -v c1="$c1" \
				-v hz="$(getconf CLK_TCK)" '{
				for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				printf "%-28s %-6s %8d %10.1f %10.1f %12.1f\n", m, s, v["rps"], v["p50_us"],
					v["p99_us"], (c1 - c0) * 1e6 / hz / v["calls"] }'
		done
		r=$((r + 1))
	done
	IFS=,
done
IFS=$' \t\n'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
