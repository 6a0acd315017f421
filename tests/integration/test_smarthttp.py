"""gitaly.SmartHTTPService end to end over plain gRPC: advertisements
compared byte for byte with git's own, pushes through PostReceivePack with
the hooks running (fake GitLab API), refused pushes leaving nothing behind,
upstream's validation codes and messages, and the sidechannel RPC on a
connection that cannot carry one.
"""

import os

import grpc
import pytest

from conftest import assert_code, commit, git, make_history, make_repo, rpc_error
from svc_util import (FLUSH, ZERO, Server, demux_sideband, has_object, parse_pkts, pkt,
                      push_request, refs, wait_no_git)

import smarthttp_pb2  # noqa: E402
import smarthttp_pb2_grpc  # noqa: E402

UPLOAD_PACK_CONFIG = [
    "uploadpack.allowFilter=true", "uploadpack.allowAnySHA1InWant=true",
    "uploadpack.hideRefs=refs/keep-around/", "uploadpack.hideRefs=refs/remotes/",
    "uploadpack.hideRefs=refs/tmp/",
]
RECEIVE_PACK_CONFIG = ["receive.advertisePushOptions=true"] + [
    "receive.hideRefs=refs/" + p + "/" for p in
    ("environments", "keep-around", "merge-requests", "pipelines", "remotes", "tmp")]


@pytest.fixture(scope="module")
def srv():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def stub(srv):
    ch = srv.g.channel("unix")
    yield smarthttp_pb2_grpc.SmartHTTPServiceStub(ch)
    ch.close()


@pytest.fixture(scope="module")
def history(srv):
    path = srv.g.path("hist.git")
    oids = make_history(path)
    return path, oids


def advertise(service, path, config, protocol=None):
    args = []
    for c in config:
        args += ["-c", c]
    env = {"GIT_PROTOCOL": protocol} if protocol else None
    out = git(*args, service, "--stateless-rpc", "--advertise-refs", path, env=env)
    return pkt("# service=git-%s\n" % service) + FLUSH + out


def info_refs(stub, method, repo, **kw):
    req = smarthttp_pb2.InfoRefsRequest(repository=repo, **kw)
    return b"".join(m.data for m in getattr(stub, method)(req, timeout=30))


def test_info_refs_upload_pack_matches_git(srv, stub, history):
    path, oids = history
    got = info_refs(stub, "InfoRefsUploadPack", srv.g.repo("hist.git"))
    assert got == advertise("upload-pack", path, UPLOAD_PACK_CONFIG)
    assert b"refs/keep-around/" not in got
    assert (oids["a2"] + " refs/heads/main").encode() in got
    assert b"allow-tip-sha1-in-want" in got and b" filter" in got


def test_info_refs_upload_pack_v2(srv, stub, history):
    path, _ = history
    got = info_refs(stub, "InfoRefsUploadPack", srv.g.repo("hist.git"),
                    git_protocol="version=2")
    assert got == advertise("upload-pack", path, UPLOAD_PACK_CONFIG, "version=2")
    assert b"version 2\n" in got
    # unknown protocol values are ignored: a v0 advertisement
    got = info_refs(stub, "InfoRefsUploadPack", srv.g.repo("hist.git"),
                    git_protocol="version=3")
    assert got == advertise("upload-pack", path, UPLOAD_PACK_CONFIG)


def test_info_refs_receive_pack_matches_git(srv, stub, history):
    path, _ = history
    got = info_refs(stub, "InfoRefsReceivePack", srv.g.repo("hist.git"))
    assert got == advertise("receive-pack", path, RECEIVE_PACK_CONFIG)
    assert b"push-options" in got
    assert b"refs/keep-around/" not in got


def test_info_refs_config_options(srv, stub, history):
    path, _ = history
    got = info_refs(stub, "InfoRefsUploadPack", srv.g.repo("hist.git"),
                    git_config_options=["uploadpack.hideRefs=refs/tags/"])
    assert got == advertise("upload-pack", path,
                            UPLOAD_PACK_CONFIG + ["uploadpack.hideRefs=refs/tags/"])
    assert b"refs/tags/v1.0" not in got
    err = rpc_error(info_refs, stub, "InfoRefsUploadPack", srv.g.repo("hist.git"),
                    git_config_options=["nokeyvalue"])
    assert_code(err, grpc.StatusCode.UNKNOWN, 'cannot convert invalid config key: "nokeyvalue"')
    err = rpc_error(info_refs, stub, "InfoRefsUploadPack", srv.g.repo("hist.git"),
                    git_config_options=["bad key=1"])
    assert_code(err, grpc.StatusCode.INTERNAL, contains="cmd: ")


