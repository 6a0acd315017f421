"""gitaly-gateway as an SSH forced command behind a real OpenSSH sshd: clone,
fetch and every kind of push with protocol v0 and v2 (GIT_PROTOCOL via
SendEnv/AcceptEnv), upload-archive, refusals by a custom hook and by the
GitLab API with the remote exit status, post-receive messages, and bad
commands.
"""

import io
import os
import stat
import subprocess
import tarfile
import time

import pytest

from gateway_util import (add_commit, git_ok, gwenv, ls_remote_refs, make_source,  # noqa: F401
                          refs, run_git, wait_no_git)


@pytest.fixture(scope="module")
def ssh(gwenv):
    return gwenv.with_sshd("alice")


def test_clone_push_fetch_roundtrip(gwenv, ssh):
    src = make_source(os.path.join(gwenv.work, "s1"))
    gwenv.gateway.create("group/ssh1.git")
    url = ssh.url("group/ssh1.git")
    env = ssh.env()
    git_ok("push", "-q", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*", cwd=src,
           env=env)
    disk = gwenv.gitaly.path("group/ssh1.git")
    assert refs(disk) == refs(src)
    allowed = [q for p, q in gwenv.stub.requests if p.endswith("/allowed")]
    assert allowed[-1]["protocol"] == "ssh"
    assert allowed[-1].get("username") == "alice"

    clone = os.path.join(gwenv.work, "c1")
    git_ok("clone", "-q", "--mirror", ssh.scp_url("group/ssh1.git"), clone, env=env)
    git_ok("-C", clone, "fsck", "--strict")
    assert refs(clone) == refs(src)

    # fast-forward, force, new branch, delete, tags; then an incremental fetch
    new = add_commit(src, "n.txt", "n\n")
    git_ok("push", "-q", url, "main", cwd=src, env=env)
    git_ok("checkout", "-q", "topic0", cwd=src)
    git_ok("reset", "-q", "--hard", "main~3", cwd=src)
    forced = add_commit(src, "f.txt", "forced\n")
    r = run_git("push", url, "topic0", cwd=src, env=env)
    assert r.returncode != 0
    git_ok("push", "-q", "-f", url, "topic0", "main:refs/heads/newbranch", ":topic1",
           ":refs/tags/light", cwd=src, env=env)
    got = refs(disk)
    assert got["refs/heads/main"] == new
    assert got["refs/heads/topic0"] == forced
    assert got["refs/heads/newbranch"] == new
    assert "refs/heads/topic1" not in got and "refs/tags/light" not in got
    git_ok("fetch", "-q", "--prune", "--prune-tags", "origin", cwd=clone, env=env)
    assert refs(clone) == got
    git_ok("-C", disk, "fsck", "--strict")


@pytest.mark.parametrize("version", ["0", "2"])
def test_ls_remote_and_fetch_protocols(gwenv, ssh, version):
    if not os.path.exists(gwenv.gitaly.path("ssh2.git")):
        src = make_source(os.path.join(gwenv.work, "s2"))
        gwenv.gateway.create("ssh2.git")
        git_ok("push", "-q", ssh.url("ssh2.git"), "--all", cwd=src, env=ssh.env())
        git_ok("push", "-q", ssh.url("ssh2.git"), "--tags", cwd=src, env=ssh.env())
    want = refs(gwenv.gitaly.path("ssh2.git"))
    env = dict(ssh.env(), GIT_TRACE_PACKET="1")
    r = git_ok("-c", "protocol.version=" + version, "ls-remote", ssh.url("ssh2.git"), env=env)
    assert ls_remote_refs(r.stdout) == want
    assert (b"< version 2" in r.stderr) == (version == "2")
    clone = os.path.join(gwenv.work, "c2-" + version)
    git_ok("-c", "protocol.version=" + version, "clone", "-q", "--mirror",
           ssh.url("ssh2.git"), clone, env=ssh.env())
    assert refs(clone) == want


def test_upload_archive(gwenv, ssh):
    src = make_source(os.path.join(gwenv.work, "s3"), n_branches=1)
    gwenv.gateway.create("arch.git")
    git_ok("push", "-q", ssh.url("arch.git"), "main", cwd=src, env=ssh.env())
    r = git_ok("archive", "--format=tar", "--remote=" + ssh.url("arch.git"), "main",
               "file1.txt", env=ssh.env())
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert t.extractfile("file1.txt").read() == b"line 1\n" * 201
    r = run_git("archive", "--format=tar", "--remote=" + ssh.url("arch.git"), "nosuchref",
                env=ssh.env())
    assert r.returncode != 0


