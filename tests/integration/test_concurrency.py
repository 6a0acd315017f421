"""Many clients at once, cancelled streams and expired deadlines: every call
gets its own correct answer, the access log records the final code (upstream
rewrites the code of a call whose deadline passed to DeadlineExceeded), and
the server stays healthy."""

import concurrent.futures
import os
import socket
import threading
import time
import uuid

import grpc
import pytest
from google.protobuf import duration_pb2

import repository_pb2 as rp
import server_pb2
from conftest import git, make_history


@pytest.fixture(scope="module")
def repo(gitaly):
    rel = "@hashed/ee/ff/conc.git"
    oids = make_history(gitaly.path(rel))
    with open(os.path.join(gitaly.path(rel), "config"), "ab") as f:
        for i in range(8000):
            f.write(b"[s%d]\n\tk = %s\n" % (i, b"v" * 40))
    return rel, oids


def test_parallel_mixed_calls(gitaly, repo):
    rel, oids = repo
    path = gitaly.path(rel)
    with open(os.path.join(path, "config"), "rb") as f:
        config = f.read()
    base = git("-C", path, "merge-base", "main", "feature").decode().strip()
    chans = [gitaly.channel(k) for k in ("unix", "tcp", "unix", "tcp")]
    errors = []

    def worker(i):
        ch = chans[i % len(chans)]
        s, r = gitaly.server_stub(ch), gitaly.repo_stub(ch)
        for j in range(15):
            try:
                k = (i + j) % 4
                if k == 0:
                    st = s.ServerInfo(server_pb2.ServerInfoRequest(),
                                      timeout=20).storage_statuses
                    # concurrent +testWrite probes must not make a storage
                    # look read-only
                    assert [(x.readable, x.writeable) for x in st] == [(True, True)] * 2
                elif k == 1:
                    data = b"".join(m.data for m in r.GetConfig(
                        rp.GetConfigRequest(repository=gitaly.repo(rel)), timeout=20))
                    assert data == config
                elif k == 2:
                    assert r.FindMergeBase(rp.FindMergeBaseRequest(
                        repository=gitaly.repo(rel), revisions=[b"main", b"feature"]),
                        timeout=20).base == base
                else:
                    assert r.RepositoryExists(rp.RepositoryExistsRequest(
                        repository=gitaly.repo(rel)), timeout=20).exists
            except Exception as e:  # collected and reported below
                errors.append((i, j, repr(e)[:300]))

    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        list(ex.map(worker, range(24)))
    for c in chans:
        c.close()
    assert not errors, errors[:5]


def test_cancelled_stream(gitaly, repo):
    rel, _ = repo
    cid = "cancel-" + uuid.uuid4().hex
    with gitaly.channel() as ch:
        it = gitaly.repo_stub(ch).GetConfig(rp.GetConfigRequest(repository=gitaly.repo(rel)),
                                            timeout=20,
                                            metadata=[("x-gitlab-correlation-id", cid)])
        first = next(it)
        assert first.data
        it.cancel()
        with pytest.raises(grpc.RpcError) as ei:
            list(it)
        assert ei.value.code() == grpc.StatusCode.CANCELLED
        # same channel still works
        assert gitaly.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=5)
    lines = gitaly.wait_log(lambda e: e.get("correlation_id") == cid and "grpc.code" in e, 5)
    assert len(lines) == 1, lines
    assert lines[0]["grpc.code"] in ("Canceled", "OK"), lines[0]


class BlackholeNTP:
    """Reads NTP queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                self.sock.recvfrom(512)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.stop = True
        self.t.join(1)
        self.sock.close()


def test_deadline_exceeded(gitaly):
    ntp = BlackholeNTP()
    cid = "deadline-" + uuid.uuid4().hex
    try:
        with gitaly.channel() as ch:
            t0 = time.time()
            with pytest.raises(grpc.RpcError) as ei:
                gitaly.server_stub(ch).ClockSynced(server_pb2.ClockSyncedRequest(
                    ntp_host="127.0.0.1:%d" % ntp.port,
                    drift_threshold=duration_pb2.Duration(seconds=1)),
                    timeout=1, metadata=[("x-gitlab-correlation-id", cid)])
            assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.time() - t0 < 5
            assert gitaly.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=5)
        # the handler may keep waiting for its NTP answer; once it ends, the
        # log says the call's deadline expired
        lines = gitaly.wait_log(lambda e: e.get("correlation_id") == cid
                                and "grpc.code" in e, 15)
        assert ntp.queries >= 1
        assert len(lines) == 1, lines
        assert lines[0]["grpc.code"] == "DeadlineExceeded", lines[0]
        assert lines[0]["level"] == "warning"
    finally:
        ntp.close()
