"""gitaly.SSHService end to end over plain gRPC: fetches through the bidi
SSHUploadPack (the pack must index and fsck), protocol v2, pushes through
SSHReceivePack with the hooks, SSHUploadArchive, the negotiation timeouts
(DeadlineExceeded, git killed), clients that vanish, upstream's final
exit_status messages, codes and texts, and the sidechannel RPC on a
connection that cannot carry one.
"""

import io
import shutil
import tarfile
import threading
import time

import grpc
import pytest

from conftest import assert_code, commit, git, make_history, make_repo, rpc_error
from svc_util import (FLUSH, Server, check_pack, git_processes, parse_pkts, pkt,
                      push_request, refs, wait_no_git, demux_sideband)

import ssh_pb2  # noqa: E402
import ssh_pb2_grpc  # noqa: E402

UPLOAD_PACK_CONFIG = [
    "uploadpack.allowFilter=true", "uploadpack.allowAnySHA1InWant=true",
    "uploadpack.hideRefs=refs/keep-around/", "uploadpack.hideRefs=refs/remotes/",
    "uploadpack.hideRefs=refs/tmp/",
]


@pytest.fixture(scope="module")
def srv():
    s = Server(extra_toml='[timeout]\nupload_pack_negotiation = "1s"\n'
                          'upload_archive_negotiation = "1s"\n')
    yield s
    s.close()


@pytest.fixture
def stub(srv):
    ch = srv.g.channel("unix")
    yield ssh_pb2_grpc.SSHServiceStub(ch)
    ch.close()


@pytest.fixture(scope="module")
def history(srv):
    path = srv.g.path("hist.git")
    return path, make_history(path)


class Held:
    """A request stream that sends its messages and then stays open (as an
    SSH client does) until release() or 30 s."""

    def __init__(self, msgs):
        self.msgs = msgs
        self.ev = threading.Event()

    def __iter__(self):
        for m in self.msgs:
            yield m
        self.ev.wait(30)

    def release(self):
        self.ev.set()


def collect(call):
    """(stdout, stderr, [exit statuses]) of a finished response stream."""
    out, err, st = b"", b"", []
    for m in call:
        out += m.stdout
        err += m.stderr
        if m.HasField("exit_status"):
            st.append(m.exit_status.value)
    return out, err, st


def collect_until_error(call):
    """Like collect, for a stream expected to fail: (stdout, stderr,
    statuses, RpcError)."""
    out, err, st = b"", b"", []
    with pytest.raises(grpc.RpcError) as ei:
        for m in call:
            out += m.stdout
            err += m.stderr
            if m.HasField("exit_status"):
                st.append(m.exit_status.value)
    return out, err, st, ei.value


def want_request(oid, caps="ofs-delta"):
    return pkt("want %s %s\n" % (oid, caps)) + FLUSH + pkt("done\n")


def test_upload_pack_fetch_without_half_close(srv, stub, history):
    path, oids = history
    reqs = Held([ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git")),
                 ssh_pb2.SSHUploadPackRequest(stdin=want_request(oids["a2"]))])
    t0 = time.time()
    try:
        out, err, st = collect(stub.SSHUploadPack(iter(reqs), timeout=60))
    finally:
        reqs.release()
    # the RPC ended when upload-pack did, not when the client closed
    assert time.time() - t0 < 10
    assert st == [], "no exit_status on success"
    adv, rest = parse_pkts(out)
    assert adv[0].startswith(oids["a2"].encode() + b" HEAD\0")
    assert not any(b"keep-around" in (a or b"") for a in adv)
    assert rest.startswith(b"0008NAK\n")
    d = check_pack(rest[8:])
    try:
        git("-C", d, "update-ref", "refs/heads/main", oids["a2"])
        git("-C", d, "fsck", "--strict", "--no-dangling")
        assert git("-C", d, "rev-list", "--count", "main").strip() == b"3"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_upload_pack_protocol_v2_ls_refs(srv, stub, history):
    path, _ = history
    body = pkt("command=ls-refs\n") + b"0001" + pkt("peel\n") + FLUSH
    out, _, st = collect(stub.SSHUploadPack(iter([
        ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git"),
                                     git_protocol="version=2"),
        ssh_pb2.SSHUploadPackRequest(stdin=body)]), timeout=30))
    args = []
    for c in UPLOAD_PACK_CONFIG:
        args += ["-c", c]
    want = git(*args, "upload-pack", path, input=body, env={"GIT_PROTOCOL": "version=2"})
    assert out == want
    assert out.startswith(pkt("version 2\n"))
    assert st == []


