"""Listeners: the same answers over unix, tcp and tls; TLS version floor;
connection counting in /metrics; shutdown on SIGTERM."""

import os
import signal
import socket
import ssl
import subprocess
import time
import warnings

import grpc
import pytest

import server_pb2
from conftest import GITALY_BIN, metric


@pytest.fixture
def tls_gitaly(gitaly_factory, tls_cert):
    return gitaly_factory(tls=tls_cert)


def _info(g, kind):
    with g.channel(kind) as ch:
        return g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)


def test_same_server_info_on_every_listener(tls_gitaly):
    g = tls_gitaly
    answers = {k: _info(g, k) for k in ("unix", "tcp", "tls")}
    assert answers["unix"] == answers["tcp"] == answers["tls"]
    assert [s.storage_name for s in answers["unix"].storage_statuses] == ["default", "other"]


def _handshake(port, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose
        ctx.minimum_version = version
        ctx.maximum_version = version
    # let the client offer old protocols so that only the server can refuse
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version(), s.selected_alpn_protocol()


def _client_can_speak(version, tls_cert):
    """True when this Python/OpenSSL can negotiate version at all (checked
    against a local permissive server), so that a refusal by gitaly is
    really gitaly's."""
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(tls_cert["cert"], tls_cert["key"])
    srv_ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    srv_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    import threading

    def serve():
        try:
            c, _ = lst.accept()
            with srv_ctx.wrap_socket(c, server_side=True) as s:
                s.recv(1)
        except (OSError, ssl.SSLError):
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        _handshake(port, version)
        return True
    except (ssl.SSLError, OSError):
        return False
    finally:
        lst.close()
        t.join(2)


def test_tls_versions(tls_gitaly, tls_cert):
    g = tls_gitaly
    assert _handshake(g.tls_port, ssl.TLSVersion.TLSv1_2) == ("TLSv1.2", "h2")
    assert _handshake(g.tls_port, ssl.TLSVersion.TLSv1_3) == ("TLSv1.3", "h2")
    for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        if not _client_can_speak(old, tls_cert):
            continue
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _handshake(g.tls_port, old)
    # the refused handshakes did not hurt the server
    assert _info(g, "tls").storage_statuses


def test_plaintext_on_tls_port_fails(tls_gitaly):
    g = tls_gitaly
    ch = grpc.insecure_channel("127.0.0.1:%d" % g.tls_port,
                               options=[("grpc.use_local_subchannel_pool", 1)])
    with pytest.raises(grpc.RpcError) as ei:
        g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=3)
    assert ei.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    ch.close()
    assert _info(g, "tls").storage_statuses


def test_connections_total(tls_gitaly):
    g = tls_gitaly
    before = g.metrics()
    counts = {"unix": 2, "tcp": 3, "tls": 1}
    for kind, n in counts.items():
        for _ in range(n):
            _info(g, kind)
    after = g.metrics()
    for kind, n in counts.items():
        b = metric(before, "gitaly_connections_total", type=kind) or 0
        a = metric(after, "gitaly_connections_total", type=kind)
        assert a is not None, "gitaly_connections_total{type=%s} missing" % kind
        assert a - b == n, "type=%s: %s -> %s, expected +%d" % (kind, b, a, n)


def test_sigterm_stops_server(gitaly_factory):
    g = gitaly_factory()
    ch = g.channel("tcp")
    g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
    t0 = time.time()
    rc = g.stop(signal.SIGTERM)
    assert time.time() - t0 < 5
    # upstream: "unclean Gitaly shutdown", exit status 1
    assert rc == 1, rc
    with pytest.raises(grpc.RpcError):
        g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=2)
    ch.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", g.port), timeout=1).close()


def test_stale_socket_file_is_replaced(gitaly_factory):
    g = gitaly_factory(start=False)
    # a leftover socket file from a crashed run must not stop startup
    s = socket.socket(socket.AF_UNIX)
    s.bind(g.socket_path)
    s.close()
    assert os.path.exists(g.socket_path)
    g.start()
    assert _info(g, "unix").storage_statuses


def test_serve_subcommand(gitaly_factory):
    g = gitaly_factory(start=False)
    proc = subprocess.Popen([GITALY_BIN, "serve", g.config_path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                assert _info(g, "tcp").storage_statuses
                break
            except grpc.RpcError:
                time.sleep(0.1)
        else:
            pytest.fail("gitaly serve did not come up")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