def test_info_refs_bad_repository(srv, stub):
    err = rpc_error(info_refs, stub, "InfoRefsUploadPack", srv.g.repo("missing.git"))
    assert_code(err, grpc.StatusCode.NOT_FOUND, contains="repository not found")
    err = rpc_error(info_refs, stub, "InfoRefsReceivePack", None)
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "repository not set")


def receive_pack(stub, header, body, chunk=32 * 1024, metadata=None):
    def reqs():
        yield header
        for i in range(0, len(body), chunk):
            yield smarthttp_pb2.PostReceivePackRequest(data=body[i:i + chunk])
    return b"".join(m.data for m in stub.PostReceivePack(reqs(), timeout=60,
                                                         metadata=metadata))


def fresh_target(srv, name):
    path = srv.g.path(name)
    make_repo(path)
    return path


def source_repo(tmp_path, n=3):
    src = str(tmp_path / "src.git")
    make_repo(src)
    parent = []
    for i in range(n):
        c = commit(src, {"f%d" % i: os.urandom(2000) + b"\n"}, "c%d" % i, parent)
        parent = [c]
    return src, parent[0]


def header(srv, name, gl_id="user-1", **kw):
    repo = srv.g.repo(name)
    repo.gl_repository = "project-1"
    repo.gl_project_path = "group/project"
    return smarthttp_pb2.PostReceivePackRequest(repository=repo, gl_id=gl_id,
                                                gl_username="jane", **kw)


def test_post_receive_pack_pushes(srv, stub, tmp_path):
    target = fresh_target(srv, "push1.git")
    src, head = source_repo(tmp_path)
    srv.api.RequestHandlerClass.seen.clear()
    out = receive_pack(stub, header(srv, "push1.git"),
                       push_request(src, head, "refs/heads/main"),
                       metadata=[("remote_ip", "10.1.2.3")])
    lines, rest = parse_pkts(out)
    assert lines == [b"unpack ok\n", b"ok refs/heads/main\n", None], out
    assert rest == b""
    assert refs(target) == "refs/heads/main %s\n" % head
    git("-C", target, "fsck", "--strict")
    # the hooks ran and asked GitLab, with the pusher's identity
    seen = dict((p, b) for p, b in srv.api.RequestHandlerClass.seen)
    allowed = seen["/api/v4/internal/allowed"]
    assert allowed["gl_repository"] == "project-1"
    assert allowed["protocol"] == "http"
    assert allowed["user_id"] == "1"
    assert "/api/v4/internal/post_receive" in seen

    # a second push on top, in small chunks
    c2 = commit(src, {"next": b"next\n"}, "next", [head])
    out = receive_pack(stub, header(srv, "push1.git"),
                       push_request(src, c2, "refs/heads/main", old=head, exclude=[head]),
                       chunk=100)
    assert parse_pkts(out)[0] == [b"unpack ok\n", b"ok refs/heads/main\n", None]
    assert refs(target) == "refs/heads/main %s\n" % c2


def test_post_receive_pack_custom_hook_rejects(srv, stub, tmp_path):
    target = fresh_target(srv, "push2.git")
    src, head = source_repo(tmp_path)
    d = os.path.join(srv.custom_hooks, "pre-receive.d")
    os.makedirs(d, exist_ok=True)
    hook = os.path.join(d, "reject")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n")
    os.chmod(hook, 0o755)
    try:
        out = receive_pack(stub, header(srv, "push2.git"),
                           push_request(src, head, "refs/heads/main",
                                        caps="report-status side-band-64k"))
    finally:
        os.unlink(hook)
    band1, band2 = demux_sideband(out)
    assert b"pushes are closed today" in band2, out
    lines, _ = parse_pkts(band1)
    assert lines == [b"unpack ok\n", b"ng refs/heads/main pre-receive hook declined\n",
                     None], band1
    assert refs(target) == ""
    assert not has_object(target, head)


