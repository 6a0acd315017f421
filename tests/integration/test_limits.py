"""Concurrency and rate limits over gRPC ([[concurrency]], [[rate_limiting]]).

A slot is held by a bidi stream whose client sends its first message (the
one carrying the repository, on which the limiter acquires) and then keeps
the stream open: CommitService/CheckObjectsExist and
FilterShasWithSignatures read requests until the client half-closes. The
scenarios check upstream's behaviour: one call runs, one waits in the FIFO
queue, the next is refused at once with ResourceExhausted and a
gitaly.LimitError detail; a waiter gives up after max_queue_wait; another
repository is not affected; the access log carries the limit.* fields and
the gitaly_concurrency_limiting_* / gitaly_requests_dropped_total metrics
move; token buckets refuse the request past the burst.
"""

import threading
import time

import grpc
import pytest

import commit_pb2 as cp
import commit_pb2_grpc
import errors_pb2
import repository_pb2 as rp
import repository_pb2_grpc
import status_pb2
from conftest import assert_code, make_history, metric, rpc_error

HOLD_RPC = "/gitaly.CommitService/CheckObjectsExist"
WAIT_RPC = "/gitaly.CommitService/FilterShasWithSignatures"
RATE_RPC = "/gitaly.RepositoryService/RepositoryExists"
ADAPTIVE_RPC = "/gitaly.CommitService/CountCommits"

LIMITS_TOML = """
[[concurrency]]
rpc = "%s"
max_per_repo = 1
max_queue_size = 1

[[concurrency]]
rpc = "%s"
max_per_repo = 1
max_queue_wait = "100ms"

[[concurrency]]
rpc = "%s"
adaptive = true
initial_limit = 3
min_limit = 1
max_limit = 5

[[rate_limiting]]
rpc = "%s"
interval = "1m"
burst = 2
""" % (HOLD_RPC, WAIT_RPC, ADAPTIVE_RPC, RATE_RPC)

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import Gitaly, short_tmpdir
    import shutil
    g = Gitaly(short_tmpdir(), extra_toml=LIMITS_TOML)
    for rel in ("lim/a.git", "lim/b.git"):
        make_history(g.path(rel))
    g.start()
    yield g
    try:
        g.stop()
    finally:
        shutil.rmtree(g.base, ignore_errors=True)


class Held:
    """A bidi call that sends one request and then keeps its stream open
    until release(); its responses and final error are collected."""

    def __init__(self, fn, first, follow):
        self.release_ev = threading.Event()
        self.responses = []
        self.error = None
        self.done = threading.Event()

        def reqs():
            yield first
            self.release_ev.wait(30)
            yield follow

        def run():
            try:
                for r in fn(reqs(), timeout=30):
                    self.responses.append(r)
            except grpc.RpcError as e:
                self.error = e
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def release(self):
        self.release_ev.set()

    def join(self, timeout=15):
        assert self.done.wait(timeout), "call did not finish"
        self.thread.join(timeout)


def limit_detail(err):
    """The gitaly.LimitError of an error's google.rpc.Status details."""
    st = None
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status()
            st.ParseFromString(v)
    assert st is not None, "no grpc-status-details-bin"
    assert st.code == err.code().value[0]
    assert [d.type_url for d in st.details] == ["type.googleapis.com/gitaly.LimitError"]
    le = errors_pb2.LimitError()
    le.ParseFromString(st.details[0].value)
    return le


def wait_metric(g, name, value, timeout=5, **labels):
    deadline = time.time() + timeout
    while True:
        got = metric(g.metrics(), name, **labels)
        if got == value or time.time() > deadline:
            return got
        time.sleep(0.05)


def method_labels(full):
    svc, meth = full.lstrip("/").split("/")
    return {"system": "gitaly", "grpc_service": svc, "grpc_method": meth}


def test_metrics_series_exist_at_start(server):
    samples = server.metrics()
    for rpc in (HOLD_RPC, WAIT_RPC, "/gitaly.RepositoryService/ReplicateRepository"):
        lb = method_labels(rpc)
        assert metric(samples, "gitaly_concurrency_limiting_in_progress", **lb) == 0
        assert metric(samples, "gitaly_concurrency_limiting_queued", **lb) == 0
        assert metric(samples, "gitaly_concurrency_limiting_acquiring_seconds_count", **lb) is not None
    assert metric(samples, "gitaly_requests_dropped_total", reason="rate",
                  **method_labels(RATE_RPC)) == 0