def test_upload_pack_negotiation_timeout_kills_git(srv, stub, history):
    _, oids = history
    reqs = Held([ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git")),
                 ssh_pb2.SSHUploadPackRequest(stdin=pkt("want %s\n" % oids["a2"]) + FLUSH)])
    t0 = time.time()
    try:
        _, _, st, err = collect_until_error(stub.SSHUploadPack(iter(reqs), timeout=60))
    finally:
        reqs.release()
    assert_code(err, grpc.StatusCode.DEADLINE_EXCEEDED,
                "waiting for packfile negotiation: context canceled")
    assert time.time() - t0 < 10
    assert len(st) == 1
    assert wait_no_git(srv.g.path("hist.git")) == []


def test_upload_pack_client_cancel_kills_git(srv, stub, history):
    reqs = Held([ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git"))])
    call = stub.SSHUploadPack(iter(reqs), timeout=60)
    first = next(call)  # the advertisement: git is running
    assert first.stdout
    assert git_processes(srv.g.path("hist.git"))
    call.cancel()
    reqs.release()
    assert wait_no_git(srv.g.path("hist.git")) == []


def test_upload_pack_validation(srv, stub, history):
    err = rpc_error(collect, stub.SSHUploadPack(iter([
        ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git"), stdin=b"0000")]),
        timeout=10))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "non-empty stdin in first request")
    err = rpc_error(collect, stub.SSHUploadPack(iter([ssh_pb2.SSHUploadPackRequest()]),
                                                timeout=10))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "repository not set")
    # failures after validation send exit_status 0 first, as upstream
    _, _, st, err = collect_until_error(stub.SSHUploadPack(iter([
        ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("none.git"))]), timeout=10))
    assert_code(err, grpc.StatusCode.NOT_FOUND, contains="repository not found")
    assert st == [0]
    _, _, st, err = collect_until_error(stub.SSHUploadPack(iter([
        ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git"),
                                     git_config_options=["x"])]), timeout=10))
    assert_code(err, grpc.StatusCode.INTERNAL, 'cannot convert invalid config key: "x"')
    assert st == [0]


def test_upload_pack_truncated_pktline(srv, stub, history):
    _, _, st, err = collect_until_error(stub.SSHUploadPack(iter([
        ssh_pb2.SSHUploadPackRequest(repository=srv.g.repo("hist.git")),
        ssh_pb2.SSHUploadPackRequest(stdin=b"00")]), timeout=30))
    assert err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED,
                          grpc.StatusCode.DEADLINE_EXCEEDED), err
    assert st and st[0] != 0
    assert wait_no_git(srv.g.path("hist.git")) == []


def test_upload_pack_sidechannel_needs_multiplexed_connection(srv, stub, history):
    req = ssh_pb2.SSHUploadPackWithSidechannelRequest(repository=srv.g.repo("hist.git"))
    err = rpc_error(stub.SSHUploadPackWithSidechannel, req, timeout=10,
                    metadata=[("gitaly-sidechannel-id", "7")])
    assert_code(err, grpc.StatusCode.ABORTED,
                "opennig sidechannel: sidechannel: fail to extract yamux session: "
                "non-multiplexed connection")
    err = rpc_error(stub.SSHUploadPackWithSidechannel,
                    ssh_pb2.SSHUploadPackWithSidechannelRequest(), timeout=10)
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "repository not set")


def receive_header(srv, name, gl_id="user-5", **kw):
    repo = srv.g.repo(name)
    repo.gl_repository = "project-5"
    return ssh_pb2.SSHReceivePackRequest(repository=repo, gl_id=gl_id, gl_username="joe", **kw)