@pytest.mark.parametrize("ref", ["-foo", "refs/heads/../x"])
def test_post_receive_pack_refuses_bad_ref_names(srv, stub, tmp_path, ref):
    name = "bad%d.git" % len(ref)
    target = fresh_target(srv, name)
    src, head = source_repo(tmp_path, n=1)
    out = receive_pack(stub, header(srv, name), push_request(src, head, ref))
    lines, _ = parse_pkts(out)
    assert lines[0] == b"unpack ok\n"
    assert lines[1].startswith(b"ng " + ref.encode() + b" "), lines
    assert refs(target) == ""
    assert not os.path.exists(os.path.join(target, "refs", "x"))
    assert not os.path.exists(os.path.join(target, "-foo"))
    # (git's refname check runs after the pre-receive hook accepted the push,
    # so the unreferenced objects migrate out of the quarantine, as upstream)


def test_post_receive_pack_validation(srv, stub, tmp_path):
    fresh_target(srv, "push3.git")
    err = rpc_error(receive_pack, stub, header(srv, "push3.git", gl_id=""), b"")
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "empty GlId")
    err = rpc_error(receive_pack, stub, header(srv, "push3.git", data=b"0000"), b"")
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, "non-empty Data")
    err = rpc_error(receive_pack, stub, header(srv, "nope.git"), b"0000")
    assert_code(err, grpc.StatusCode.NOT_FOUND, contains="repository not found")
    h = header(srv, "push3.git")
    h.repository.storage_name = "unknown"
    err = rpc_error(receive_pack, stub, h, b"0000")
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, contains="storage name not found")
    err = rpc_error(receive_pack, stub, header(srv, "push3.git", git_config_options=["x"]),
                    b"0000")
    assert_code(err, grpc.StatusCode.UNKNOWN, 'cannot convert invalid config key: "x"')


