"""v2 token authentication: codes and messages for each failure, the ±30 s
window, health checks gated too, transitioning mode, previous tokens, and
the gitaly_authentications_total counters."""

import time

import grpc
import pytest

import health_pb2
import health_pb2_grpc
import server_pb2
from conftest import assert_code, auth_md, metric, rpc_error, v2_token

SECRET = "the-secret-token"
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED


def info(g, ch, md):
    return g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10,
                                        metadata=md)


@pytest.fixture
def authed(gitaly_factory):
    return gitaly_factory(token=SECRET)


def test_no_token_configured_accepts_everything(gitaly_factory):
    g = gitaly_factory()
    with g.channel("tcp") as ch:
        for md in ([], [("authorization", "Bearer garbage")], auth_md("whatever")):
            assert info(g, ch, md).storage_statuses
    m = g.metrics()
    assert metric(m, "gitaly_authentications_total", enforced="true",
                  status="server disabled authentication") >= 3


def test_missing_header(authed):
    with authed.channel("unix") as ch:
        assert_code(rpc_error(info, authed, ch, []), UNAUTH, "authentication required")


@pytest.mark.parametrize("value", [
    "Bearer garbage",
    "Bearer v2.nothex.%d" % int(time.time()),
    "Bearer v2.abcd",
    "Basic dXNlcjpwYXNz",
    "Bearer",
])
def test_unparseable_token(authed, value):
    with authed.channel("unix") as ch:
        assert_code(rpc_error(info, authed, ch, [("authorization", value)]), UNAUTH,
                    "authentication required")


def test_wrong_secret(authed):
    with authed.channel("tcp") as ch:
        assert_code(rpc_error(info, authed, ch, auth_md("not-the-secret")), DENIED,
                    "permission denied")


def test_wrong_version(authed):
    tok = v2_token(SECRET).replace("v2.", "v1.", 1)
    with authed.channel("tcp") as ch:
        assert_code(rpc_error(info, authed, ch, [("authorization", "Bearer " + tok)]),
                    DENIED, "permission denied")


def test_scheme_is_case_insensitive(authed):
    with authed.channel("tcp") as ch:
        assert info(authed, ch, [("authorization", "bearer " + v2_token(SECRET))])


@pytest.mark.parametrize("skew", [-31, 31, -120, 3600])
def test_timestamp_out_of_window(authed, skew):
    with authed.channel("unix") as ch:
        md = auth_md(SECRET, int(time.time()) + skew)
        assert_code(rpc_error(info, authed, ch, md), DENIED, "permission denied")


@pytest.mark.parametrize("skew", [-29, 0, 29])
def test_timestamp_in_window(authed, skew):
    with authed.channel("unix") as ch:
        assert info(authed, ch, auth_md(SECRET, int(time.time()) + skew)).storage_statuses


def test_health_check_is_gated(authed):
    with authed.channel("unix") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        e = rpc_error(stub.Check, health_pb2.HealthCheckRequest(), timeout=5)
        assert_code(e, UNAUTH, "authentication required")
        e = rpc_error(stub.Check, health_pb2.HealthCheckRequest(), timeout=5,
                      metadata=auth_md("wrong"))
        assert_code(e, DENIED, "permission denied")
        r = stub.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=auth_md(SECRET))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_auth_metrics(authed):
    before = authed.metrics()
    with authed.channel("unix") as ch:
        info(authed, ch, auth_md(SECRET))
        info(authed, ch, auth_md(SECRET))
        rpc_error(info, authed, ch, [])
        rpc_error(info, authed, ch, auth_md("wrong"))
        rpc_error(info, authed, ch, auth_md(SECRET, int(time.time()) - 100))
    after = authed.metrics()

    def delta(**labels):
        return ((metric(after, "gitaly_authentications_total", **labels) or 0)
                - (metric(before, "gitaly_authentications_total", **labels) or 0))
    assert delta(enforced="true", status="ok") == 2
    assert delta(enforced="true", status="unauthenticated") == 1
    assert delta(enforced="true", status="denied") == 2

    def edelta(**labels):
        return ((metric(after, "gitaly_authentication_errors_total", **labels) or 0)
                - (metric(before, "gitaly_authentication_errors_total", **labels) or 0))
    assert edelta(version="v2", error="wrong hmac signature") == 1
    assert edelta(version="v2", error="timestamp too old") == 1


def test_transitioning_never_rejects(gitaly_factory):
    g = gitaly_factory(token=SECRET, transitioning=True)
    before = g.metrics()
    with g.channel("tcp") as ch:
        assert info(g, ch, [])
        assert info(g, ch, auth_md("wrong"))
        assert info(g, ch, auth_md(SECRET, int(time.time()) - 3600))
        assert info(g, ch, auth_md(SECRET))
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
    after = g.metrics()

    def delta(**labels):
        return ((metric(after, "gitaly_authentications_total", **labels) or 0)
                - (metric(before, "gitaly_authentications_total", **labels) or 0))
    assert delta(enforced="false", status="would be ok") == 1
    assert delta(enforced="false", status="unauthenticated") == 2
    assert delta(enforced="false", status="denied") == 2
    assert delta(enforced="true") == 0


def test_previous_tokens_accepted(gitaly_factory):
    g = gitaly_factory(token="new-secret", previous_tokens=["old-secret", "older-secret"])
    with g.channel("unix") as ch:
        for s in ("new-secret", "old-secret", "older-secret"):
            assert info(g, ch, auth_md(s)).storage_statuses
        assert_code(rpc_error(info, g, ch, auth_md("unknown-secret")), DENIED,
                    "permission denied")
        # the window applies to previous tokens as well
        assert_code(rpc_error(info, g, ch, auth_md("old-secret", int(time.time()) - 40)),
                    DENIED, "permission denied")
        assert_code(rpc_error(info, g, ch, []), UNAUTH, "authentication required")


def test_rejected_calls_are_logged(authed):
    with authed.channel("unix") as ch:
        md = [("x-gitlab-correlation-id", "auth-reject-1")]
        rpc_error(info, authed, ch, md)
    lines = authed.wait_log(lambda e: e.get("correlation_id") == "auth-reject-1")
    assert lines, "rejected call missing from the access log"
    assert lines[-1]["grpc.code"] == "Unauthenticated"