def test_one_runs_one_waits_one_is_refused(server):
    g = server
    lb = method_labels(HOLD_RPC)
    ch = g.channel("unix")
    stub = commit_pb2_grpc.CommitServiceStub(ch)
    repo_a, repo_b = g.repo("lim/a.git"), g.repo("lim/b.git")
    dropped0 = metric(g.metrics(), "gitaly_requests_dropped_total", reason="max_size", **lb) or 0

    def first(repo):
        return cp.CheckObjectsExistRequest(repository=repo, revisions=[b"main"])

    follow = cp.CheckObjectsExistRequest(revisions=[b"main"])
    running = Held(stub.CheckObjectsExist, first(repo_a), follow)
    assert wait_metric(g, "gitaly_concurrency_limiting_in_progress", 1, **lb) == 1
    waiting = Held(stub.CheckObjectsExist, first(repo_a), follow)
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 1, **lb) == 1

    # The queue (1 running + 1 waiting) is full: refused at once.
    t0 = time.time()
    err = rpc_error(lambda: list(stub.CheckObjectsExist(iter([first(repo_a)]), timeout=10)))
    assert time.time() - t0 < 2
    assert_code(err, EXHAUSTED, "maximum queue size reached")
    le = limit_detail(err)
    assert le.error_message == "maximum queue size reached"
    assert le.HasField("retry_after")
    assert le.retry_after.seconds == 0 and le.retry_after.nanos == 0

    # Another repository has its own slots.
    other = list(stub.CheckObjectsExist(iter([first(repo_b)]), timeout=10))
    assert [e.exists for r in other for e in r.revisions] == [True]

    # The waiter has not run yet; releasing the first lets it in.
    time.sleep(0.2)
    assert not waiting.done.is_set() and waiting.responses == []
    running.release()
    running.join()
    assert running.error is None
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 0, **lb) == 0
    waiting.release()
    waiting.join()
    assert waiting.error is None, waiting.error
    assert [e.exists for r in waiting.responses for e in r.revisions] == [True, True]
    assert wait_metric(g, "gitaly_concurrency_limiting_in_progress", 0, **lb) == 0
    assert metric(g.metrics(), "gitaly_requests_dropped_total", reason="max_size",
                  **lb) == dropped0 + 1
    assert metric(g.metrics(), "gitaly_concurrency_limiting_acquiring_seconds_count", **lb) >= 3

    logs = g.wait_log(lambda e: e.get("grpc.method") == "CheckObjectsExist"
                      and e.get("limit.concurrency_dropped") == "max_size")
    assert logs, "no access-log line for the refused call"
    d = logs[-1]
    assert d["grpc.code"] == "ResourceExhausted"
    assert d["limit.limiting_type"] == "per-rpc"
    assert d["limit.limiting_key"] == "lim/a.git"
    assert d["limit.concurrency_in_progress"] == 1
    assert d["limit.concurrency_queue_length"] == 1
    ok = [e for e in g.log_entries() if e.get("grpc.method") == "CheckObjectsExist"
          and e.get("grpc.code") == "OK" and e.get("limit.limiting_key") == "lim/a.git"]
    assert len(ok) >= 2
    # the waiter spent at least the 0.2 s above in the queue
    assert max(e["limit.concurrency_queue_ms"] for e in ok) >= 200
    assert all(e["limit.concurrency_in_progress"] == 1 for e in ok)
    ch.close()


def test_waiter_times_out_after_max_queue_wait(server):
    g = server
    lb = method_labels(WAIT_RPC)
    ch = g.channel("unix")
    stub = commit_pb2_grpc.CommitServiceStub(ch)
    repo_a = g.repo("lim/a.git")
    req = cp.FilterShasWithSignaturesRequest(repository=repo_a, shas=[])
    follow = cp.FilterShasWithSignaturesRequest(shas=[])
    running = Held(stub.FilterShasWithSignatures, req, follow)
    assert wait_metric(g, "gitaly_concurrency_limiting_in_progress", 1, **lb) == 1

    t0 = time.time()
    err = rpc_error(lambda: list(stub.FilterShasWithSignatures(iter([req]), timeout=10)))
    waited = time.time() - t0
    assert_code(err, EXHAUSTED, "maximum time in concurrency queue reached")
    assert limit_detail(err).error_message == "maximum time in concurrency queue reached"
    assert 0.09 <= waited < 2, waited

    # A caller whose own deadline is shorter than max_queue_wait gets
    # DeadlineExceeded (upstream's statushandler rewrites the code).
    err = rpc_error(lambda: list(stub.FilterShasWithSignatures(iter([req]), timeout=0.05)))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    # Another repository is not queued behind lim/a.git.
    other = cp.FilterShasWithSignaturesRequest(repository=g.repo("lim/b.git"), shas=[])
    list(stub.FilterShasWithSignatures(iter([other]), timeout=10))

    running.release()
    running.join()
    assert running.error is None
    assert metric(g.metrics(), "gitaly_requests_dropped_total", reason="max_time", **lb) >= 1
    logs = g.wait_log(lambda e: e.get("grpc.method") == "FilterShasWithSignatures"
                      and e.get("limit.concurrency_dropped") == "max_time")
    assert logs
    assert logs[0]["grpc.code"] == "ResourceExhausted"
    assert logs[0]["error"] == "maximum time in concurrency queue reached"
    assert logs[0]["limit.concurrency_queue_ms"] >= 100
    assert logs[0]["limit.limiting_key"] == "lim/a.git"
    ch.close()


