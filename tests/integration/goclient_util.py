"""Helpers for driving gitaly through tests/interop/gitaly_client.go, the Go
client that dials like Workhorse and gitlab-shell (multiplexed connection,
sidechannels).

- `build_client()` compiles the client into the build tree (once per
  source change; Debian's Go packages, no network);
- `Client` runs it against a `conftest.Gitaly` over unix, tcp or tls;
- `ssh_wrapper()` writes a GIT_SSH_COMMAND stand-in for gitlab-shell, so
  that `git clone`/`git push` themselves drive the SSH services;
- `Workhorse` is a small HTTP front end in the role of Workhorse, so that
  `git clone http://...` drives the SmartHTTP services through the client;
- `FakeGitLab` answers the internal API calls of the hooks of a push;
- `git_pids_under()` lists git processes below a pid.

Shared by the interop tests and bench/transport.py.
"""

import fcntl
import gzip
import http.server
import json
import os
import shlex
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("GITALY_BUILD") or os.path.join(ROOT, "build")
CLIENT_SRC = os.path.join(ROOT, "tests", "interop", "gitaly_client.go")
CLIENT_DIR = os.path.join(BUILD, "interop")
CLIENT_BIN = os.path.join(CLIENT_DIR, "gitaly_client")


def go_available():
    return any(os.access(os.path.join(d, "go"), os.X_OK)
               for d in os.environ.get("PATH", "/usr/bin:/bin").split(":") + ["/usr/bin"])


