"""Concurrency limits under real `git clone`s through gitaly-gateway (smart
HTTP -> SmartHTTPService/PostUploadPackWithSidechannel).

The first clone is held in the middle of its fetch: it goes through a small
TCP proxy that stops reading the gateway's answer once the clone sent its
wants, so git upload-pack on the server blocks on a full pipe (the
repository holds a 24 MiB incompressible blob) and the RPC keeps its slot.
With max_per_repo = 1 and max_queue_size = 1, a second clone of the same
repository waits in the queue, a third fails at once with
ResourceExhausted; a clone of another repository is not affected; once the
first clone is let go, the first two complete intact. With
max_queue_wait = "100ms" the waiter gives up with upstream's message. The
gitaly access log and metrics show all of it.

Needs the gateway (tests/integration/gateway_util.py, build/bin/gitaly-gateway)
and SmartHTTPService; skipped where they are absent.
"""

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import git, metric, short_tmpdir

gateway_util = pytest.importorskip("gateway_util")
if not os.access(gateway_util.GATEWAY_BIN, os.X_OK):
    pytest.skip("no gitaly-gateway binary", allow_module_level=True)

RPC = "/gitaly.SmartHTTPService/PostUploadPackWithSidechannel"
LABELS = {"system": "gitaly", "grpc_service": "gitaly.SmartHTTPService",
          "grpc_method": "PostUploadPackWithSidechannel"}
BLOB_BYTES = 24 << 20


