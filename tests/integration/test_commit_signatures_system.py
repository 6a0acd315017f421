"""GetCommitSignatures with `[git] signing_key`: commits signed by git with
the server's key, or one of its rotated keys, are SIGNER_SYSTEM; commits
signed with another key, or whose signed text was altered, are
SIGNER_USER. Both key kinds upstream accepts: OpenSSH private keys
(gpg.format=ssh, ed25519 and RSA) and binary GPG secret keys (ed25519 and
RSA, checked through gpgv); all generated at test time. An unreadable key
file fails the request as upstream."""

import os
import shutil
import subprocess

import grpc
import pytest

import commit_pb2 as cp
import commit_pb2_grpc
import shared_pb2
from conftest import Gitaly, commit, git, git_supports_sha256, make_repo, short_tmpdir

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="no ssh-keygen")

SYSTEM = cp.GetCommitSignaturesResponse.SIGNER_SYSTEM
USER = cp.GetCommitSignaturesResponse.SIGNER_USER


def keygen(path, kind):
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f", path]
    if kind == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True)
    return path


def signed_commit(repo, key, message, parent=None):
    tree = git("-C", repo, "write-tree", env={"GIT_INDEX_FILE": repo + "/idx-" + message}).decode().strip()
    args = ["-C", repo, "-c", "gpg.format=ssh", "-c", "user.signingkey=" + key,
            "commit-tree", "-S", tree, "-m", message]
    if parent:
        args += ["-p", parent]
    return git(*args).decode().strip()


@pytest.fixture(scope="module")
def setup():
    base = short_tmpdir()
    keys = os.path.join(base, "keys")
    os.makedirs(keys)
    system = keygen(os.path.join(keys, "system"), "ed25519")
    rotated = keygen(os.path.join(keys, "rotated"), "rsa")
    other = keygen(os.path.join(keys, "other"), "ed25519")
    g = Gitaly(base, extra_toml='[git]\nsigning_key = "%s"\nrotated_signing_keys = ["%s"]\n'
               % (system, rotated))
    g.start()
    path = g.path("signed.git")
    make_repo(path)
    plain = commit(path, {"f": b"1"}, "plain")
    c = {
        "system": signed_commit(path, system, "by-system", plain),
        "rotated": signed_commit(path, rotated, "by-rotated", plain),
        "other": signed_commit(path, other, "by-other", plain),
        "plain": plain,
    }
    # the system key's signature on a commit whose message was changed after
    raw = git("-C", path, "cat-file", "commit", c["system"])
    forged = raw.replace(b"by-system", b"by-systen")
    c["forged"] = git("-C", path, "hash-object", "-t", "commit", "-w", "--stdin", input=forged).decode().strip()
    if git_supports_sha256():
        # the same keys over a SHA-256 repository (read by the cat-file reader)
        p256 = g.path("signed-sha256.git")
        make_repo(p256, object_format="sha256")
        plain256 = commit(p256, {"f": b"1"}, "plain")
        c["sha256"] = {
            "system": signed_commit(p256, system, "by-system", plain256),
            "rotated": signed_commit(p256, rotated, "by-rotated", plain256),
            "other": signed_commit(p256, other, "by-other", plain256),
            "plain": plain256,
        }
    ch = g.channel("unix")
    yield commit_pb2_grpc.CommitServiceStub(ch), g.repo("signed.git"), c, g
    ch.close()
    g.stop()
    shutil.rmtree(base, ignore_errors=True)


def signers(stub, repo, ids):
    out = {}
    for r in stub.GetCommitSignatures(cp.GetCommitSignaturesRequest(repository=repo, commit_ids=ids)):
        if r.commit_id:
            out[r.commit_id] = (r.signer, r.signature)
    return out


def test_system_and_rotated_keys_are_system(setup):
    stub, repo, c, _ = setup
    got = signers(stub, repo, [c["system"], c["rotated"], c["other"], c["forged"], c["plain"]])
    assert got[c["system"]][0] == SYSTEM
    assert got[c["rotated"]][0] == SYSTEM
    assert got[c["other"]][0] == USER
    assert got[c["forged"]][0] == USER
    assert c["plain"] not in got
    assert got[c["system"]][1].startswith(b"-----BEGIN SSH SIGNATURE-----")


