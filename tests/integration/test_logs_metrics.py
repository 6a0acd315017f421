"""The JSON access log (one line per RPC, upstream's field names and level
mapping, correlation ids) and the grpc_server_* Prometheus families."""

import os
import re
import time
import uuid

import grpc
import pytest

import health_pb2
import health_pb2_grpc
import repository_pb2 as rp
import server_pb2
import shared_pb2
from conftest import make_history, metric, rpc_error


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


def cid():
    return "test-" + uuid.uuid4().hex


def lines_for(g, correlation_id, n=1, timeout=5):
    found = g.wait_log(lambda e: e.get("correlation_id") == correlation_id
                       and "grpc.code" in e, timeout)
    assert len(found) == n, "expected %d access-log line(s) for %s, got %r" % (
        n, correlation_id, found)
    return found


def test_access_log_line_for_unary_ok(gitaly, ch):
    c = cid()
    gitaly.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=5,
                                      metadata=[("x-gitlab-correlation-id", c),
                                                ("x-gitlab-client-name", "pytest-client")])
    (e,) = lines_for(gitaly, c)
    assert e["grpc.code"] == "OK"
    assert e["grpc.method"] == "ServerInfo"
    assert e["grpc.service"] == "gitaly.ServerService"
    assert e["grpc.request.fullMethod"] == "/gitaly.ServerService/ServerInfo"
    assert e["level"] == "info"
    assert e["msg"] == "finished unary call with code OK"
    assert e["system"] == "grpc"
    assert e["span.kind"] == "server"
    assert e["component"] == "gitaly.UnaryServerInterceptor"
    assert e["grpc.meta.client_name"] == "pytest-client"
    assert e["grpc.meta.method_type"] == "unary"
    assert isinstance(e["grpc.time_ms"], float) or isinstance(e["grpc.time_ms"], int)
    assert 0 <= e["grpc.time_ms"] < 5000
    assert isinstance(e["pid"], int) and e["pid"] == gitaly.proc.pid
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]), e["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", e["grpc.start_time"]), \
        e["grpc.start_time"]
    assert "grpc.request.repoPath" not in e
    assert "error" not in e


def test_correlation_id_generated_when_absent(gitaly, ch):
    marker = "gen-%d" % time.time_ns()
    stub = gitaly.server_stub(ch)
    # tag the calls through client_name so we can find them
    for _ in range(2):
        stub.ServerInfo(server_pb2.ServerInfoRequest(), timeout=5,
                        metadata=[("x-gitlab-client-name", marker)])
    found = gitaly.wait_log(lambda e: e.get("grpc.meta.client_name") == marker)
    deadline = time.time() + 5
    while len(found) < 2 and time.time() < deadline:
        time.sleep(0.05)
        found = gitaly.wait_log(lambda e: e.get("grpc.meta.client_name") == marker)
    assert len(found) == 2
    ids = [e.get("correlation_id") for e in found]
    assert all(ids) and ids[0] != ids[1], ids
    assert all(len(i) >= 16 for i in ids), ids


def test_repository_fields_and_levels(gitaly, ch):
    stub = gitaly.repo_stub(ch)
    rel = "@hashed/aa/bb/logs.git"
    make_history(gitaly.path(rel))
    repo = shared_pb2.Repository(storage_name="default", relative_path=rel,
                                 gl_repository="project-42", gl_project_path="group/proj")
    c = cid()
    stub.RepositoryExists(rp.RepositoryExistsRequest(repository=repo), timeout=5,
                          metadata=[("x-gitlab-correlation-id", c)])
    (e,) = lines_for(gitaly, c)
    assert e["grpc.request.repoStorage"] == "default"
    assert e["grpc.request.repoPath"] == rel
    assert e["grpc.request.glRepository"] == "project-42"
    assert e["grpc.request.glProjectPath"] == "group/proj"
    assert e["grpc.meta.method_operation"] == "accessor"
    assert e["grpc.meta.method_scope"] == "repository"

    # NotFound -> info, with the error text
    c = cid()
    missing = shared_pb2.Repository(storage_name="default", relative_path="nope/missing.git")
    rpc_error(stub.HasLocalBranches, rp.HasLocalBranchesRequest(repository=missing), timeout=5,
              metadata=[("x-gitlab-correlation-id", c)])
    (e,) = lines_for(gitaly, c)
    assert e["grpc.code"] == "NotFound"
    assert e["level"] == "info"
    assert "repository not found" in e["error"]
    assert e["grpc.request.repoPath"] == "nope/missing.git"
    assert e["msg"] == "finished unary call with code NotFound"

    # InvalidArgument -> info
    c = cid()
    rpc_error(stub.HasLocalBranches, rp.HasLocalBranchesRequest(), timeout=5,
              metadata=[("x-gitlab-correlation-id", c)])
    (e,) = lines_for(gitaly, c)
    assert e["grpc.code"] == "InvalidArgument" and e["level"] == "info"
    assert "grpc.request.repoPath" not in e

    # FailedPrecondition -> warning
    c = cid()
    os.makedirs(os.path.join(gitaly.path("plain"), "objects"), exist_ok=True)
    os.makedirs(os.path.join(gitaly.path("plain"), "refs"), exist_ok=True)
    rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=shared_pb2.Repository(storage_name="default", relative_path="plain"),
        ref=b"HEAD", revision=b"refs/heads/x"), timeout=5,
        metadata=[("x-gitlab-correlation-id", c)])
    (e,) = lines_for(gitaly, c)
    assert e["grpc.code"] == "FailedPrecondition" and e["level"] == "warning"

    # Internal -> error
    c = cid()
    rpc_error(stub.FullPath, rp.FullPathRequest(repository=repo), timeout=5,
              metadata=[("x-gitlab-correlation-id", c)])
    (e,) = lines_for(gitaly, c)
    assert e["grpc.code"] == "Internal" and e["level"] == "error"

    # Unimplemented -> error
    c = cid()
    call = ch.unary_unary("/gitaly.ServerService/NoSuchMethod",
                          request_serializer=lambda b: b, response_deserializer=lambda b: b)
    rpc_error(call, b"", timeout=5, metadata=[("x-gitlab-correlation-id", c)])
    found = gitaly.wait_log(lambda e: e.get("correlation_id") == c, 2)
    for e in found:
        assert e["grpc.code"] == "Unimplemented" and e["level"] == "error"