def test_receive_pack_pushes(srv, stub, tmp_path):
    target = srv.g.path("ssh-push.git")
    make_repo(target)
    src = str(tmp_path / "src.git")
    make_repo(src)
    head = commit(src, {"a": b"a\n"}, "one")
    body = push_request(src, head, "refs/heads/main", caps="report-status")
    reqs = Held([receive_header(srv, "ssh-push.git"),
                 ssh_pb2.SSHReceivePackRequest(stdin=body)])
    srv.api.RequestHandlerClass.seen.clear()
    try:
        out, err, st = collect(stub.SSHReceivePack(iter(reqs), timeout=60))
    finally:
        reqs.release()
    assert st == []
    adv, rest = parse_pkts(out)
    assert b"report-status" in adv[0]
    report, rest = parse_pkts(rest)
    assert report == [b"unpack ok\n", b"ok refs/heads/main\n", None], out
    assert refs(target) == "refs/heads/main %s\n" % head
    allowed = dict(srv.api.RequestHandlerClass.seen)["/api/v4/internal/allowed"]
    assert allowed["protocol"] == "ssh"
    assert allowed["gl_repository"] == "project-5"


def test_receive_pack_failure_sends_exit_status(srv, stub):
    target = srv.g.path("ssh-push2.git")
    make_repo(target)
    _, errout, st, err = collect_until_error(stub.SSHReceivePack(iter([
        receive_header(srv, "ssh-push2.git"),
        ssh_pb2.SSHReceivePackRequest(stdin=b"00zz")]), timeout=30))
    assert st == [128]
    assert b"protocol error" in errout
    assert_code(err, grpc.StatusCode.INTERNAL, "cmd wait: exit status 128")
    assert refs(target) == ""
    assert wait_no_git(target) == []


def test_receive_pack_validation(srv, stub):
    make_repo(srv.g.path("ssh-push3.git"))
    err = rpc_error(collect, stub.SSHReceivePack(iter([
        receive_header(srv, "ssh-push3.git", gl_id="")]), timeout=10))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "empty GlId")
    err = rpc_error(collect, stub.SSHReceivePack(iter([
        receive_header(srv, "ssh-push3.git", stdin=b"x")]), timeout=10))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "non-empty data in first request")
    err = rpc_error(collect, stub.SSHReceivePack(iter([
        ssh_pb2.SSHReceivePackRequest(gl_id="user-1")]), timeout=10))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "repository not set")
    err = rpc_error(collect, stub.SSHReceivePack(iter([
        receive_header(srv, "absent.git")]), timeout=10))
    assert_code(err, grpc.StatusCode.NOT_FOUND, contains="repository not found")


def test_upload_archive(srv, stub, history):
    path, _ = history
    body = pkt("argument --format=tar\n") + pkt("argument main\n") + FLUSH
    out, errout, st = collect(stub.SSHUploadArchive(iter([
        ssh_pb2.SSHUploadArchiveRequest(repository=srv.g.repo("hist.git")),
        ssh_pb2.SSHUploadArchiveRequest(stdin=body)]), timeout=30))
    assert st == [0]
    ack, rest = parse_pkts(out)
    assert ack == [b"ACK\n", None]
    data, _ = demux_sideband(rest)
    assert data == git("-C", path, "archive", "--format=tar", "main")
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert sorted(names) == ["README", "x"]


def test_upload_archive_negotiation_timeout(srv, stub, history):
    reqs = Held([ssh_pb2.SSHUploadArchiveRequest(repository=srv.g.repo("hist.git")),
                 ssh_pb2.SSHUploadArchiveRequest(stdin=pkt("argument --format=tar\n"))])
    try:
        _, _, st, err = collect_until_error(stub.SSHUploadArchive(iter(reqs), timeout=60))
    finally:
        reqs.release()
    assert_code(err, grpc.StatusCode.DEADLINE_EXCEEDED,
                "waiting for packfile negotiation: context canceled")
    assert st == []
    assert wait_no_git(srv.g.path("hist.git")) == []


def test_upload_archive_validation(srv, stub):
    err = rpc_error(collect, stub.SSHUploadArchive(iter([
        ssh_pb2.SSHUploadArchiveRequest(repository=srv.g.repo("hist.git"), stdin=b"0")]),
        timeout=10))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "non-empty stdin in first request")
    err = rpc_error(collect, stub.SSHUploadArchive(iter([
        ssh_pb2.SSHUploadArchiveRequest(repository=srv.g.repo("gone.git"))]), timeout=10))
    assert_code(err, grpc.StatusCode.NOT_FOUND, contains="repository not found")