def test_sha256_repository_system_and_user(setup):
    stub, _, c, g = setup
    if "sha256" not in c:
        pytest.skip("git without sha256")
    s = c["sha256"]
    assert all(len(v) == 64 for v in s.values())
    got = signers(stub, g.repo("signed-sha256.git"), [s["system"], s["rotated"], s["other"], s["plain"]])
    assert got[s["system"]][0] == SYSTEM
    assert got[s["rotated"]][0] == SYSTEM
    assert got[s["other"]][0] == USER
    assert s["plain"] not in got
    assert got[s["system"]][1].startswith(b"-----BEGIN SSH SIGNATURE-----")


def test_without_signing_key_everything_is_user(setup):
    _, _, c, g = setup
    base = short_tmpdir()
    g2 = Gitaly(base)
    g2.start()
    try:
        dst = g2.path("signed.git")
        shutil.copytree(g.path("signed.git"), dst)
        ch = g2.channel("unix")
        got = signers(commit_pb2_grpc.CommitServiceStub(ch), g2.repo("signed.git"), [c["system"], c["rotated"]])
        ch.close()
        assert got[c["system"]][0] == USER and got[c["rotated"]][0] == USER
    finally:
        g2.stop()
        shutil.rmtree(base, ignore_errors=True)


def gpg(home, *args, **kw):
    return subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw).stdout


@pytest.fixture(scope="module")
def gpg_setup():
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("no gpg/gpgv")
    base = short_tmpdir()
    home = os.path.join(base, "gnupg")
    os.makedirs(home, mode=0o700)
    keys = {}
    try:
        for name, algo in (("system", "ed25519"), ("rotated", "rsa2048"), ("other", "ed25519")):
            gpg(home, "--quick-gen-key", "%s <%s@example.com>" % (name, name), algo, "sign", "never")
            fpr = [l.split(b":")[9].decode() for l in gpg(home, "--with-colons", "--list-secret-keys",
                                                          "%s@example.com" % name).splitlines()
                   if l.startswith(b"fpr:")][0]
            path = os.path.join(base, name + ".gpg")
            with open(path, "wb") as f:
                f.write(gpg(home, "--export-secret-keys", fpr))
            keys[name] = (fpr, path)
        g = Gitaly(base, extra_toml='[git]\nsigning_key = "%s"\nrotated_signing_keys = ["%s"]\n'
                   % (keys["system"][1], keys["rotated"][1]))
        g.start()
        path = g.path("gpg.git")
        make_repo(path)
        plain = commit(path, {"f": b"1"}, "plain")
        c = {}
        for name, (fpr, _) in keys.items():
            tree = git("-C", path, "write-tree", env={"GIT_INDEX_FILE": path + "/idx"}).decode().strip()
            c[name] = git("-C", path, "-c", "gpg.program=gpg", "-c", "user.signingkey=" + fpr,
                          "commit-tree", "-S", tree, "-p", plain, "-m", "by-" + name,
                          env={"GNUPGHOME": home}).decode().strip()
        raw = git("-C", path, "cat-file", "commit", c["system"])
        c["forged"] = git("-C", path, "hash-object", "-t", "commit", "-w", "--stdin",
                          input=raw.replace(b"by-system", b"by-systen")).decode().strip()
        ch = g.channel("unix")
        # the agent gpg started for the test is not gitaly's: gone before stop()
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
        yield commit_pb2_grpc.CommitServiceStub(ch), g.repo("gpg.git"), c, g
        ch.close()
        g.stop()
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_gpg_system_and_rotated_keys_are_system(gpg_setup):
    stub, repo, c, g = gpg_setup
    got = signers(stub, repo, [c["system"], c["rotated"], c["other"], c["forged"]])
    assert got[c["system"]][0] == SYSTEM
    assert got[c["rotated"]][0] == SYSTEM
    assert got[c["other"]][0] == USER
    assert got[c["forged"]][0] == USER
    assert got[c["system"]][1].startswith(b"-----BEGIN PGP SIGNATURE-----")


def test_unreadable_signing_key_fails_the_request(setup):
    _, _, c, g = setup
    base = short_tmpdir()
    g2 = Gitaly(base, extra_toml='[git]\nsigning_key = "%s/missing.key"\n' % base)
    g2.start()
    try:
        shutil.copytree(g.path("signed.git"), g2.path("signed.git"))
        ch = g2.channel("unix")
        with pytest.raises(grpc.RpcError) as e:
            signers(commit_pb2_grpc.CommitServiceStub(ch), g2.repo("signed.git"), [c["system"]])
        ch.close()
        assert e.value.code() == grpc.StatusCode.UNKNOWN
        assert e.value.details().startswith("failed to parse signing key: open file")
    finally:
        g2.stop()
        shutil.rmtree(base, ignore_errors=True)