def test_cancelled_waiter_leaves_the_queue(server):
    g = server
    lb = method_labels(HOLD_RPC)
    ch = g.channel("unix")
    stub = commit_pb2_grpc.CommitServiceStub(ch)
    first = cp.CheckObjectsExistRequest(repository=g.repo("lim/a.git"), revisions=[b"main"])
    follow = cp.CheckObjectsExistRequest(revisions=[b"main"])
    running = Held(stub.CheckObjectsExist, first, follow)
    assert wait_metric(g, "gitaly_concurrency_limiting_in_progress", 1, **lb) == 1
    fut = stub.CheckObjectsExist(iter([first]), timeout=30)
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 1, **lb) == 1
    fut.cancel()
    # The server notices the cancel and frees the queue place.
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 0, **lb) == 0
    assert g.wait_log(lambda e: e.get("grpc.method") == "CheckObjectsExist"
                      and e.get("limit.concurrency_dropped") == "other")
    # The queue place is usable again.
    waiting = Held(stub.CheckObjectsExist, first, follow)
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 1, **lb) == 1
    running.release()
    running.join()
    waiting.release()
    waiting.join()
    assert waiting.error is None
    ch.close()


def test_calls_without_repository_or_unconfigured_are_not_limited(server):
    g = server
    ch = g.channel("unix")
    stub = commit_pb2_grpc.CommitServiceStub(ch)
    first = cp.CheckObjectsExistRequest(repository=g.repo("lim/a.git"), revisions=[b"main"])
    follow = cp.CheckObjectsExistRequest(revisions=[b"main"])
    lb = method_labels(HOLD_RPC)
    running = Held(stub.CheckObjectsExist, first, follow)
    waiting = Held(stub.CheckObjectsExist, first, follow)
    assert wait_metric(g, "gitaly_concurrency_limiting_queued", 1, **lb) == 1
    # An unlimited RPC on the same repository runs at once.
    rstub = repository_pb2_grpc.RepositoryServiceStub(ch)
    assert rstub.RepositorySize(rp.RepositorySizeRequest(repository=g.repo("lim/a.git")),
                                timeout=10) is not None
    # A first message without a repository is not limited (the handler's own error).
    err = rpc_error(lambda: list(stub.CheckObjectsExist(
        iter([cp.CheckObjectsExistRequest(revisions=[b"main"])]), timeout=10)))
    assert err.code() != EXHAUSTED
    running.release()
    waiting.release()
    running.join()
    waiting.join()
    ch.close()


def test_rate_limit(server):
    g = server
    lb = method_labels(RATE_RPC)
    ch = g.channel("unix")
    stub = repository_pb2_grpc.RepositoryServiceStub(ch)
    repo_a = rp.RepositoryExistsRequest(repository=g.repo("lim/a.git"))
    repo_b = rp.RepositoryExistsRequest(repository=g.repo("lim/b.git"))
    assert stub.RepositoryExists(repo_a, timeout=10).exists
    assert stub.RepositoryExists(repo_a, timeout=10).exists
    err = rpc_error(stub.RepositoryExists, repo_a, timeout=10)
    assert_code(err, EXHAUSTED, "rate limit reached")
    le = limit_detail(err)
    assert le.error_message == "rate limit reached"
    assert le.retry_after.seconds == 0 and le.retry_after.nanos == 0
    # Buckets are per repository.
    assert stub.RepositoryExists(repo_b, timeout=10).exists
    assert metric(g.metrics(), "gitaly_requests_dropped_total", reason="rate", **lb) == 1
    logs = g.wait_log(lambda e: e.get("grpc.method") == "RepositoryExists"
                      and e.get("grpc.code") == "ResourceExhausted")
    assert logs and logs[0]["error"] == "rate limit reached"
    ch.close()


def test_replicate_repository_has_an_implicit_limit(server):
    # Not configured, yet upstream limits it to 1 per repository: its
    # series exist from the start (test_metrics_series_exist_at_start)
    # and no other RPC gets one.
    samples = server.metrics()
    methods = {l.get("grpc_method") for n, l, v in samples
               if n == "gitaly_concurrency_limiting_in_progress"}
    assert methods == {"CheckObjectsExist", "FilterShasWithSignatures", "CountCommits",
                       "ReplicateRepository"}


def test_adaptive_limit_starts_at_initial(server):
    # The calculator resets the limit to initial_limit at startup and moves
    # it every 30 s within [min_limit, max_limit] (unit-tested with fake
    # watchers); here, the gauge is exported under upstream's limit name.
    got = metric(server.metrics(), "gitaly_concurrency_limiting_current_limit",
                 limit="perRPC" + ADAPTIVE_RPC)
    assert got is not None and 1 <= got <= 5
    # static limits are not adaptive limits
    assert metric(server.metrics(), "gitaly_concurrency_limiting_current_limit",
                  limit="perRPC" + HOLD_RPC) is None
