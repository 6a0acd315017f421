"""HTTP/2 keepalive tolerance: a client that pings every 20 s even without
calls (as GitLab's clients do) keeps its connection through ~45 s of idling;
the server neither sends GOAWAY nor drops it, so the next call succeeds on
the same connection. The idle part runs in the background from the start of
the session (see conftest.KeepaliveProbe) and this test runs last."""

import grpc

from conftest import metric


def test_idle_connection_survives_client_pings(keepalive_probe):
    p = keepalive_probe
    if p.error:
        raise p.error
    res = p.result
    for kind in ("unix", "tcp"):
        assert res[kind]["after"].storage_statuses, kind
        # once READY, the channel never left READY: no GOAWAY, no reconnect
        states = [s for t, s in res[kind]["states"] if t >= res["t0"]]
        assert all(s == grpc.ChannelConnectivity.READY for s in states), (kind, states)
    for kind in ("unix", "tcp"):
        assert not isinstance(res["before"], Exception), "metrics: %r" % res["before"]
        before = metric(res["before"], "gitaly_connections_total", type=kind)
        after = metric(res["after"], "gitaly_connections_total", type=kind)
        assert before is not None and after == before, (kind, before, after)