def test_post_receive_pack_truncated_request(srv, stub, tmp_path):
    target = fresh_target(srv, "push4.git")
    src, head = source_repo(tmp_path, n=1)
    body = push_request(src, head, "refs/heads/main")
    # cut inside the pack: receive-pack reports the failure, nothing lands
    out = receive_pack(stub, header(srv, "push4.git"), body[:len(body) // 2])
    lines, _ = parse_pkts(out)
    assert lines[0].startswith(b"unpack ") and lines[0] != b"unpack ok\n", lines
    assert lines[1].startswith(b"ng refs/heads/main "), lines
    # a broken pkt-line header
    err = rpc_error(receive_pack, stub, header(srv, "push4.git"), b"00zz")
    assert_code(err, grpc.StatusCode.UNAVAILABLE, contains="waiting for receive-pack")
    assert refs(target) == ""
    assert not has_object(target, head)
    assert wait_no_git(target) == []


def test_post_upload_pack_needs_sidechannel(srv, stub, history):
    req = smarthttp_pb2.PostUploadPackWithSidechannelRequest(repository=srv.g.repo("hist.git"))
    err = rpc_error(stub.PostUploadPackWithSidechannel, req, timeout=10,
                    metadata=[("gitaly-sidechannel-id", "1")])
    assert_code(err, grpc.StatusCode.INTERNAL,
                "open sidechannel: sidechannel: fail to extract yamux session: "
                "non-multiplexed connection")
    err = rpc_error(stub.PostUploadPackWithSidechannel, req, timeout=10)
    assert_code(err, grpc.StatusCode.INTERNAL,
                "open sidechannel: sidechannel: sidechannel-id not found in incoming metadata")
    # validation comes first
    bad = smarthttp_pb2.PostUploadPackWithSidechannelRequest(repository=srv.g.repo("no.git"))
    err = rpc_error(stub.PostUploadPackWithSidechannel, bad, timeout=10)
    assert_code(err, grpc.StatusCode.NOT_FOUND, contains="repository not found")
    bad = smarthttp_pb2.PostUploadPackWithSidechannelRequest(
        repository=srv.g.repo("hist.git"), git_config_options=["k"])
    err = rpc_error(stub.PostUploadPackWithSidechannel, bad, timeout=10)
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT, 'cannot convert invalid config key: "k"')


def test_post_receive_pack_custom_update_hook_runs_per_ref(srv, stub, tmp_path):
    """git runs the update hook only through the hooks directory gitaly
    picks: with a custom update hook (repository or global) it must still
    run once per ref and be able to refuse one ref."""
    src, head = source_repo(tmp_path)
    for where in ("repo", "global"):
        name = "upd-%s.git" % where
        target = fresh_target(srv, name)
        if where == "repo":
            d = os.path.join(target, "custom_hooks")
        else:
            d = os.path.join(srv.custom_hooks, "update.d")
        os.makedirs(d, exist_ok=True)
        hook = os.path.join(d, "update" if where == "repo" else "no-blocked")
        with open(hook, "w") as f:
            f.write('#!/bin/sh\n[ "$1" = refs/heads/blocked ] && '
                    '{ echo "blocked by update hook" >&2; exit 1; }\nexit 0\n')
        os.chmod(hook, 0o755)
        try:
            body = (pkt("%s %s refs/heads/main\0report-status side-band-64k\n" % (ZERO, head)) +
                    pkt("%s %s refs/heads/blocked\n" % (ZERO, head)) + FLUSH +
                    git("-C", src, "pack-objects", "--stdout", "--revs", "-q",
                        input=("%s\n" % head).encode()))
            out = receive_pack(stub, header(srv, name), body)
        finally:
            os.unlink(hook)
        band1, band2 = demux_sideband(out)
        assert b"blocked by update hook" in band2, out
        lines, _ = parse_pkts(band1)
        assert b"ok refs/heads/main\n" in lines
        assert b"ng refs/heads/blocked hook declined\n" in lines
        assert refs(target) == "refs/heads/main %s\n" % head


def test_post_receive_pack_spawns_only_needed_hooks(srv, stub, tmp_path):
    """Without a custom update hook and without a Praefect transaction the
    update and reference-transaction hooks have nothing to do: git is not
    made to run them (one process per ref each), pre/post-receive still run."""
    src, head = source_repo(tmp_path)
    name = "lean.git"
    target = fresh_target(srv, name)
    body = (pkt("%s %s refs/heads/main\0report-status\n" % (ZERO, head)) +
            pkt("%s %s refs/heads/other\n" % (ZERO, head)) + FLUSH +
            git("-C", src, "pack-objects", "--stdout", "--revs", "-q",
                input=("%s\n" % head).encode()))
    out = receive_pack(stub, header(srv, name), body)
    assert parse_pkts(out)[0] == [b"unpack ok\n", b"ok refs/heads/main\n",
                                  b"ok refs/heads/other\n", None], out
    assert len(refs(target).splitlines()) == 2
    calls = [e.get("grpc.method") for e in srv.g.log_entries()
             if e.get("grpc.request.repoPath") == name and
             e.get("grpc.service") == "gitaly.HookService"]
    assert "PreReceiveHook" in calls and "PostReceiveHook" in calls, calls
    assert "UpdateHook" not in calls and "ReferenceTransactionHook" not in calls, calls


def test_post_receive_pack_stdin_is_a_socket(srv, stub, tmp_path):
    """gitaly feeds receive-pack through a Unix socket, not a pipe: a writer
    blocked on a full pipe is woken for every 4 KiB index-pack reads, one
    blocked on a socket only once most of its buffer drained. A custom
    pre-receive hook (run while receive-pack waits for it) looks at
    receive-pack's stdin; the push itself still lands intact."""
    src, head = source_repo(tmp_path, n=40)
    name = "stdin-socket.git"
    target = fresh_target(srv, name)
    seen = str(tmp_path / "stdin-kind")
    d = os.path.join(srv.custom_hooks, "pre-receive.d")
    os.makedirs(d, exist_ok=True)
    hook = os.path.join(d, "stdin-kind")
    with open(hook, "w") as f:
        f.write("""#!/bin/sh
for c in $(grep -l -a -e --stateless-rpc /proc/[0-9]*/cmdline 2>/dev/null); do
    if grep -q -a -e receive-pack $c && grep -q -a -e %s $c; then
        readlink ${c%%/cmdline}/fd/0 >> '%s'
    fi
done
exit 0
""" % (name, seen))
    os.chmod(hook, 0o755)
    try:
        out = receive_pack(stub, header(srv, name),
                           push_request(src, head, "refs/heads/main"), chunk=7000)
    finally:
        os.unlink(hook)
    assert parse_pkts(out)[0] == [b"unpack ok\n", b"ok refs/heads/main\n", None], out
    assert refs(target) == "refs/heads/main %s\n" % head
    git("-C", target, "fsck", "--strict")
    with open(seen) as f:
        kinds = f.read().split()
    assert kinds and all(k.startswith("socket:[") for k in kinds), kinds
