#!/bin/sh
# `make run`: starts build/bin/gitaly in the foreground with a default
# configuration kept under ./_data (rewritten on every run; set
# GITALY_CONFIG=/path/to/config.toml to use your own file instead).
# Usage: scripts/run.sh <builddir>
set -e
BUILD=$(cd "${1:-build}" && pwd)
GITALY="$BUILD/bin/gitaly"
DATA="$(pwd)/_data"
[ -x "$GITALY" ] || { echo "no $GITALY; run 'make build' first" >&2; exit 1; }

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

if [ -n "$GITALY_CONFIG" ]; then
	CONFIG="$GITALY_CONFIG"
	echo "using $CONFIG"
else
	mkdir -p "$DATA/repositories" "$DATA/bin" "$DATA/run"
	TCP_PORT=$(free_port 8075)
	METRICS_PORT=$(free_port 9236)
	CONFIG="$DATA/config.toml"
	cat >"$CONFIG" <<TOML
# Written by scripts/run.sh (make run); rewritten on every run.
socket_path = "$DATA/gitaly.socket"
listen_addr = "127.0.0.1:$TCP_PORT"
prometheus_listen_addr = "127.0.0.1:$METRICS_PORT"
bin_dir = "$DATA/bin"
runtime_dir = "$DATA/run"

[logging]
format = "json"
level = "info"

[[storage]]
name = "default"
path = "$DATA/repositories"
TOML
	cat <<MSG
gitaly $(cat "$(dirname "$0")/../VERSION" 2>/dev/null || true) starting with $CONFIG
  gRPC:     unix:$DATA/gitaly.socket and 127.0.0.1:$TCP_PORT (no auth token)
  metrics:  http://127.0.0.1:$METRICS_PORT/metrics
  storage:  default -> $DATA/repositories

Try it from another terminal (Python stubs are in $BUILD/py):
  PYTHONPATH=$BUILD/py /usr/bin/python3 -c 'import grpc, server_pb2 as s, server_pb2_grpc as g; print(g.ServerServiceStub(grpc.insecure_channel("127.0.0.1:$TCP_PORT")).ServerInfo(s.ServerInfoRequest()))'
  PYTHONPATH=$BUILD/py /usr/bin/python3 -c 'import grpc, shared_pb2 as sh, repository_pb2 as r, repository_pb2_grpc as g; g.RepositoryServiceStub(grpc.insecure_channel("127.0.0.1:$TCP_PORT")).CreateRepository(r.CreateRepositoryRequest(repository=sh.Repository(storage_name="default", relative_path="demo.git")))'
  git -C $DATA/repositories/demo.git rev-parse --is-bare-repository
  curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep grpc_server_handled_total

Cloning and pushing with plain git needs the git front door (gitaly-gateway),
which comes with a later issue; GitLab itself can use this server as-is.
Logs follow as JSON lines. Stop with Ctrl-C.

MSG
fi
exec "$GITALY" "$CONFIG"