def test_hook_and_api_refusals(gwenv, ssh):
    src = make_source(os.path.join(gwenv.work, "s4"), n_branches=1)
    name = "refuse.git"
    gwenv.gateway.create(name)
    url = ssh.url(name)
    git_ok("push", "-q", url, "main", cwd=src, env=ssh.env())
    disk = gwenv.gitaly.path(name)
    before = refs(disk)

    hooks = os.path.join(disk, "custom_hooks")
    os.makedirs(hooks)
    hook = os.path.join(hooks, "pre-receive")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\necho 'GL-HOOK-ERR: ssh hook refuses' >&2\nexit 1\n")
    os.chmod(hook, stat.S_IRWXU)
    new = add_commit(src, "x.txt", "x %s\n" % os.urandom(8).hex())
    r = run_git("push", url, "main", cwd=src, env=ssh.env())
    assert r.returncode != 0
    assert b"ssh hook refuses" in r.stderr
    assert refs(disk) == before
    assert run_git("-C", disk, "cat-file", "-e", new).returncode != 0
    os.unlink(hook)

    gwenv.stub.allow = lambda req: (False, "GitLab: SSH pushes are closed")
    try:
        r = run_git("push", url, "main", cwd=src, env=ssh.env())
        assert r.returncode != 0
        assert b"SSH pushes are closed" in r.stderr
        assert refs(disk) == before
        assert run_git("-C", disk, "cat-file", "-e", new).returncode != 0
    finally:
        gwenv.stub.allow = lambda req: (True, "")

    gwenv.stub.post_receive_messages = [{"message": "Merge request hint over SSH",
                                         "type": "alert"}]
    try:
        r = git_ok("push", url, "main", cwd=src, env=ssh.env())
        assert b"Merge request hint over SSH" in r.stderr
        assert refs(disk)["refs/heads/main"] == new
    finally:
        gwenv.stub.post_receive_messages = []


def test_exit_status_and_bad_commands(gwenv, ssh):
    # receive-pack fed garbage: git fails remotely and its status comes back
    gwenv.gateway.create("exit.git")
    r = ssh.run("git-receive-pack 'exit.git'", input=b"zzzz not a pkt-line")
    assert r.returncode != 0
    for cmd in ("sh -c id", "git-upload-pack", "git-upload-pack '../x.git'",
                "git-upload-pack 'a//b.git'", "git-upload-pack 'nosuch.git'", ""):
        r = ssh.run(cmd)
        assert r.returncode != 0, cmd
        assert b"fatal:" in r.stderr or r.stderr, cmd
    # gitaly drops the sidechannel of a failed call: its status is what shows
    r = ssh.run("git-upload-pack 'nosuch.git'")
    assert r.stderr.startswith(b"fatal: ") and b"not found" in r.stderr, r.stderr
    # an upload-pack whose client leaves mid-negotiation ends cleanly
    src = make_source(os.path.join(gwenv.work, "s5"), n_branches=1)
    git_ok("push", "-q", ssh.url("exit.git"), "main", cwd=src, env=ssh.env())
    r = ssh.run("git-upload-pack 'exit.git'", input=b"")
    assert b"refs/heads/main" in r.stdout
    wait_no_git(gwenv.gitaly.base, timeout=15)
    assert gwenv.gateway.alive()


def _gateway_ssh_processes():
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"ssh-command" in cmd and any(c.endswith(b"gitaly-gateway") for c in cmd):
            found.append(int(pid))
    return found


def test_client_vanishes_mid_push(gwenv, ssh):
    gwenv.gateway.create("vanish.git")
    p = subprocess.Popen(ssh.ssh_command().split() + ["root@127.0.0.1",
                                                      "git-receive-pack 'vanish.git'"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        # the advertisement, up to its flush packet
        while True:
            n = int(p.stdout.read(4), 16)
            if n == 0:
                break
            p.stdout.read(n - 4)
        cmd = b"%s %s refs/heads/gone\0report-status side-band-64k\n" % (b"0" * 40, b"1" * 40)
        p.stdin.write(b"%04x" % (len(cmd) + 4) + cmd + b"0000PACK\0\0\0\2\0\0\0\5")
        p.stdin.write(os.urandom(300000))
        p.stdin.flush()
        time.sleep(0.5)
    finally:
        p.kill()
        p.wait()
    wait_no_git(gwenv.gitaly.base, timeout=15)
    deadline = time.time() + 10
    while _gateway_ssh_processes() and time.time() < deadline:
        time.sleep(0.1)
    assert not _gateway_ssh_processes()
    assert refs(gwenv.gitaly.path("vanish.git")) == {}
    assert gwenv.gateway.alive()
