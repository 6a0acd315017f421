#!/bin/sh
# Server CPU time per call: the sum of the on-CPU time of every thread of
# the server (/proc/<pid>/task/*/schedstat, nanoseconds) over a run of
# BENCH_SECONDS divided by the calls made, for the floor (bench/echo_server.c) and for each gitaly build
# given. Much less sensitive to load from elsewhere on the machine than
# latency, so it is the figure to compare variants by when the load average
# is high; it does not see time spent waiting (hand-offs between threads
# show up only as their system-call and scheduler cost). Also prints the
# server's context switches per call (voluntary and involuntary, every
# thread): a count of thread hand-offs that the host's load barely moves.
# Usage: bench/cpu_per_call.sh <build> [<build>...]
#   BENCH_SECONDS (default 2), BENCH_CONC (default "1 8"),
#   BENCH_METHODS (default: ServerInfo), BENCH_ROUNDS (default 3: median).
set -e
SECS=${BENCH_SECONDS:-2}
CONCS=${BENCH_CONC:-1 8}
ROUNDS=${BENCH_ROUNDS:-3}
METHODS=${BENCH_METHODS:-/gitaly.ServerService/ServerInfo}
BUILD=$(cd "$1" && pwd)
. "$(dirname "$0")/lib.sh"
bench_build_helpers

scratch=$(mktemp -d /tmp/gbench.XXXXXX)
PIDS=
cleanup() { set +e; for p in $PIDS; do bench_stop "$p"; done; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

"$HELPERS/echo_server" "$scratch/echo.sock" "$(nproc)" 2>/dev/null &
PIDS="$!"
names="floor"
eval "pid_floor=$!; sock_floor=$scratch/echo.sock"
while [ ! -S "$scratch/echo.sock" ]; do sleep 0.05; done
gnum=0
for b in "$@"; do
	gnum=$((gnum + 1))
	BUILD=$(cd "$b" && pwd) bench_start_gitaly "$scratch/g$gnum"
	PIDS="$PIDS $GITALY_PID"
	names="$names g$gnum"
	eval "pid_g$gnum=$GITALY_PID; sock_g$gnum=$GITALY_SOCK"
	echo "g$gnum = $b"
done

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
# context switches (voluntary + involuntary) of every thread so far
csw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {printf "%.0f\n", s}'; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'; }

echo "${SECS}s per run, median of $ROUNDS, load average: $(cut -d" " -f1-3 /proc/loadavg)"
for method in $METHODS; do
	for conc in $CONCS; do
		for n in $names; do : >"$scratch/$n.cpu"; : >"$scratch/$n.cs"; done
		r=0
		while [ $r -lt "$ROUNDS" ]; do
			for n in $names; do
				eval "pid=\$pid_$n; sock=\$sock_$n"
				before=$(cpu_ns "$pid")
				cs_before=$(csw "$pid")
				out=$("$HELPERS/load_client" "unix:$sock" "$method" "$conc" "$SECS" 0)
				after=$(cpu_ns "$pid")
				cs_after=$(csw "$pid")
				calls=$(echo "$out" | tr ' ' '\n' | sed -n 's/^calls=//p')
				awk -v a="$after" -v b="$before" -v c="$calls" 'BEGIN {printf "%.2f\n", (a - b) / c / 1000}' >>"$scratch/$n.cpu"
				awk -v a="$cs_after" -v b="$cs_before" -v c="$calls" 'BEGIN {printf "%.2f\n", (a - b) / c}' >>"$scratch/$n.cs"
			done
			r=$((r + 1))
		done
		line="$method conc=$conc server_cpu_us_per_call:"
		for n in $names; do line="$line $n=$(median <"$scratch/$n.cpu")"; done
		echo "$line"
		line="$method conc=$conc server_context_switches_per_call:"
		for n in $names; do line="$line $n=$(median <"$scratch/$n.cs")"; done
		echo "$line"
	done
done
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