def build_client():
    """Builds build/interop/gitaly_client if it is missing or older than its
    source; returns its path. Offline: GOPATH is Debian's /usr/share/gocode."""
    os.makedirs(CLIENT_DIR, exist_ok=True)
    with open(os.path.join(CLIENT_DIR, ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(CLIENT_BIN) and \
                os.path.getmtime(CLIENT_BIN) >= os.path.getmtime(CLIENT_SRC):
            return CLIENT_BIN
        env = {"GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
               "GOCACHE": os.path.join(CLIENT_DIR, ".gocache"), "GOFLAGS": "",
               "PATH": "/usr/bin:/bin", "HOME": CLIENT_DIR}
        tmp = CLIENT_BIN + ".tmp"
        r = subprocess.run(["go", "build", "-o", tmp, CLIENT_SRC], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise AssertionError("building %s failed (is golang-google-grpc-dev installed?):\n%s"
                                 % (CLIENT_SRC, r.stdout.decode(errors="replace")))
        os.rename(tmp, CLIENT_BIN)
    return CLIENT_BIN


class Client:
    """The Go client pointed at one server and transport."""

    def __init__(self, g, kind="unix", plain=False, token=None):
        self.g = g
        self.kind = kind
        self.plain = plain
        self.token = token if token is not None else g.token

    def argv(self, mode, *args):
        a = [CLIENT_BIN]
        if self.kind == "unix":
            a += ["-addr", "unix:" + self.g.socket_path]
        elif self.kind == "tcp":
            a += ["-addr", "tcp://127.0.0.1:%d" % self.g.port]
        elif self.kind == "tls":
            a += ["-addr", "tls://127.0.0.1:%d" % self.g.tls_port, "-ca", self.g.tls["cert"],
                  "-server-name", "localhost"]
        else:
            raise ValueError(self.kind)
        if self.plain:
            a.append("-plain")
        if self.token:
            a += ["-token", self.token]
        return a + [mode] + list(args)

    def run(self, mode, *args, input=b"", timeout=300, **kw):
        """Runs one mode to completion; returns the CompletedProcess."""
        return subprocess.run(self.argv(mode, *args), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, **kw)


def rpc_code(stderr):
    """The gRPC code name in the client's error line, or None."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    marker = "rpc error: code = "
    i = text.find(marker)
    if i < 0:
        return None
    return text[i + len(marker):].split(" ", 1)[0]


def rpc_desc(stderr):
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    marker = " desc = "
    i = text.find(marker)
    return text[i + len(marker):].rstrip("\n") if i >= 0 else None


def ssh_wrapper(path, client):
    """Writes an executable GIT_SSH_COMMAND stand-in for gitlab-shell: git
    runs it as `WRAPPER [ssh options] HOST "git-upload-pack '/STORAGE/REL'"`
    and it execs the Go client in the matching mode with GIT_PROTOCOL
    passed on as git_protocol. Use it with GIT_SSH_VARIANT=ssh, so git sets
    GIT_PROTOCOL for protocol v2. Returns path."""
    base = " ".join(shlex.quote(a) for a in client.argv("MODE")[:-1])
    script = """#!/bin/sh
# gitlab-shell stand-in: the last argument is git's remote command
for last in "$@"; do :; done
case "$last" in
git-upload-pack\\ *) mode=ssh-upload-pack ;;
git-receive-pack\\ *) mode=ssh-receive-pack ;;
*) echo "wrapper: unsupported command: $last" >&2; exit 1 ;;
esac
path=${last#* }
path=${path#\\'}
path=${path%%\\'}
path=${path#/}
storage=${path%%%%/*}
rel=${path#*/}
exec %s "$mode" -repo "$storage:$rel" -protocol "$GIT_PROTOCOL" $GITALY_CLIENT_EXTRA
""" % base
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)
    return path


def ssh_env(wrapper, extra=None):
    """Environment for git to use wrapper as its ssh."""
    env = {"GIT_SSH_COMMAND": wrapper, "GIT_SSH_VARIANT": "ssh"}
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------
# an HTTP front end in Workhorse's role

class _WorkhorseHandler(http.server.BaseHTTPRequestHandler):
    """Routes /STORAGE/REL/info/refs and /STORAGE/REL/git-upload-pack (and
    receive-pack) to the Go client, as Workhorse routes them to Gitaly."""

    protocol_version = "HTTP/1.0"  # the response ends when the connection closes
    client = None
    seen = None

    def _repo(self, suffix):
        path = self.path.split("?", 1)[0]
        if not path.endswith(suffix):
            return None
        path = path[:-len(suffix)].strip("/")
        storage, _, rel = path.partition("/")
        return "%s:%s" % (storage, rel)

    def _proto(self):
        return self.headers.get("Git-Protocol") or ""

    def _relay(self, argv, body, ctype):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        # Workhorse sends the whole body before reading the answer
        feeder = threading.Thread(target=self._feed, args=(p, body), daemon=True)
        feeder.start()
        first = p.stdout.read(65536)
        if not first and p.wait() != 0:
            err = p.stderr.read()
            type(self).seen.append((self.path, p.returncode, err))
            self.send_error(500, err.decode(errors="replace")[:200])
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        chunk = first
        while chunk:
            self.wfile.write(chunk)
            chunk = p.stdout.read(65536)
        rc = p.wait()
        type(self).seen.append((self.path, rc, p.stderr.read()))

    @staticmethod
    def _feed(p, body):
        try:
            p.stdin.write(body)
        except BrokenPipeError:
            pass
        finally:
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass

    def do_GET(self):
        repo = self._repo("/info/refs")
        q = self.path.split("?", 1)[1] if "?" in self.path else ""
        service = dict(kv.split("=", 1) for kv in q.split("&") if "=" in kv).get("service")
        if not repo or service not in ("git-upload-pack", "git-receive-pack"):
            self.send_error(404)
            return
        argv = self.client.argv("info-refs", "-repo", repo, "-service", service[4:],
                                "-protocol", self._proto())
        self._relay(argv, b"", "application/x-%s-advertisement" % service)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else self._read_chunked()
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        for service, mode in (("git-upload-pack", "http-upload-pack"),
                              ("git-receive-pack", "post-receive-pack")):
            repo = self._repo("/" + service)
            if repo:
                argv = self.client.argv(mode, "-repo", repo, "-protocol", self._proto())
                if mode == "post-receive-pack":
                    # Workhorse passes what Rails' /allowed answered
                    argv += ["-gl-repository", "project-1", "-gl-id", "user-1",
                             "-gl-username", "user"]
                self._relay(argv, body, "application/x-%s-result" % service)
                return
        self.send_error(404)

    def _read_chunked(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return b""
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def log_message(self, *a):
        pass


class Workhorse:
    """A threaded HTTP server relaying git's smart HTTP to the Go client."""

    def __init__(self, client):
        handler = type("Handler", (_WorkhorseHandler,), {"client": client, "seen": []})
        self.handler = handler
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, storage, rel):
        return "http://127.0.0.1:%d/%s/%s" % (self.port, storage, rel)

    @property
    def seen(self):
        return self.handler.seen

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


# --------------------------------------------------------------------------
# GitLab's internal API, for the hooks of a push

class _ApiHandler(http.server.BaseHTTPRequestHandler):
    replies = None
    seen = None

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        type(self).seen.append(self.path)
        status, reply = type(self).replies.get(self.path.split("?")[0],
                                               (404, {"message": "no route"}))
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        del body

    do_GET = do_POST

    def log_message(self, *a):
        pass


class FakeGitLab:
    """Allows every push: /allowed, /pre_receive and /post_receive."""

    def __init__(self):
        replies = {
            "/api/v4/internal/allowed": (200, {"status": True, "message": ""}),
            "/api/v4/internal/pre_receive": (200, {"reference_counter_increased": True}),
            "/api/v4/internal/post_receive": (200, {"reference_counter_decreased": True,
                                                     "messages": []}),
            "/api/v4/internal/check": (200, {"api_version": "v4", "gitlab_version": "16.7.0",
                                             "gitlab_revision": "x", "redis": True}),
        }
        handler = type("Api", (_ApiHandler,), {"replies": replies, "seen": []})
        self.handler = handler
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def seen(self):
        return self.handler.seen

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def with_gitlab(g, api):
    """Points an unstarted conftest.Gitaly at api (rewrites its config)."""
    toml = g.toml().replace('url = "http://127.0.0.1:1"', 'url = "%s"' % api.url)
    with open(g.config_path, "w") as f:
        f.write(toml)


# --------------------------------------------------------------------------
# processes

def _children():
    kids = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            kids.setdefault(int(fields[1]), []).append((int(pid), st[st.index("(") + 1:
                                                                     st.rindex(")")], fields[0]))
        except (OSError, ValueError):
            continue
    return kids


def git_pids_under(root_pid):
    """Live (non-zombie) git processes descending from root_pid."""
    kids = _children()
    out, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        for c, comm, state in kids.get(p, []):
            todo.append(c)
            if comm.startswith("git") and state != "Z" and not comm.startswith("gitaly"):
                out.append((c, comm))
    return out


# --------------------------------------------------------------------------
# gitaly-gateway (owned by the gateway branch; used here only as a client)

GATEWAY_BIN = os.environ.get("GITALY_GATEWAY_BIN") or os.path.join(BUILD, "bin", "gitaly-gateway")


class GatewayProc:
    """`gitaly-gateway serve` over HTTP in front of a conftest.Gitaly,
    anonymous pushes allowed; started with a config written here."""

    def __init__(self, base, g, gl_id="user-1"):
        import socket
        import time
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        os.makedirs(base, exist_ok=True)
        self.config = os.path.join(base, "gateway.toml")
        self.log = os.path.join(base, "gateway.log")
        lines = ['listen_addr = "127.0.0.1:%d"' % self.port, 'default_storage = "default"',
                 'log_level = "warn"', "", "[auth]", "required = false",
                 'anonymous_gl_id = "%s"' % gl_id, ""]
        for name in g.storages:
            lines += ["[[storage]]", 'name = "%s"' % name,
                      'address = "unix:%s"' % g.socket_path, 'token = "%s"' % (g.token or ""), ""]
        with open(self.config, "w") as f:
            f.write("\n".join(lines))
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([GATEWAY_BIN, "--config", self.config, "serve"],
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("gitaly-gateway exited with %d" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("gitaly-gateway is not listening")
                time.sleep(0.05)

    def url(self, storage, rel):
        return "http://127.0.0.1:%d/%s/%s" % (self.port, storage, rel)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
