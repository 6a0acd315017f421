"""Shared fixtures for the end-to-end tests: they run the real build/bin/gitaly
against real directories and the real git CLI, and talk to it over real
sockets with the stock Python gRPC client.

What lives here: locating the build (GITALY_BUILD), writing a config.toml,
starting and stopping a server (and checking that it leaves no git process
behind), v2 auth tokens, channels over unix/tcp/tls, a metrics scraper, the
JSON log reader, and helpers to build repositories with git itself.
"""

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("GITALY_BUILD") or os.path.join(ROOT, "build")
GITALY_BIN = os.environ.get("GITALY_BIN") or os.path.join(BUILD, "bin", "gitaly")
PY_STUBS = os.environ.get("GITALY_PY") or os.path.join(BUILD, "py")
sys.path.insert(0, PY_STUBS)

import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import repository_pb2  # noqa: E402
import repository_pb2_grpc  # noqa: E402
import server_pb2  # noqa: E402
import server_pb2_grpc  # noqa: E402
import shared_pb2  # noqa: E402

TOKEN_WINDOW = 30


# --------------------------------------------------------------------------
# small utilities

def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(*args, cwd=None, env=None, input=None, check=True):
    """Runs the git CLI and returns stdout bytes."""
    e = dict(os.environ)
    e.update({
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "GIT_AUTHOR_DATE": "1700000000 +0000",
        "GIT_COMMITTER_DATE": "1700000000 +0000",
    })
    if env:
        e.update(env)
    r = subprocess.run(["git", *args], cwd=cwd, env=e, input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise AssertionError("git %s failed (%d): %s" % (
            " ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


def git_version():
    out = git("version").decode().strip()
    return out.split()[2]


def git_supports_sha256():
    d = tempfile.mkdtemp(prefix="sha256probe")
    try:
        r = subprocess.run(["git", "init", "--bare", "-q", "--object-format=sha256", d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def v2_token(secret, ts=None):
    """The v2 token value: v2.<hex HMAC-SHA256(secret, decimal ts)>.<ts>."""
    if ts is None:
        ts = int(time.time())
    msg = str(int(ts)).encode()
    mac = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
    return "v2.%s.%d" % (mac, int(ts))


def auth_md(secret, ts=None):
    return [("authorization", "Bearer " + v2_token(secret, ts))]


def tree_snapshot(root):
    """Every path under root with its type, size and content hash, for
    asserting that a rejected request changed nothing on disk."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        # +gitaly/ holds the server's scratch space, not repository state.
        if rel == "+gitaly" or rel.startswith("+gitaly" + os.sep):
            continue
        for d in dirnames:
            p = os.path.join(dirpath, d)
            snap[os.path.relpath(p, root)] = ("dir", os.path.islink(p) and os.readlink(p))
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                snap[os.path.relpath(p, root)] = ("link", os.readlink(p))
                continue
            with open(p, "rb") as fh:
                snap[os.path.relpath(p, root)] = ("file", hashlib.sha1(fh.read()).hexdigest())
    return snap


def rpc_error(fn, *args, **kwargs):
    """Calls fn expecting a gRPC error; returns the RpcError."""
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args, **kwargs)
    return ei.value


def assert_code(err, code, message=None, contains=None):
    assert err.code() == code, "expected %s, got %s: %r" % (code, err.code(), err.details())
    if message is not None:
        assert err.details() == message, "message %r != %r" % (err.details(), message)
    if contains is not None:
        assert contains in (err.details() or ""), "%r not in %r" % (contains, err.details())


# --------------------------------------------------------------------------
# Prometheus text parsing

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {labels}, value)] for every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\")
                  for k, v in _LABEL.findall(m.group(3) or "")}
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric(samples, name, **labels):
    """Sum of the samples of name whose labels include labels; None if none."""
    total = None
    for n, l, v in samples:
        if n != name:
            continue
        if all(l.get(k) == str(val) for k, val in labels.items()):
            total = (total or 0.0) + v
    return total


# --------------------------------------------------------------------------
# The server under test

class Gitaly:
    """One gitaly process with its own config, storages and log file."""

    def __init__(self, base, token=None, transitioning=False, previous_tokens=None,
                 tls=None, extra_toml="", storages=("default", "other"), env=None):
        self.base = base
        self.token = token
        self.transitioning = transitioning
        self.previous_tokens = previous_tokens or []
        self.tls = tls
        self.extra_toml = extra_toml
        self.env = env or {}
        self.socket_path = os.path.join(base, "gitaly.sock")
        self.port = free_port()
        self.metrics_port = free_port()
        self.tls_port = free_port() if tls else None
        self.bin_dir = os.path.join(base, "bin")
        self.runtime_dir = os.path.join(base, "run")
        self.shell_dir = os.path.join(base, "shell")
        self.log_path = os.path.join(base, "gitaly.log")
        self.config_path = os.path.join(base, "config.toml")
        self.storages = {}
        for name in storages:
            p = os.path.join(base, "st-" + name)
            os.makedirs(p, exist_ok=True)
            self.storages[name] = p
        for d in (self.bin_dir, self.runtime_dir, self.shell_dir):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(self.shell_dir, ".gitlab_shell_secret"), "w") as f:
            f.write("shellsecret\n")
        self.proc = None
        self._log = None
        self.write_config()

    # -- config
    def toml(self):
        lines = [
            'socket_path = "%s"' % self.socket_path,
            'listen_addr = "127.0.0.1:%d"' % self.port,
            'prometheus_listen_addr = "127.0.0.1:%d"' % self.metrics_port,
            'bin_dir = "%s"' % self.bin_dir,
            'runtime_dir = "%s"' % self.runtime_dir,
        ]
        if self.tls:
            lines.append('tls_listen_addr = "127.0.0.1:%d"' % self.tls_port)
        lines += ["", "[logging]", 'format = "json"', 'level = "info"', ""]
        lines += ["[gitlab]", 'url = "http://127.0.0.1:1"', 'secret = "gitlabsecret"', ""]
        lines += ["[gitlab-shell]", 'dir = "%s"' % self.shell_dir, ""]
        if self.token is not None:
            lines += ["[auth]", 'token = "%s"' % self.token,
                      "transitioning = %s" % ("true" if self.transitioning else "false")]
            if self.previous_tokens:
                lines.append("previous_tokens = [%s]" % ", ".join(
                    '"%s"' % t for t in self.previous_tokens))
            lines.append("")
        if self.tls:
            lines += ["[tls]", 'certificate_path = "%s"' % self.tls["cert"],
                      'key_path = "%s"' % self.tls["key"], ""]
        for name, path in self.storages.items():
            lines += ["[[storage]]", 'name = "%s"' % name, 'path = "%s"' % path, ""]
        if self.extra_toml:
            lines.append(self.extra_toml)
        return "\n".join(lines) + "\n"

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(self.toml())

    # -- lifecycle
    def start(self, timeout=15):
        assert os.access(GITALY_BIN, os.X_OK), "no gitaly binary at %s (run make build)" % GITALY_BIN
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env)
        self.proc = subprocess.Popen([GITALY_BIN, self.config_path], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=self.base)
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("gitaly exited with %d during startup:\n%s" % (
                    self.proc.returncode, self.log_text()[-4000:]))
            if os.path.exists(self.socket_path):
                try:
                    with self.channel("unix") as ch:
                        r = health_pb2_grpc.HealthStub(ch).Check(
                            health_pb2.HealthCheckRequest(), timeout=2, metadata=self.md())
                        if r.status == health_pb2.HealthCheckResponse.SERVING:
                            return self
                except grpc.RpcError as e:
                    last = e
            time.sleep(0.05)
        self.kill()
        raise AssertionError("gitaly not ready after %ss (last error %r):\n%s" % (
            timeout, last, self.log_text()[-4000:]))

    def descendants(self):
        """Pids of the server's live descendant processes."""
        if not self.proc:
            return []
        kids = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(pid))
            except (OSError, ValueError):
                continue
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            for c in kids.get(p, []):
                out.append(c)
                todo.append(c)
        return out

    def stray_processes(self):
        """Processes other than the server that still reference our directory
        (git children left behind keep the repository as cwd or argument)."""
        found = []
        me = os.getpid()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me or (self.proc and int(pid) == self.proc.pid):
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink("/proc/%s/cwd" % pid)
            except OSError:
                continue
            if self.base in cmd or cwd.startswith(self.base):
                if "pytest" in cmd:
                    continue
                found.append((int(pid), cmd, cwd))
        return found

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the server and checks nothing of it survives. Returns the
        exit status."""
        if not self.proc:
            return None
        kids = self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("gitaly did not exit within %ss of signal %d" % (timeout, sig))
        finally:
            if self._log:
                self._log.close()
                self._log = None
        deadline = time.time() + 3
        alive = []
        while time.time() < deadline:
            alive = [p for p in kids if os.path.exists("/proc/%d" % p) and not _is_zombie(p)]
            alive += [p for p, _, _ in self.stray_processes()]
            if not alive:
                break
            time.sleep(0.05)
        assert not alive, "processes left behind by gitaly: %r" % self.stray_processes()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # -- talking to it
    def md(self, ts=None, secret=None):
        if self.token is None:
            return []
        return auth_md(secret or self.token, ts)

    def channel(self, kind="unix", options=()):
        opts = [("grpc.use_local_subchannel_pool", 1)] + list(options)
        if kind == "unix":
            return grpc.insecure_channel("unix:" + self.socket_path, options=opts)
        if kind == "tcp":
            return grpc.insecure_channel("127.0.0.1:%d" % self.port, options=opts)
        if kind == "tls":
            with open(self.tls["cert"], "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            opts.append(("grpc.ssl_target_name_override", "localhost"))
            return grpc.secure_channel("127.0.0.1:%d" % self.tls_port, creds, options=opts)
        raise ValueError(kind)

    def server_stub(self, ch):
        return server_pb2_grpc.ServerServiceStub(ch)

    def repo_stub(self, ch):
        return repository_pb2_grpc.RepositoryServiceStub(ch)

    def metrics_text(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=5) as r:
            assert r.status == 200
            return r.read().decode()

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_entries(self):
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_log(self, pred, timeout=5):
        """Returns the log entries matching pred, waiting for at least one."""
        deadline = time.time() + timeout
        while True:
            found = [e for e in self.log_entries() if pred(e)]
            if found or time.time() > deadline:
                return found
            time.sleep(0.05)

    # -- repositories
    def repo(self, rel, storage="default"):
        return shared_pb2.Repository(storage_name=storage, relative_path=rel)

    def path(self, rel, storage="default"):
        return os.path.join(self.storages[storage], rel)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2] == "Z"
    except OSError:
        return False


def short_tmpdir():
    """Unix socket paths are limited to 108 bytes: keep server dirs short."""
    return tempfile.mkdtemp(prefix="gt", dir="/tmp")


# --------------------------------------------------------------------------
# repository building with git itself

def make_repo(path, object_format=None, default_branch="main"):
    """An empty bare repository at path."""
    args = ["init", "--bare", "-q", "--initial-branch=" + default_branch]
    if object_format:
        args.append("--object-format=" + object_format)
    git(*args, path)
    return path


def commit(repo, files, message="commit", parents=(), ref=None, date=1700000000):
    """Writes a commit with the given {name: bytes} tree into bare repo;
    returns its oid and optionally points ref at it."""
    entries = []
    for name, content in sorted(files.items()):
        oid = git("-C", repo, "hash-object", "-w", "--stdin", input=content).decode().strip()
        entries.append("100644 blob %s\t%s" % (oid, name))
    tree = git("-C", repo, "mktree", input=("\n".join(entries) + "\n").encode()
               if entries else b"").decode().strip()
    args = ["-C", repo, "commit-tree", tree, "-m", message]
    for p in parents:
        args += ["-p", p]
    stamp = "%d +0000" % date
    oid = git(*args, env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}).decode().strip()
    if ref:
        git("-C", repo, "update-ref", ref, oid)
    return oid


def make_history(path):
    """A repository with a small fork-shaped history:
    base <- a1 <- a2 (refs/heads/main), base <- b1 (refs/heads/feature),
    a tag and a keep-around ref. Returns {name: oid}."""
    make_repo(path)
    base = commit(path, {"README": b"base\n"}, "base", date=1700000000)
    a1 = commit(path, {"README": b"a1\n"}, "a1", [base], date=1700000100)
    a2 = commit(path, {"README": b"a2\n", "x": b"x\n"}, "a2", [a1], "refs/heads/main",
                date=1700000200)
    b1 = commit(path, {"README": b"b1\n"}, "b1", [base], "refs/heads/feature",
                date=1700000300)
    git("-C", path, "tag", "v1.0", a1)
    git("-C", path, "update-ref", "refs/keep-around/" + base, base)
    git("-C", path, "update-ref", "refs/something/else", b1)
    return {"base": base, "a1": a1, "a2": a2, "b1": b1}


# --------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="session")
def tls_cert():
    d = tempfile.mkdtemp(prefix="gtls")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield {"cert": cert, "key": key, "dir": d}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def gitaly_factory():
    """Builds and starts servers with custom settings; stops them (checking
    for leftovers) at the end of the test."""
    made = []

    def make(start=True, **kw):
        g = Gitaly(short_tmpdir(), **kw)
        made.append(g)
        if start:
            g.start()
        return g

    yield make
    errors = []
    for g in made:
        try:
            g.stop()
        except AssertionError as e:
            errors.append(str(e))
        shutil.rmtree(g.base, ignore_errors=True)
    assert not errors, errors


@pytest.fixture(scope="module")
def gitaly():
    """A default server (two storages, no auth) shared by a test module."""
    g = Gitaly(short_tmpdir())
    g.start()
    yield g
    try:
        g.stop()
    finally:
        shutil.rmtree(g.base, ignore_errors=True)


@pytest.fixture
def unix_channel(gitaly):
    ch = gitaly.channel("unix")
    yield ch
    ch.close()


# --------------------------------------------------------------------------
# The keepalive scenario idles for ~45 s; it starts in the background at the
# beginning of the session and its test runs last, so it costs no wall time.

class KeepaliveProbe:
    IDLE = 45

    def __init__(self):
        self.error = None
        self.done = threading.Event()
        self.result = {}
        self.gitaly = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _metrics(self, g):
        try:
            return g.metrics()
        except OSError as e:
            return e

    def _run(self):
        try:
            g = Gitaly(short_tmpdir())
            self.gitaly = g
            g.start()
            opts = [("grpc.keepalive_time_ms", 20000),
                    ("grpc.keepalive_timeout_ms", 10000),
                    ("grpc.keepalive_permit_without_calls", 1),
                    ("grpc.http2.max_pings_without_data", 0)]
            for kind in ("unix", "tcp"):
                self.result[kind] = {"states": []}
            chans = {k: g.channel(k, opts) for k in ("unix", "tcp")}
            for kind, ch in chans.items():
                states = self.result[kind]["states"]
                ch.subscribe(lambda s, states=states: states.append((time.time(), s)),
                             try_to_connect=True)
                g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
            self.result["t0"] = time.time()
            self.result["before"] = self._metrics(g)
            time.sleep(self.IDLE)
            for kind, ch in chans.items():
                r = g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
                self.result[kind]["after"] = r
            self.result["after"] = self._metrics(g)
            for ch in chans.values():
                ch.close()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.done.set()


_KEEPALIVE = None


def pytest_collection_modifyitems(session, config, items):
    # The keepalive test goes last so its idle time overlaps the others.
    ka = [i for i in items if "test_keepalive" in i.nodeid]
    rest = [i for i in items if "test_keepalive" not in i.nodeid]
    items[:] = rest + ka


def pytest_collection_finish(session):
    # After deselection (-k, -m): start the idle probe only if its test runs.
    global _KEEPALIVE
    ka = [i for i in session.items if "test_keepalive" in i.nodeid]
    if ka and os.access(GITALY_BIN, os.X_OK) and not session.config.option.collectonly:
        _KEEPALIVE = KeepaliveProbe()
        _KEEPALIVE.thread.start()


@pytest.fixture
def keepalive_probe():
    assert _KEEPALIVE is not None, "keepalive probe was not started"
    _KEEPALIVE.done.wait(KeepaliveProbe.IDLE + 60)
    yield _KEEPALIVE
    if _KEEPALIVE.gitaly:
        try:
            _KEEPALIVE.gitaly.stop()
        finally:
            shutil.rmtree(_KEEPALIVE.gitaly.base, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    # If the keepalive test was deselected, its server must not outlive us.
    if _KEEPALIVE is not None:
        g = _KEEPALIVE.gitaly
        if g and g.proc and g.proc.poll() is None:
            g.kill()
            shutil.rmtree(g.base, ignore_errors=True)
