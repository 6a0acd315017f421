# Shared by the bench scripts (sourced): builds the C helpers, writes a
# gitaly config with two storages into a scratch dir, starts and stops it.
# Expects $BUILD (absolute build dir) to be set by the caller.

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
HELPERS="$BUILD/bench"

bench_build_helpers() {
	mkdir -p "$HELPERS"
	for prog in echo_server load_client; do
		if [ ! -x "$HELPERS/$prog" ] || [ "$BENCH_DIR/$prog.c" -nt "$HELPERS/$prog" ]; then
			cc -O2 -Wall -o "$HELPERS/$prog" "$BENCH_DIR/$prog.c" \
				$(pkg-config --cflags --libs grpc) -lpthread -ldl || return 1
		fi
	done
}

# bench_start_gitaly <scratch-dir>: sets GITALY_PID and GITALY_SOCK.
bench_start_gitaly() {
	d="$1"
	mkdir -p "$d/st-default" "$d/st-other" "$d/bin" "$d/run"
	GITALY_SOCK="$d/gitaly.sock"
	cat >"$d/config.toml" <<TOML
socket_path = "$GITALY_SOCK"
bin_dir = "$d/bin"
runtime_dir = "$d/run"

[logging]
format = "json"

[[storage]]
name = "default"
path = "$d/st-default"

[[storage]]
name = "other"
path = "$d/st-other"
TOML
	"$BUILD/bin/gitaly" "$d/config.toml" >"$d/gitaly.log" 2>&1 &
	GITALY_PID=$!
	i=0
	while [ ! -S "$GITALY_SOCK" ]; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$GITALY_PID" 2>/dev/null; then
			echo "gitaly did not start; log:" >&2
			cat "$d/gitaly.log" >&2
			return 1
		fi
		sleep 0.05
	done
	# first successful call = ready
	"$HELPERS/load_client" "unix:$GITALY_SOCK" /gitaly.ServerService/ServerInfo count 1 >/dev/null
}

# bench_stop <pid>: never fails (it runs from EXIT traps under set -e).
bench_stop() {
	if [ -n "$1" ]; then
		kill "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
	fi
	return 0
}

rss_kib() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
