"""Interop with the Go client stack GitLab really uses: every test drives the
server through build/interop/gitaly_client (tests/interop/gitaly_client.go,
grpc-go + hashicorp/yamux dialing like Workhorse and gitlab-shell: the
"backchannel" magic, a yamux session, gRPC on stream 1, sidechannels opened
by the server). `git` itself is the protocol driver where possible: clones
and pushes run through a gitlab-shell stand-in (GIT_SSH_COMMAND) or a
Workhorse stand-in (an HTTP front end), and the result is checked with
`git fsck` and ref-by-ref against the source.

Also the ways a client can get the sidechannel wrong: a plain (not
multiplexed) connection, an id nobody waits for, no id, no acknowledgement,
malformed frames, a request cut short, a client that goes away mid-pack;
the server must fail the call cleanly, keep serving, and leave no git
process behind.
"""

import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, Gitaly, git, make_history, short_tmpdir
import goclient_util as gu
import repogen

HOOKS_BIN = os.path.join(BUILD, "bin", "gitaly-hooks")

SIDECHANNEL_MODES = {
    # mode: (gRPC code when the sidechannel fails, message prefix)
    "ssh-upload-pack": ("Aborted", "opennig sidechannel: sidechannel: "),
    "http-upload-pack": ("Internal", "open sidechannel: sidechannel: "),
}


# --------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def client_bin():
    if not gu.go_available():
        pytest.skip("go is not installed (scripts/deps.sh installs golang-go)")
    return gu.build_client()


@pytest.fixture(scope="module")
def api():
    a = gu.FakeGitLab()
    yield a
    a.close()


@pytest.fixture(scope="module")
def srv(client_bin, tls_cert, api):
    """One server for the module: unix, tcp and tls listeners, gitaly-hooks
    installed and the fake GitLab API allowing pushes."""
    g = Gitaly(short_tmpdir(), tls=tls_cert)
    os.symlink(HOOKS_BIN, os.path.join(g.bin_dir, "gitaly-hooks"))
    gu.with_gitlab(g, api)
    g.start()
    yield g
    try:
        g.stop()
    finally:
        shutil.rmtree(g.base, ignore_errors=True)


@pytest.fixture(scope="module")
def small(srv):
    """A small repository with branches, a tag and hidden refs."""
    oids = make_history(srv.path("small.git"))
    return {"rel": "small.git", "path": srv.path("small.git"), "oids": oids}


@pytest.fixture(scope="module")
def large(srv, tmp_path_factory):
    """The generated 100k+-object repository (built once per session, see
    repogen.py), hard-linked into the storage."""
    src = repogen.large_repo(str(tmp_path_factory.getbasetemp()))
    dest = srv.path("large.git")
    subprocess.run(["cp", "-al", src, dest], check=True)
    return {"rel": "large.git", "path": dest, "source": src}


@pytest.fixture
def workhorse(srv):
    w = gu.Workhorse(gu.Client(srv))
    yield w
    w.close()


def wrapper_for(tmp_path, client):
    return gu.ssh_wrapper(str(tmp_path / "gitlab-shell"), client)