def test_streaming_call_log(gitaly, ch):
    stub = gitaly.repo_stub(ch)
    rel = "@hashed/cc/dd/stream.git"
    make_history(gitaly.path(rel))
    c = cid()
    list(stub.GetConfig(rp.GetConfigRequest(repository=shared_pb2.Repository(
        storage_name="default", relative_path=rel)), timeout=5,
        metadata=[("x-gitlab-correlation-id", c)]))
    (e,) = lines_for(gitaly, c)
    assert e["msg"] == "finished streaming call with code OK"
    assert e["component"] == "gitaly.StreamServerInterceptor"
    assert e["grpc.meta.method_type"] == "server_stream"
    assert e["grpc.request.repoPath"] == rel


def test_deadline_logged(gitaly, ch):
    c = cid()
    gitaly.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=30,
                                      metadata=[("x-gitlab-correlation-id", c)])
    (e,) = lines_for(gitaly, c)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", e["grpc.request.deadline"])


def test_health_check_success_not_logged(gitaly, ch):
    c = cid()
    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5,
                                         metadata=[("x-gitlab-correlation-id", c)])
    # a later call flushes ordering; the health line must not appear
    c2 = cid()
    gitaly.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=5,
                                      metadata=[("x-gitlab-correlation-id", c2)])
    lines_for(gitaly, c2)
    assert not [e for e in gitaly.log_entries() if e.get("correlation_id") == c]


def test_grpc_server_metrics(gitaly, ch):
    before = gitaly.metrics()
    stub = gitaly.server_stub(ch)
    for _ in range(3):
        stub.ServerInfo(server_pb2.ServerInfoRequest(), timeout=5)
    rstub = gitaly.repo_stub(ch)
    rpc_error(rstub.HasLocalBranches, rp.HasLocalBranchesRequest(repository=shared_pb2.Repository(
        storage_name="default", relative_path="nope/missing.git")), timeout=5)
    lab = dict(grpc_service="gitaly.ServerService", grpc_method="ServerInfo", grpc_type="unary")
    hl = dict(grpc_service="gitaly.RepositoryService", grpc_method="HasLocalBranches",
              grpc_type="unary")
    after = None

    def d(name, **kw):
        return (metric(after, name, **kw) or 0) - (metric(before, name, **kw) or 0)
    # the counters of a call may land just after its response: allow a moment
    deadline = time.time() + 3
    while True:
        after = gitaly.metrics()
        if (d("grpc_server_handled_total", **lab) >= 3
                and d("grpc_server_handled_total", **hl) >= 1) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert d("grpc_server_started_total", **lab) == 3
    assert d("grpc_server_handled_total", grpc_code="OK", **lab) == 3
    assert d("grpc_server_handling_seconds_count", **lab) == 3
    assert d("grpc_server_handling_seconds_bucket", le="+Inf", **lab) == 3
    assert d("grpc_server_msg_received_total", **lab) == 3
    assert d("grpc_server_msg_sent_total", **lab) == 3
    assert metric(after, "grpc_server_handling_seconds_sum", **lab) >= 0
    assert d("grpc_server_handled_total", grpc_code="NotFound", **hl) == 1
    # the standard buckets are there
    les = {l["le"] for n, l, v in after if n == "grpc_server_handling_seconds_bucket"
           and l.get("grpc_method") == "ServerInfo"}
    for le in ("0.001", "0.005", "0.025", "0.1", "0.5", "1", "10", "30", "60", "300", "1500",
               "+Inf"):
        assert le in les or (le + ".0") in les, (le, les)
    # every method is pre-registered at zero
    assert metric(after, "grpc_server_started_total", grpc_service="gitaly.RepositoryService",
                  grpc_method="GetArchive", grpc_type="server_stream") == 0
    text = gitaly.metrics_text()
    assert "# TYPE grpc_server_started_total counter" in text
    assert "# TYPE grpc_server_handling_seconds histogram" in text
