#!/bin/sh
# `make run`: starts build/bin/gitaly and build/bin/gitaly-gateway (both on
# loopback) with configurations kept under ./_data (rewritten on every run),
# plus a stand-in for GitLab's internal API (scripts/gitlab_stub.py, allows
# every push) so that pushes pass Gitaly's hooks. Creates a demo repository,
# pushes some content into it through the gateway, and prints how to clone.
# Ctrl-C stops everything.
# Set GITALY_CONFIG=/path/to/config.toml to run only gitaly with your file.
# Usage: scripts/run.sh <builddir>
set -e
BUILD=$(cd "${1:-build}" && pwd)
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
GITALY="$BUILD/bin/gitaly"
GATEWAY="$BUILD/bin/gitaly-gateway"
DATA="$(pwd)/_data"
for b in "$GITALY" "$GATEWAY" "$BUILD/bin/gitaly-hooks"; do
	[ -x "$b" ] || { echo "no $b; run 'make build' first" >&2; exit 1; }
done

if [ -n "$GITALY_CONFIG" ]; then
	echo "using $GITALY_CONFIG (gitaly only)"
	exec "$GITALY" "$GITALY_CONFIG"
fi

# first free loopback port starting at $1
free_port() {
	p=$1
	while [ "$p" -lt $(($1 + 100)) ]; do
		if /usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $p))" \
			2>/dev/null; then
			echo "$p"
			return 0
		fi
		p=$((p + 1))
	done
	echo "no free port near $1" >&2
	return 1
}

# waits up to 10 s for a unix socket ($1) or tcp port ($2)
wait_for() {
	i=0
	while [ $i -lt 100 ]; do
		if [ -n "$1" ] && [ -S "$1" ]; then return 0; fi
		if [ -n "$2" ] && /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $2), 1)" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "timed out waiting for ${1:-port $2}" >&2
	return 1
}

mkdir -p "$DATA/repositories" "$DATA/run" "$DATA/shell"
rm -f "$DATA/gitaly.socket"
TCP_PORT=$(free_port 8075)
METRICS_PORT=$(free_port 9236)
API_PORT=$(free_port 8090)
HTTP_PORT=$(free_port 8080)
[ -f "$DATA/token" ] || /usr/bin/python3 -c "import secrets; print(secrets.token_hex(16))" >"$DATA/token"
TOKEN=$(cat "$DATA/token")
echo "shellsecret-$TOKEN" >"$DATA/shell/.gitlab_shell_secret"

cat >"$DATA/config.toml" <<TOML
# Written by scripts/run.sh (make run); rewritten on every run.
socket_path = "$DATA/gitaly.socket"
listen_addr = "127.0.0.1:$TCP_PORT"
prometheus_listen_addr = "127.0.0.1:$METRICS_PORT"
bin_dir = "$BUILD/bin"
runtime_dir = "$DATA/run"

[auth]
token = "$TOKEN"

[logging]
format = "json"
level = "info"

[gitlab]
url = "http://127.0.0.1:$API_PORT"

[gitlab-shell]
dir = "$DATA/shell"

[[storage]]
name = "default"
path = "$DATA/repositories"
TOML

cat >"$DATA/gateway.toml" <<TOML
# Written by scripts/run.sh (make run); rewritten on every run.
# See docs/gateway.md.
listen_addr = "127.0.0.1:$HTTP_PORT"
default_storage = "default"

[auth]
# anonymous clones and pushes; pushes run as GitLab user 1
anonymous_gl_id = "user-1"

[[storage]]
name = "default"
address = "unix:$DATA/gitaly.socket"
token = "$TOKEN"
TOML

PIDS=""
stop() {
	trap - INT TERM EXIT
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	echo "stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

/usr/bin/python3 "$SCRIPTS/gitlab_stub.py" --port "$API_PORT" >/dev/null &
PIDS="$PIDS $!"
"$GITALY" "$DATA/config.toml" >>"$DATA/gitaly.log" 2>&1 &
PIDS="$PIDS $!"
wait_for "$DATA/gitaly.socket" ""
"$GATEWAY" --config "$DATA/gateway.toml" serve >>"$DATA/gateway.log" 2>&1 &
PIDS="$PIDS $!"
wait_for "" "$HTTP_PORT"
wait_for "" "$API_PORT"

URL="http://127.0.0.1:$HTTP_PORT/demo.git"
if [ ! -d "$DATA/repositories/demo.git" ]; then
	"$GATEWAY" --config "$DATA/gateway.toml" create-repository demo.git
fi
if [ -z "$(git --git-dir="$DATA/repositories/demo.git" for-each-ref --count=1 2>/dev/null)" ]; then
	WORK=$(mktemp -d)
	(
		cd "$WORK"
		export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=Demo GIT_AUTHOR_EMAIL=demo@example.com \
			GIT_COMMITTER_NAME=Demo GIT_COMMITTER_EMAIL=demo@example.com
		git init -q -b main .
		printf '# demo\n\nServed by gitaly through gitaly-gateway.\n' >README.md
		git add README.md && git commit -q -m "Add README"
		printf 'int main(void) { return 0; }\n' >main.c
		git add main.c && git commit -q -m "Add main.c"
		git tag -a -m "first release" v1.0
		git checkout -q -b feature
		printf 'feature\n' >FEATURE && git add FEATURE && git commit -q -m "Start a feature"
		git push -q "$URL" main feature v1.0
	)
	rm -rf "$WORK"
fi

cat <<MSG
gitaly $(cat "$SCRIPTS/../VERSION" 2>/dev/null || true) and gitaly-gateway are running (data in $DATA):
  gitaly:   unix:$DATA/gitaly.socket, 127.0.0.1:$TCP_PORT (token in $DATA/token), log $DATA/gitaly.log
  metrics:  http://127.0.0.1:$METRICS_PORT/metrics
  gateway:  http://127.0.0.1:$HTTP_PORT/ (config $DATA/gateway.toml, log $DATA/gateway.log)
  GitLab internal API stub: http://127.0.0.1:$API_PORT (allows every push)

Try it:
  git clone http://127.0.0.1:$HTTP_PORT/demo.git
  cd demo && echo hello >>README.md && git commit -qam hello && git push
  $GATEWAY --config $DATA/gateway.toml create-repository group/another.git

SSH needs an sshd whose authorized_keys runs the gateway, see docs/gateway.md.
Stop with Ctrl-C.
MSG
wait