def run_git(*args, env=None, cwd=None, timeout=300):
    e = dict(os.environ)
    e.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null",
              "GIT_TERMINAL_PROMPT": "0"})
    if env:
        e.update(env)
    return subprocess.run(["git", *args], env=e, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def advertised_refs(path):
    """Refs a clone --mirror must get: everything but the refs gitaly hides
    from upload-pack (keep-around, remotes, tmp)."""
    return {r: o for r, o in repogen.refs(path).items()
            if not r.startswith(("refs/keep-around/", "refs/remotes/", "refs/tmp/"))}


def assert_mirror(clone, source):
    r = run_git("--git-dir", clone, "fsck", "--no-progress", "--no-dangling")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert repogen.refs(clone) == advertised_refs(source)


def wait_no_git(g, timeout=10):
    """Waits until no git process runs below the server; returns the rest."""
    deadline = time.time() + timeout
    left = gu.git_pids_under(g.proc.pid)
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = gu.git_pids_under(g.proc.pid)
    return left


def assert_healthy(g):
    r = gu.Client(g).run("unary-health", timeout=30)
    assert (r.returncode, r.stdout) == (0, b"SERVING\n"), r.stderr
    assert g.proc.poll() is None


def pkt(data):
    if isinstance(data, str):
        data = data.encode()
    return b"%04x" % (len(data) + 4) + data


def pkt_lines(buf):
    """Splits pkt-lines: a list of bytes payloads, b"0000"/b"0001" for
    flush/delimiter packets; stops at the end of buf."""
    out, i = [], 0
    while i + 4 <= len(buf):
        n = int(buf[i:i + 4], 16)
        if n < 4:
            out.append(buf[i:i + 4])
            i += 4
            continue
        out.append(buf[i + 4:i + n])
        i += n
    assert i == len(buf), "trailing bytes after pkt-lines"
    return out


# --------------------------------------------------------------------------
# the multiplexed connection itself

@pytest.mark.parametrize("kind", ["unix", "tcp", "tls"])
def test_health_over_multiplexed_connection(srv, kind):
    r = gu.Client(srv, kind).run("unary-health", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"SERVING\n"


def test_health_over_plain_connection_still_works(srv):
    r = gu.Client(srv, "tcp", plain=True).run("unary-health", timeout=60)
    assert (r.returncode, r.stdout) == (0, b"SERVING\n"), r.stderr


# --------------------------------------------------------------------------
# clones driven by git

@pytest.mark.parametrize("kind", ["unix", "tcp", "tls"])
@pytest.mark.parametrize("proto", ["0", "2"])
def test_ssh_clone_small(srv, small, tmp_path, kind, proto):
    """gitlab-shell's flow (SSHUploadPackWithSidechannel): git clone through
    the client over each transport, protocol v0 and v2."""
    wrapper = wrapper_for(tmp_path, gu.Client(srv, kind))
    dest = str(tmp_path / "clone.git")
    r = run_git("-c", "protocol.version=" + proto, "clone", "--mirror", "-q",
                "ssh://gitaly/default/small.git", dest, env=gu.ssh_env(wrapper))
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert_mirror(dest, small["path"])
    assert repogen.refs(dest)["refs/heads/main"] == small["oids"]["a2"]
    assert "refs/keep-around/" + small["oids"]["base"] not in repogen.refs(dest)
    assert wait_no_git(srv) == []


@pytest.mark.parametrize("proto", ["0", "2"])
def test_http_clone_small(srv, small, workhorse, tmp_path, proto):
    """Workhorse's flow: info/refs via InfoRefsUploadPack, each POST via
    PostUploadPackWithSidechannel (whole body, CloseWrite, read to EOF)."""
    dest = str(tmp_path / "clone.git")
    r = run_git("-c", "protocol.version=" + proto, "clone", "--mirror", "-q",
                workhorse.url("default", "small.git"), dest)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert_mirror(dest, small["path"])
    posts = [s for s in workhorse.seen if s[0].endswith("/git-upload-pack")]
    assert posts and all(rc == 0 for _, rc, _ in posts), workhorse.seen


def test_http_v2_ls_refs_and_fetch_built_by_hand(srv, small, tmp_path):
    """A protocol v2 conversation built here: ls-refs, then a fetch whose
    packfile section is indexed and checked."""
    c = gu.Client(srv)
    head = b"agent=git/2.39\n"
    req = pkt("command=ls-refs\n") + pkt(head) + pkt("object-format=sha1\n") + b"0001" + \
        pkt("peel\n") + pkt("symrefs\n") + pkt("ref-prefix refs/heads/\n") + \
        pkt("ref-prefix refs/tags/\n") + pkt("ref-prefix HEAD\n") + b"0000"
    r = c.run("http-upload-pack", "-repo", "default:small.git", "-protocol", "version=2",
              input=req, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = pkt_lines(r.stdout)
    assert lines[-1] == b"0000"
    got = {}
    for line in lines[:-1]:
        oid, name = line.rstrip(b"\n").decode().split(" ")[:2]
        got[name] = oid
    o = small["oids"]
    assert got == {"HEAD": o["a2"], "refs/heads/main": o["a2"], "refs/heads/feature": o["b1"],
                   "refs/tags/v1.0": o["a1"]}
    assert b"symref-target:refs/heads/main" in lines[0]

    req = pkt("command=fetch\n") + pkt(head) + pkt("object-format=sha1\n") + b"0001" + \
        pkt("ofs-delta\n") + pkt("no-progress\n") + pkt("want %s\n" % o["a2"]) + \
        pkt("done\n") + b"0000"
    r = c.run("http-upload-pack", "-repo", "default:small.git", "-protocol", "version=2",
              input=req, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = pkt_lines(r.stdout)
    assert lines[0] == b"packfile\n" and lines[-1] == b"0000"
    pack = b"".join(x[1:] for x in lines[1:-1] if x[:1] == b"\x01")
    assert pack[:4] == b"PACK"
    dest = str(tmp_path / "r.git")
    git("init", "--bare", "-q", dest)
    git("-C", dest, "index-pack", "--stdin", input=pack)
    want = git("-C", small["path"], "rev-list", "--objects", o["a2"]).split()
    have = git("-C", dest, "rev-list", "--objects", o["a2"]).split()
    assert sorted(have) == sorted(want)


def test_large_repository_clone_ssh(srv, large, tmp_path):
    """The 100k+-object repository cloned intact through the client."""
    assert repogen.object_count(large["path"]) >= 100000
    wrapper = wrapper_for(tmp_path, gu.Client(srv))
    dest = str(tmp_path / "clone.git")
    r = run_git("clone", "--mirror", "-q", "ssh://gitaly/default/large.git", dest,
                env=gu.ssh_env(wrapper), timeout=600)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert_mirror(dest, large["path"])
    assert repogen.object_count(dest) == repogen.object_count(large["path"])
    assert wait_no_git(srv) == []


def test_large_repository_clone_http(srv, large, workhorse, tmp_path):
    dest = str(tmp_path / "clone.git")
    r = run_git("clone", "--mirror", "-q", workhorse.url("default", "large.git"), dest,
                timeout=600)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert_mirror(dest, large["path"])
    assert repogen.object_count(dest) == repogen.object_count(large["path"])


def test_large_repository_clone_gateway(srv, large, tmp_path):
    """The same clone through gitaly-gateway (our own Workhorse/gitlab-shell
    stand-in in C), once it is built."""
    if not os.access(gu.GATEWAY_BIN, os.X_OK):
        pytest.skip("no %s (gateway branch not merged)" % gu.GATEWAY_BIN)
    gw = gu.GatewayProc(str(tmp_path / "gw"), srv)
    try:
        dest = str(tmp_path / "clone.git")
        r = run_git("clone", "--mirror", "-q", gw.url("default", "large.git"), dest,
                    timeout=600)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        assert_mirror(dest, large["path"])
        assert repogen.object_count(dest) == repogen.object_count(large["path"])
    finally:
        gw.close()
    assert wait_no_git(srv) == []


# --------------------------------------------------------------------------
# pushes driven by git (not sidechannel RPCs, but the same multiplexed
# connection: SSHReceivePack for gitlab-shell, PostReceivePack for Workhorse)

def _push(srv, api, tmp_path, env, url, rel):
    target = srv.path(rel)
    make_history(target)
    work = str(tmp_path / "work")
    r = run_git("clone", "-q", url, work, env=env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    with open(os.path.join(work, "pushed.txt"), "w") as f:
        f.write("pushed through the Go client\n")
    ident = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "C",
             "GIT_COMMITTER_EMAIL": "c@x"}
    assert run_git("-C", work, "add", "pushed.txt").returncode == 0
    assert run_git("-C", work, "commit", "-q", "-m", "push", env=ident).returncode == 0
    before = len(api.seen)
    r = run_git("-C", work, "push", "-q", "origin", "HEAD:refs/heads/pushed", env=env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    tip = git("-C", work, "rev-parse", "HEAD").decode().strip()
    assert git("-C", target, "rev-parse", "refs/heads/pushed").decode().strip() == tip
    assert git("-C", target, "cat-file", "-p", tip + ":pushed.txt") == \
        b"pushed through the Go client\n"
    assert [p.split("?")[0] for p in api.seen[before:]] == [
        "/api/v4/internal/allowed", "/api/v4/internal/pre_receive",
        "/api/v4/internal/post_receive"]
    assert wait_no_git(srv) == []


def test_push_ssh(srv, api, tmp_path):
    wrapper = wrapper_for(tmp_path, gu.Client(srv))
    _push(srv, api, tmp_path, gu.ssh_env(wrapper, {"GITALY_CLIENT_EXTRA": "-gl-repository project-1"}),
          "ssh://gitaly/default/push-ssh.git", "push-ssh.git")


def test_push_http(srv, api, workhorse, tmp_path):
    _push(srv, api, tmp_path, {}, workhorse.url("default", "push-http.git"), "push-http.git")


# --------------------------------------------------------------------------
# authentication through the multiplexed connection

def test_v2_token(gitaly_factory, client_bin):
    g = gitaly_factory(token="s3cret")
    make_history(g.path("r.git"))
    ok = gu.Client(g, token="s3cret").run("info-refs", "-repo", "default:r.git", timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(b"001e# service=git-upload-pack\n0000")
    for mode in SIDECHANNEL_MODES:
        r = gu.Client(g, token="s3cret").run(mode, "-repo", "default:r.git", input=b"0000",
                                             timeout=60)
        assert r.returncode == 0, r.stderr
    bad = gu.Client(g, token="wrong").run("http-upload-pack", "-repo", "default:r.git",
                                          input=b"0000", timeout=60)
    assert gu.rpc_code(bad.stderr) == "PermissionDenied", bad.stderr
    none = gu.Client(g, token="").run("http-upload-pack", "-repo", "default:r.git",
                                      input=b"0000", timeout=60)
    assert gu.rpc_code(none.stderr) == "Unauthenticated", none.stderr


# --------------------------------------------------------------------------
# sidechannel misuse

@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_sidechannel_needs_multiplexed_connection(srv, small, mode):
    r = gu.Client(srv, "tcp", plain=True).run(mode, "-repo", "default:small.git",
                                              input=b"0000", timeout=60)
    code, prefix = SIDECHANNEL_MODES[mode]
    assert r.returncode == 1
    assert gu.rpc_code(r.stderr) == code, r.stderr
    assert gu.rpc_desc(r.stderr) == prefix + \
        "fail to extract yamux session: non-multiplexed connection", r.stderr
    assert wait_no_git(srv) == []


@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_unknown_sidechannel_id(srv, small, mode):
    """The server opens a sidechannel with an id the client never
    registered: the client closes it, the server fails the call."""
    r = gu.Client(srv).run(mode, "-repo", "default:small.git", "-misbehave", "unknown-id",
                           input=b"0000", timeout=60)
    code, prefix = SIDECHANNEL_MODES[mode]
    assert r.returncode == 1
    assert b"not registered" in r.stderr, r.stderr
    assert gu.rpc_code(r.stderr) == code, r.stderr
    assert gu.rpc_desc(r.stderr).startswith(prefix), r.stderr
    assert wait_no_git(srv) == []
    assert_healthy(srv)


@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_missing_sidechannel_id(srv, small, mode):
    r = gu.Client(srv).run(mode, "-repo", "default:small.git", "-misbehave", "no-id",
                           input=b"0000", timeout=60)
    code, prefix = SIDECHANNEL_MODES[mode]
    assert gu.rpc_code(r.stderr) == code, r.stderr
    assert gu.rpc_desc(r.stderr) == prefix + "sidechannel-id not found in incoming metadata"
    assert wait_no_git(srv) == []


@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_sidechannel_never_acknowledged(srv, small, mode):
    """The client takes the stream but never writes "ok": the server's 5 s
    handshake deadline fails the call."""
    t = time.time()
    r = gu.Client(srv).run(mode, "-repo", "default:small.git", "-misbehave", "no-ack",
                           input=b"0000", timeout=60)
    took = time.time() - t
    code, prefix = SIDECHANNEL_MODES[mode]
    assert gu.rpc_code(r.stderr) == code, r.stderr
    assert gu.rpc_desc(r.stderr).startswith(prefix), r.stderr
    assert 4.5 <= took < 30, took
    assert wait_no_git(srv) == []
    assert_healthy(srv)


@pytest.mark.parametrize("frame", [b"0001", b"0002", b"0003", b"zzzz", b"fff1" + b"x" * 32])
@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_malformed_request_frames(srv, small, mode, frame):
    """Frames the server's reader must refuse (pkt-line specials, bad hex,
    longer than 65520): the call fails and git is gone."""
    r = gu.Client(srv).run(mode, "-repo", "default:small.git", "-misbehave", "raw",
                           input=frame, timeout=60)
    assert r.returncode == 1, r.stderr
    assert gu.rpc_code(r.stderr) not in (None, "OK"), r.stderr
    assert wait_no_git(srv) == []


@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_request_ends_without_flush(srv, small, mode):
    """Half a pkt-line, then the stream closes with no "0000": an
    unexpected EOF for the server, which must fail the call."""
    r = gu.Client(srv).run(mode, "-repo", "default:small.git", "-misbehave", "no-flush",
                           input=b"0032want ", timeout=60)
    assert r.returncode == 1, r.stderr
    assert gu.rpc_code(r.stderr) not in (None, "OK"), r.stderr
    assert wait_no_git(srv) == []
    assert_healthy(srv)


def _want_main_v0(path):
    main = git("-C", path, "rev-parse", "refs/heads/main").decode().strip()
    return pkt("want %s side-band-64k ofs-delta no-progress\n" % main) + b"0000" + pkt("done\n")


@pytest.mark.parametrize("how", ["close-mid-pack", "exit-mid-pack"])
@pytest.mark.parametrize("mode", sorted(SIDECHANNEL_MODES))
def test_client_disconnects_mid_pack(srv, large, small, mode, how):
    """The client drops the sidechannel (and cancels the call) or dies with
    its socket open after 256 KiB of a ~35 MiB pack: the server cancels git
    and keeps serving; the next call works."""
    r = gu.Client(srv).run(mode, "-repo", "default:large.git", "-misbehave", how,
                           "-after-bytes", str(256 * 1024), input=_want_main_v0(large["path"]),
                           timeout=120)
    assert len(r.stdout) == 256 * 1024
    assert r.returncode == (3 if how == "exit-mid-pack" else 1), r.stderr
    assert wait_no_git(srv, timeout=20) == []
    assert_healthy(srv)
    # the same kind of call works right after
    r = gu.Client(srv).run(mode, "-repo", "default:small.git",
                           input=_want_main_v0(small["path"]), timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"PACK" in r.stdout
