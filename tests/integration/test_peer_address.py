"""peer.address in the access log: the client connection's address as
upstream logs it (Go's net.Addr: "@" for an unnamed unix peer, "ip:port"
for TCP and TLS), for plain connections, for TLS connections (whose
plaintext grpc core reads from a socketpair bridged to the TLS socket) and
for calls arriving on a multiplexed ("backchannel") connection, whose gRPC
stream grpc core sees as a socketpair ("fd:N"). The gateway also passes the
HTTP client's IP as remote_ip metadata, like Workhorse."""

import re
import shutil
import uuid

import grpc

from conftest import short_tmpdir
from gateway_util import Gateway, GitLabStub, StubbedGitaly
import server_pb2

TCP = re.compile(r"^127\.0\.0\.1:\d+$")


def server_info_peer(g, kind):
    cid = "peer-" + uuid.uuid4().hex
    ch = g.channel(kind)
    try:
        # no token: refused, and logged all the same
        g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10,
                                     metadata=[("x-gitlab-correlation-id", cid)])
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        ch.close()
    found = g.wait_log(lambda e: e.get("correlation_id") == cid and "grpc.code" in e)
    assert len(found) == 1, found
    return found[0].get("peer.address")


def test_peer_address_plain_and_multiplexed():
    stub = GitLabStub().start()
    gitaly = StubbedGitaly(short_tmpdir(), stub.url, token="gwtoken")
    gitaly.start()
    gws = []
    try:
        assert server_info_peer(gitaly, "unix") == "@"
        assert TCP.match(server_info_peer(gitaly, "tcp") or "")
        for address, want in (("unix:" + gitaly.socket_path, lambda a: a == "@"),
                              ("tcp://127.0.0.1:%d" % gitaly.port, lambda a: TCP.match(a))):
            gw = Gateway(short_tmpdir(), gitaly, address=address).start()
            gws.append(gw)
            if len(gws) == 1:
                gw.create("peer.git")
            st, _, body = gw.request("GET", "/peer.git/info/refs?service=git-upload-pack")
            assert st == 200, body
            found = gitaly.wait_log(lambda e: e.get("grpc.method") == "InfoRefsUploadPack"
                                    and e.get("grpc.meta.client_name") == "gitaly-gateway"
                                    and e.get("peer.address", "").count(":") ==
                                    (0 if address.startswith("unix") else 1))
            peers = [e.get("peer.address") for e in found]
            assert peers and all(want(p) for p in peers), peers
            assert not any(p.startswith("fd:") for p in peers), peers
            # the end user's IP travels as remote_ip metadata (as from
            # Workhorse), which [pack_objects_limiting] keys on
            assert all(e.get("remote_ip") == "127.0.0.1" for e in found), found
    finally:
        for gw in gws:
            gw.stop()
            shutil.rmtree(gw.base, ignore_errors=True)
        gitaly.stop()
        stub.stop()
        shutil.rmtree(gitaly.base, ignore_errors=True)


def test_peer_address_tls(tls_cert):
    """The TLS client's own address, not the bridge's socketpair ("@")."""
    stub = GitLabStub().start()
    gitaly = StubbedGitaly(short_tmpdir(), stub.url, token="gwtoken", tls=tls_cert)
    gitaly.start()
    try:
        peer = server_info_peer(gitaly, "tls")
        assert TCP.match(peer or ""), peer
        # and the plain listeners still log theirs
        assert server_info_peer(gitaly, "unix") == "@"
        assert TCP.match(server_info_peer(gitaly, "tcp") or "")
    finally:
        gitaly.stop()
        stub.stop()
        shutil.rmtree(gitaly.base, ignore_errors=True)