class StallProxy:
    """Forwards TCP connections to the gateway; on a connection whose client
    has sent a fetch request (a "want " line), stops reading the answer
    until release()."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.released = threading.Event()
        self.stalled = threading.Event()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        s = socket.create_connection(self.target)
        wanted = threading.Event()

        def up():
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        s.shutdown(socket.SHUT_WR)
                        return
                    if b"want " in d:
                        wanted.set()
                    s.sendall(d)
            except OSError:
                pass

        def down():
            try:
                while True:
                    if wanted.is_set() and not self.released.is_set():
                        self.stalled.set()
                        self.released.wait(60)
                    d = s.recv(65536)
                    if not d:
                        c.shutdown(socket.SHUT_WR)
                        return
                    c.sendall(d)
            except OSError:
                pass
            finally:
                c.close()
                s.close()

        threading.Thread(target=up, daemon=True).start()
        down()

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path)

    def release(self):
        self.released.set()

    def close(self):
        self.closed = True
        self.released.set()
        self.lsock.close()


class Clone:
    """`git clone --bare` in the background."""

    def __init__(self, url, dest):
        self.dest = dest
        self.proc = subprocess.Popen(["git", "-c", "protocol.version=2", "clone", "-q", "--bare",
                                      url, dest],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))

    def wait(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode(errors="replace")


def make_big_repo(path, work):
    """A bare repository at path with one commit holding BLOB_BYTES of
    random data (so its pack cannot fit in socket buffers)."""
    os.makedirs(work)
    git("init", "-q", "-b", "main", work)
    with open(os.path.join(work, "blob.bin"), "wb") as f:
        f.write(os.urandom(BLOB_BYTES))
    with open(os.path.join(work, "README"), "w") as f:
        f.write("big\n")
    git("-C", work, "add", ".")
    git("-C", work, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "big")
    git("clone", "-q", "--bare", work, path)
    return git("-C", path, "rev-parse", "main").decode().strip()


def wait_metric(g, name, value, timeout=15, **labels):
    deadline = time.time() + timeout
    while True:
        got = metric(g.metrics(), name, **labels)
        if got == value or time.time() > deadline:
            return got
        time.sleep(0.05)


class LimitEnv:
    def __init__(self, limits_toml):
        from gitlab_stub import GitLabStub
        self.stub = GitLabStub().start()
        self.gitaly = gateway_util.StubbedGitaly(short_tmpdir(), self.stub.url, token="gwtoken",
                                                 extra_toml=limits_toml)
        self.work = short_tmpdir()
        self.big_head = make_big_repo(self.gitaly.path("big.git"),
                                      os.path.join(self.work, "src-big"))
        small = os.path.join(self.work, "src-small")
        os.makedirs(small)
        git("init", "-q", "-b", "main", small)
        with open(os.path.join(small, "f"), "w") as f:
            f.write("small\n")
        git("-C", small, "add", ".")
        git("-C", small, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "s")
        git("clone", "-q", "--bare", small, self.gitaly.path("small.git"))
        self.small_head = git("-C", small, "rev-parse", "main").decode().strip()
        self.gitaly.start()
        self.gw_base = short_tmpdir()
        self.gateway = gateway_util.Gateway(self.gw_base, self.gitaly).start()
        self.proxy = StallProxy(self.gateway.port)

    def close(self):
        self.proxy.close()
        errors = []
        for f in (self.gateway.stop, self.gitaly.stop, self.stub.stop):
            try:
                f()
            except AssertionError as e:
                errors.append(str(e))
        for d in (self.gitaly.base, self.gw_base, self.work):
            shutil.rmtree(d, ignore_errors=True)
        assert not errors, errors


def check_clone(path, head):
    assert git("-C", path, "rev-parse", "main").decode().strip() == head
    git("-C", path, "fsck", "--strict")


def gitaly_lines(env, pred):
    return [e for e in env.gitaly.log_entries()
            if e.get("grpc.method") == "PostUploadPackWithSidechannel" and pred(e)]


@pytest.fixture
def queue_env():
    e = LimitEnv('[[concurrency]]\nrpc = "%s"\nmax_per_repo = 1\nmax_queue_size = 1\n' % RPC)
    yield e
    e.close()


@pytest.fixture
def wait_env():
    e = LimitEnv('[[concurrency]]\nrpc = "%s"\nmax_per_repo = 1\nmax_queue_wait = "100ms"\n' % RPC)
    yield e
    e.close()


def test_three_clones_one_runs_one_waits_one_refused(queue_env):
    env = queue_env
    g = env.gitaly
    held = Clone(env.proxy.url("big.git"), os.path.join(env.work, "held.git"))
    assert env.proxy.stalled.wait(60), "the first clone never sent its wants"
    assert wait_metric(g, "gitaly_concurrency_limiting_in_progress", 1, **LABELS) == 1

    waiting = Clone(env.gateway.url("big.git"), os.path.join(env.work, "waiting.git"))
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 1, **LABELS) == 1

    t0 = time.time()
    rc, err = Clone(env.gateway.url("big.git"), os.path.join(env.work, "refused.git")).wait(60)
    assert rc != 0, "third clone should be refused"
    assert time.time() - t0 < 20
    refused = gitaly_lines(env, lambda e: e.get("limit.concurrency_dropped") == "max_size")
    assert len(refused) == 1, refused
    assert refused[0]["grpc.code"] == "ResourceExhausted"
    assert refused[0]["error"] == "maximum queue size reached"
    assert refused[0]["limit.limiting_key"] == "big.git"
    assert refused[0]["limit.limiting_type"] == "per-rpc"
    assert "maximum queue size reached" in env.gateway.log_text()

    # Another repository is not held up.
    rc, err = Clone(env.gateway.url("small.git"), os.path.join(env.work, "small.git")).wait(60)
    assert rc == 0, err
    check_clone(os.path.join(env.work, "small.git"), env.small_head)

    # The waiter is still waiting; letting the first clone go serves both.
    assert waiting.proc.poll() is None
    env.proxy.release()
    rc, err = held.wait()
    assert rc == 0, err
    rc, err = waiting.wait()
    assert rc == 0, err
    check_clone(os.path.join(env.work, "held.git"), env.big_head)
    check_clone(os.path.join(env.work, "waiting.git"), env.big_head)

    samples = g.metrics()
    assert metric(samples, "gitaly_requests_dropped_total", reason="max_size", **LABELS) == 1
    assert metric(samples, "gitaly_concurrency_limiting_in_progress", **LABELS) == 0
    assert metric(samples, "gitaly_concurrency_limiting_queued", **LABELS) == 0
    # protocol v2: every clone makes two upload-pack calls (ls-refs, fetch)
    assert metric(samples, "gitaly_concurrency_limiting_acquiring_seconds_count", **LABELS) == 6
    ok = gitaly_lines(env, lambda e: e.get("grpc.code") == "OK"
                      and e.get("limit.limiting_key") == "big.git")
    assert len(ok) == 4
    assert max(e["limit.concurrency_queue_ms"] for e in ok) >= 100


def test_clone_waiter_times_out(wait_env):
    env = wait_env
    g = env.gitaly
    held = Clone(env.proxy.url("big.git"), os.path.join(env.work, "held.git"))
    assert env.proxy.stalled.wait(60)
    assert wait_metric(g, "gitaly_concurrency_limiting_in_progress", 1, **LABELS) == 1

    rc, err = Clone(env.gateway.url("big.git"), os.path.join(env.work, "late.git")).wait(60)
    assert rc != 0
    lines = gitaly_lines(env, lambda e: e.get("limit.concurrency_dropped") == "max_time")
    assert len(lines) == 1, lines
    assert lines[0]["grpc.code"] == "ResourceExhausted"
    assert lines[0]["error"] == "maximum time in concurrency queue reached"
    assert lines[0]["limit.concurrency_queue_ms"] >= 100

    rc, err = Clone(env.gateway.url("small.git"), os.path.join(env.work, "small.git")).wait(60)
    assert rc == 0, err

    env.proxy.release()
    rc, err = held.wait()
    assert rc == 0, err
    check_clone(os.path.join(env.work, "held.git"), env.big_head)
    assert metric(g.metrics(), "gitaly_requests_dropped_total", reason="max_time", **LABELS) == 1
