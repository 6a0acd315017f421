"""gitaly-gateway over smart HTTP with the real git CLI: clone, incremental
fetch, every kind of push, protocol v0 and v2, gzip'd and chunked bodies,
basic auth, pushes refused by a custom hook and by the GitLab API, messages
from post-receive, and malformed or aborted requests (gateway and gitaly
stay up, no git process is left behind).
"""

import gzip
import os
import socket
import stat
import time
import zlib

import pytest

from conftest import git
from gateway_util import (Env, add_commit, git_ok, gwenv, ls_remote_refs, make_source,  # noqa: F401
                          refs, run_git, wait_no_git)


def fresh(env, name):
    env.gateway.create(name)
    return name


def test_push_clone_fsck_and_compare(gwenv):
    src = make_source(os.path.join(gwenv.work, "src1"))
    name = fresh(gwenv, "group/roundtrip.git")
    url = gwenv.gateway.url(name)
    git_ok("push", "-q", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*", cwd=src)
    want = refs(src)
    assert len(want) == 6
    assert refs(gwenv.gitaly.path(name)) == want
    git_ok("-C", gwenv.gitaly.path(name), "fsck", "--strict")
    clone = os.path.join(gwenv.work, "clone1")
    git_ok("clone", "-q", "--mirror", url, clone)
    git_ok("-C", clone, "fsck", "--strict")
    assert refs(clone) == want
    # a normal clone checks out the default branch with the right content
    wt = os.path.join(gwenv.work, "clone1wt")
    git_ok("clone", "-q", url, wt)
    with open(os.path.join(wt, "file3.txt")) as f:
        assert f.read() == "line 3\n" * 203


def test_incremental_fetch_and_push_kinds(gwenv):
    src = make_source(os.path.join(gwenv.work, "src2"))
    name = fresh(gwenv, "kinds.git")
    url = gwenv.gateway.url(name)
    disk = gwenv.gitaly.path(name)
    git_ok("push", "-q", url, "main", "topic0", "topic1", cwd=src)
    clone = os.path.join(gwenv.work, "clone2")
    git_ok("clone", "-q", url, clone)

    # fast-forward push, then an incremental fetch sees exactly the new commit
    new = add_commit(src, "ff.txt", "ff\n")
    r = git_ok("push", url, "main", cwd=src)
    assert b"main -> main" in r.stderr
    assert refs(disk)["refs/heads/main"] == new
    git_ok("fetch", "-q", "origin", cwd=clone)
    assert git("-C", clone, "rev-parse", "origin/main").decode().strip() == new
    git_ok("-C", clone, "fsck")

    # a non-fast-forward is refused without --force, accepted with it
    git_ok("checkout", "-q", "topic0", cwd=src)
    git_ok("reset", "-q", "--hard", "main~2", cwd=src)
    rewritten = add_commit(src, "rw.txt", "rewritten\n")
    r = run_git("push", url, "topic0", cwd=src)
    assert r.returncode != 0 and b"rejected" in r.stderr
    assert refs(disk)["refs/heads/topic0"] != rewritten
    git_ok("push", "-q", "--force", url, "topic0", cwd=src)
    assert refs(disk)["refs/heads/topic0"] == rewritten

    # new branch, delete a branch, push and delete tags
    git_ok("push", "-q", url, "main:refs/heads/fresh", cwd=src)
    assert refs(disk)["refs/heads/fresh"] == new
    git_ok("push", "-q", url, ":topic1", cwd=src)
    assert "refs/heads/topic1" not in refs(disk)
    git_ok("push", "-q", url, "v1.0", "light", cwd=src)
    assert refs(disk)["refs/tags/v1.0"] == refs(src)["refs/tags/v1.0"]
    git_ok("push", "-q", url, ":refs/tags/light", cwd=src)
    assert "refs/tags/light" not in refs(disk)

    git_ok("fetch", "-q", "--prune", "--tags", "origin", cwd=clone)
    remote = {k.replace("refs/remotes/origin/", "refs/heads/"): v for k, v in refs(clone).items()
              if k.startswith("refs/remotes/origin/") and not k.endswith("/HEAD")}
    remote.update({k: v for k, v in refs(clone).items() if k.startswith("refs/tags/")})
    assert remote == refs(disk)
    git_ok("-C", disk, "fsck", "--strict")


@pytest.mark.parametrize("version", ["0", "2"])
def test_ls_remote_protocols(gwenv, version):
    src = os.path.join(gwenv.work, "src3")
    if not os.path.exists(src):
        make_source(src)
        fresh(gwenv, "lsr.git")
        git_ok("push", "-q", gwenv.gateway.url("lsr.git"), "--all", cwd=src)
        git_ok("push", "-q", gwenv.gateway.url("lsr.git"), "--tags", cwd=src)
    r = git_ok("-c", "protocol.version=" + version, "ls-remote", gwenv.gateway.url("lsr.git"),
               env={"GIT_TRACE_PACKET": "1"})
    assert ls_remote_refs(r.stdout) == refs(src)
    if version == "2":
        assert b"< version 2" in r.stderr
    else:
        assert b"< version 2" not in r.stderr
    # fetch with the same protocol works too
    clone = os.path.join(gwenv.work, "clone3-" + version)
    git_ok("-c", "protocol.version=" + version, "clone", "-q", "--mirror",
           gwenv.gateway.url("lsr.git"), clone)
    assert refs(clone) == refs(src)


def test_info_refs_headers_and_errors(gwenv):
    src = make_source(os.path.join(gwenv.work, "src4"), n_branches=1)
    fresh(gwenv, "hdr.git")
    git_ok("push", "-q", gwenv.gateway.url("hdr.git"), "main", cwd=src)
    st, h, up = gwenv.gateway.request("GET", "/hdr.git/info/refs?service=git-upload-pack")
    assert st == 200
    assert h["content-type"] == "application/x-git-upload-pack-advertisement"
    assert h["cache-control"] == "no-cache"
    assert up.startswith(b"001e# service=git-upload-pack\n0000")
    assert refs(src)["refs/heads/main"].encode() in up
    st, h, body = gwenv.gateway.request("GET", "/hdr.git/info/refs?service=git-receive-pack")
    assert st == 200
    assert h["content-type"] == "application/x-git-receive-pack-advertisement"
    assert body.startswith(b"001f# service=git-receive-pack\n0000")
    # X-Request-Id becomes gitaly's correlation id, as with Workhorse
    st, _, _ = gwenv.gateway.request("GET", "/hdr.git/info/refs?service=git-upload-pack",
                                     headers={"X-Request-Id": "req-4711-abc"})
    assert st == 200
    assert gwenv.gitaly.wait_log(lambda e: e.get("correlation_id") == "req-4711-abc"
                                 and e.get("grpc.method") == "InfoRefsUploadPack"
                                 and e.get("grpc.meta.client_name") == "gitaly-gateway")
    # the explicit storage prefix reaches the same repository
    st, _, body2 = gwenv.gateway.request("GET",
                                         "/default/hdr.git/info/refs?service=git-upload-pack")
    assert st == 200 and body2 == up
    # missing repository: 404; dumb HTTP: refused; bad paths: 400
    st, _, body = gwenv.gateway.request("GET", "/nope.git/info/refs?service=git-upload-pack")
    assert st == 404, body
    st, _, body = gwenv.gateway.request("POST", "/nope.git/git-upload-pack",
                                        body=b"0000", headers={})
    assert st == 404, body
    st, _, body = gwenv.gateway.request("POST", "/nope.git/git-receive-pack",
                                        body=b"0000", headers={})
    assert st == 404, body
    st, _, _ = gwenv.gateway.request("GET", "/hdr.git/info/refs")
    assert st == 400
    for bad in ("/../hdr.git", "/a/../../hdr.git", "//etc/hdr.git", "/hdr.git/."):
        st, _, body = gwenv.gateway.request("GET", bad + "/info/refs?service=git-upload-pack")
        assert st == 400, (bad, st, body)
    # the second storage: repository missing there
    st, _, _ = gwenv.gateway.request("GET", "/other/hdr.git/info/refs?service=git-upload-pack")
    assert st == 404
    st, _, _ = gwenv.gateway.request("GET", "/hdr.git/nothing")
    assert st == 404
    st, _, _ = gwenv.gateway.request("POST", "/hdr.git/info/refs?service=git-upload-pack")
    assert st == 405


def upload_request(oid, done=True):
    want = b"want %s multi_ack_detailed side-band-64k ofs-delta\n" % oid.encode()
    body = b"%04x" % (len(want) + 4) + want + b"0000"
    if done:
        body += b"0009done\n"
    return body


def test_upload_pack_gzip_and_chunked(gwenv):
    src = make_source(os.path.join(gwenv.work, "src5"), n_branches=1)
    fresh(gwenv, "gz.git")
    git_ok("push", "-q", gwenv.gateway.url("gz.git"), "main", cwd=src)
    oid = refs(src)["refs/heads/main"]
    hdr = {"Content-Type": "application/x-git-upload-pack-request"}
    st, h, plain = gwenv.gateway.request("POST", "/gz.git/git-upload-pack",
                                         body=upload_request(oid), headers=hdr)
    assert st == 200
    assert h["content-type"] == "application/x-git-upload-pack-result"
    assert plain.startswith(b"0008NAK\n") and b"PACK" in plain
    st, _, zipped = gwenv.gateway.request("POST", "/gz.git/git-upload-pack",
                                          body=gzip.compress(upload_request(oid)),
                                          headers=dict(hdr, **{"Content-Encoding": "gzip"}))
    assert st == 200 and zipped.startswith(b"0008NAK\n") and b"PACK" in zipped
    # a zlib stream, labelled gzip or deflate
    for label in ("gzip", "deflate"):
        st, _, z = gwenv.gateway.request("POST", "/gz.git/git-upload-pack",
                                         body=zlib.compress(upload_request(oid)),
                                         headers=dict(hdr, **{"Content-Encoding": label}))
        assert st == 200 and z.startswith(b"0008NAK\n") and b"PACK" in z
    st, _, _ = gwenv.gateway.request("POST", "/gz.git/git-upload-pack", body=b"x",
                                     headers=dict(hdr, **{"Content-Encoding": "br"}))
    assert st == 415

    # chunked transfer encoding of a gzip body, split at odd places
    data = gzip.compress(upload_request(oid))
    s = socket.create_connection(("127.0.0.1", gwenv.gateway.port), timeout=30)
    s.sendall(b"POST /gz.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(data), 7):
        part = data[i:i + 7]
        s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    resp = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        resp += b
    s.close()
    assert resp.startswith(b"HTTP/1.1 200")
    assert b"0008NAK\n" in resp and b"PACK" in resp

    # broken gzip and truncated gzip are 400
    st, _, _ = gwenv.gateway.request("POST", "/gz.git/git-upload-pack", body=b"not gzip at all",
                                     headers=dict(hdr, **{"Content-Encoding": "gzip"}))
    assert st == 400
    st, _, _ = gwenv.gateway.request("POST", "/gz.git/git-upload-pack", body=data[:-10],
                                     headers=dict(hdr, **{"Content-Encoding": "gzip"}))
    assert st == 400
    # a gzip bomb beyond the configured cap is 413
    bomb = gzip.compress(b"0" * (70 << 20))
    st, _, _ = gwenv.gateway.request("POST", "/gz.git/git-upload-pack", body=bomb,
                                     headers=dict(hdr, **{"Content-Encoding": "gzip"}))
    assert st == 413
    # git itself gzips big negotiation requests: a fetch with many haves
    clone = os.path.join(gwenv.work, "clone5")
    git_ok("clone", "-q", gwenv.gateway.url("gz.git"), clone)
    assert gwenv.gateway.alive()


def test_malformed_and_aborted_requests(gwenv):
    src = make_source(os.path.join(gwenv.work, "src6"), n_branches=1)
    fresh(gwenv, "bad.git")
    git_ok("push", "-q", gwenv.gateway.url("bad.git"), "main", cwd=src)
    hdr = {"Content-Type": "application/x-git-upload-pack-request"}
    for body in (b"zzzz garbage", b"0032want 0000000000000000000000000000000000000000\n",
                 b"0004", b"ffff" + b"x" * 100, b""):
        st, _, _ = gwenv.gateway.request("POST", "/bad.git/git-upload-pack", body=body,
                                         headers=hdr)
        assert st in (200, 400, 500)
    for body in (b"zzzz", b"00a0" + b"0" * 40, b"0000"):
        st, _, _ = gwenv.gateway.request("POST", "/bad.git/git-receive-pack", body=body,
                                         headers={"Content-Type":
                                                  "application/x-git-receive-pack-request"})
        assert st in (200, 400, 500)

    # a client that goes away in the middle of a pushed pack
    before = refs(gwenv.gitaly.path("bad.git"))
    s = socket.create_connection(("127.0.0.1", gwenv.gateway.port), timeout=30)
    old = before["refs/heads/main"]
    cmd = b"%s %s refs/heads/aborted\0report-status side-band-64k\n" % (old.encode(),
                                                                       b"1" * 40)
    body = b"%04x" % (len(cmd) + 4) + cmd + b"0000PACK\0\0\0\2\0\0\0\5" + os.urandom(300000)
    s.sendall(b"POST /bad.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/x-git-receive-pack-request\r\n"
              b"Content-Length: %d\r\n\r\n" % (len(body) * 3))
    s.sendall(body)
    time.sleep(0.3)
    s.close()
    # and one that goes away while the pack is being sent to it
    oid = before["refs/heads/main"]
    s = socket.create_connection(("127.0.0.1", gwenv.gateway.port), timeout=30)
    req = upload_request(oid)
    s.sendall(b"POST /bad.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n" % len(req) + req)
    s.recv(100)
    s.close()

    wait_no_git(gwenv.gitaly.base, timeout=15)
    assert gwenv.gateway.alive()
    assert refs(gwenv.gitaly.path("bad.git")) == before
    # both still serve
    clone = os.path.join(gwenv.work, "clone6")
    git_ok("clone", "-q", gwenv.gateway.url("bad.git"), clone)
    git_ok("-C", gwenv.gitaly.path("bad.git"), "fsck")


def test_custom_hook_rejection(gwenv):
    src = make_source(os.path.join(gwenv.work, "src7"), n_branches=1)
    name = fresh(gwenv, "hooked.git")
    url = gwenv.gateway.url(name)
    git_ok("push", "-q", url, "main", cwd=src)
    disk = gwenv.gitaly.path(name)
    before = refs(disk)
    hooks = os.path.join(disk, "custom_hooks")
    os.makedirs(hooks)
    hook = os.path.join(hooks, "pre-receive")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\necho 'GL-HOOK-ERR: custom hook says no' >&2\nexit 1\n")
    os.chmod(hook, stat.S_IRWXU)
    new = add_commit(src, "blocked.txt", "blocked %s\n" % os.urandom(8).hex())
    r = run_git("push", url, "main", "main:refs/heads/other", cwd=src)
    assert r.returncode != 0
    assert b"custom hook says no" in r.stderr
    assert refs(disk) == before
    assert run_git("-C", disk, "cat-file", "-e", new).returncode != 0
    os.unlink(hook)
    git_ok("push", "-q", url, "main", cwd=src)
    assert refs(disk)["refs/heads/main"] == new


def test_gitlab_api_rejection_and_messages(gwenv):
    src = make_source(os.path.join(gwenv.work, "src8"), n_branches=1)
    name = fresh(gwenv, "api.git")
    url = gwenv.gateway.url(name)
    disk = gwenv.gitaly.path(name)
    gwenv.stub.post_receive_messages = [{"message": "Thanks from fake GitLab",
                                         "type": "basic"}]
    try:
        r = git_ok("push", url, "main", cwd=src)
        assert b"Thanks from fake GitLab" in r.stderr
        before = refs(disk)
        # the /allowed request carried what the gateway sent
        allowed = [q for p, q in gwenv.stub.requests if p.endswith("/allowed")]
        assert allowed[-1]["gl_repository"] == name
        assert allowed[-1]["protocol"] == "http"
        assert allowed[-1].get("user_id") == "1"  # anonymous_gl_id = user-1

        gwenv.stub.allow = lambda req: (False, "GitLab: You are not allowed to push code")
        new = add_commit(src, "denied.txt", "denied %s\n" % os.urandom(8).hex())
        r = run_git("push", url, "main", cwd=src)
        assert r.returncode != 0
        assert b"You are not allowed to push code" in r.stderr
        assert refs(disk) == before
        assert run_git("-C", disk, "cat-file", "-e", new).returncode != 0
    finally:
        gwenv.stub.allow = lambda req: (True, "")
        gwenv.stub.post_receive_messages = []


def test_basic_auth():
    env = Env(users=[("alice", "wonderland", "user-42"), ("bob", "builder", None)],
              auth_required=True, anonymous_gl_id="")
    try:
        src = make_source(os.path.join(env.work, "src"), n_branches=1)
        env.gateway.create("auth.git")
        path = "/auth.git/info/refs?service=git-upload-pack"
        st, h, _ = env.gateway.request("GET", path)
        assert st == 401 and h["www-authenticate"].startswith("Basic realm=")
        st, _, _ = env.gateway.request("GET", path, user="alice", password="wrong")
        assert st == 401
        st, _, _ = env.gateway.request("GET", path, user="mallory", password="wonderland")
        assert st == 401
        st, _, _ = env.gateway.request("GET", path, user="alice", password="wonderland")
        assert st == 200
        r = run_git("push", env.gateway.url("auth.git"), "main", cwd=src)
        assert r.returncode != 0
        assert b"Authentication failed" in r.stderr or b"401" in r.stderr \
            or b"could not read Username" in r.stderr
        git_ok("push", "-q", env.gateway.url("auth.git", "alice", "wonderland"), "main", cwd=src)
        allowed = [q for p, q in env.stub.requests if p.endswith("/allowed")]
        assert allowed[-1].get("user_id") == "42"
        add_commit(src, "b.txt", "bob\n")
        git_ok("push", "-q", env.gateway.url("auth.git", "bob", "builder"), "main", cwd=src)
        allowed = [q for p, q in env.stub.requests if p.endswith("/allowed")]
        assert allowed[-1].get("username") == "bob"
        clone = os.path.join(env.work, "clone")
        git_ok("clone", "-q", env.gateway.url("auth.git", "bob", "builder"), clone)
        assert refs(clone)["refs/heads/main"] == refs(src)["refs/heads/main"]
    finally:
        env.close()


def test_anonymous_push_refused_without_default_gl_id():
    env = Env(anonymous_gl_id="")
    try:
        src = make_source(os.path.join(env.work, "src"), n_branches=1)
        env.gateway.create("anon.git")
        st, _, _ = env.gateway.request("GET", "/anon.git/info/refs?service=git-upload-pack")
        assert st == 200  # reads stay anonymous
        st, _, _ = env.gateway.request("GET", "/anon.git/info/refs?service=git-receive-pack")
        assert st == 401
        r = run_git("push", env.gateway.url("anon.git"), "main", cwd=src)
        assert r.returncode != 0
        assert refs(env.gitaly.path("anon.git")) == {}
    finally:
        env.close()


@pytest.mark.parametrize("kind", ["tcp", "tls", "tls-wrong-ca"])
def test_gitaly_over_tcp_and_tls(tls_cert, kind):
    """The gateway reaches gitaly over tcp:// and tls:// (verified against a
    CA file) with the same multiplexed connection; a certificate it cannot
    verify is refused."""
    if kind == "tcp":
        addr, ca = (lambda g: "tcp://127.0.0.1:%d" % g.port), None
    else:
        addr = lambda g: "tls://127.0.0.1:%d" % g.tls_port  # noqa: E731
        ca = tls_cert["cert"] if kind == "tls" else "/etc/ssl/certs/ca-certificates.crt"
    env = Env(tls=tls_cert, address=addr, ca_file=ca)
    try:
        if kind == "tls-wrong-ca":
            st, _, body = env.gateway.request("GET",
                                              "/x.git/info/refs?service=git-upload-pack")
            assert st == 500 and b"gitaly unavailable" in body
            assert "tls handshake with 127.0.0.1 failed: self-signed certificate" in \
                env.gateway.log_text()
            return
        src = make_source(os.path.join(env.work, "src"), n_branches=1)
        env.gateway.create("net.git")
        git_ok("push", "-q", env.gateway.url("net.git"), "main", "v1.0", cwd=src)
        clone = os.path.join(env.work, "clone")
        git_ok("clone", "-q", "--mirror", env.gateway.url("net.git"), clone)
        assert refs(clone) == {k: v for k, v in refs(src).items()
                               if k in ("refs/heads/main", "refs/tags/v1.0")}
    finally:
        env.close()


def received_messages(env, method):
    return sum(v for name, labels, v in env.gitaly.metrics()
               if name == "grpc_server_msg_received_total" and labels.get("grpc_method") == method)


def test_large_push_and_clone(gwenv):
    """A push far beyond git's 1 MiB http.postBuffer goes out chunked (git
    probes with a small request first), a clone brings it back intact."""
    src = os.path.join(gwenv.work, "big")
    git_ok("init", "-q", "-b", "main", src)
    blob = os.urandom(6 << 20)
    with open(os.path.join(src, "random.bin"), "wb") as f:
        f.write(blob)
    git_ok("add", "-A", cwd=src)
    git_ok("commit", "-q", "-m", "big", cwd=src)
    gwenv.gateway.create("big.git")
    before = received_messages(gwenv, "PostReceivePack")
    r = git_ok("push", gwenv.gateway.url("big.git"), "main", cwd=src,
               env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"})
    assert b"Transfer-Encoding: chunked" in r.stderr
    # the body reaches gitaly in 64 KiB messages, not one per HTTP piece
    # (~16 KiB): 6 MiB of pack is ~96 of them, plus the probe request's
    sent = received_messages(gwenv, "PostReceivePack") - before
    assert sent <= (6 << 20) // (64 << 10) + 8, sent
    clone = os.path.join(gwenv.work, "bigclone")
    git_ok("clone", "-q", gwenv.gateway.url("big.git"), clone)
    with open(os.path.join(clone, "random.bin"), "rb") as f:
        assert f.read() == blob
    git_ok("-C", gwenv.gitaly.path("big.git"), "fsck", "--strict")


def test_gitaly_restart_redials():
    """With gitaly down the gateway answers 500 and stays up; once gitaly is
    back, the pooled connection is dialled again."""
    env = Env()
    try:
        src = make_source(os.path.join(env.work, "src"), n_branches=1)
        env.gateway.create("re.git")
        git_ok("push", "-q", env.gateway.url("re.git"), "main", cwd=src)
        path = "/re.git/info/refs?service=git-upload-pack"
        assert env.gateway.request("GET", path)[0] == 200
        env.gitaly.stop()
        st, _, body = env.gateway.request("GET", path)
        assert st == 500 and body == b"gitaly unavailable\n"
        assert env.gateway.alive()
        env.gitaly.start()
        deadline = time.time() + 10
        while env.gateway.request("GET", path)[0] != 200:
            assert time.time() < deadline, env.gateway.log_text()
            time.sleep(0.2)
        clone = os.path.join(env.work, "clone")
        git_ok("clone", "-q", env.gateway.url("re.git"), clone)
        assert refs(clone)["refs/heads/main"] == refs(src)["refs/heads/main"]
    finally:
        env.close()
