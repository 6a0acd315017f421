"""Corrupt object storage over the wire (issue 4, bad input): a loose object
cut to half its bytes, a loose object with garbage in it, and a pack file cut
in half. FindCommit, GetBlob, TreeEntry and GetTreeEntries touching them must
answer an error (or "not found") well within the deadline, never hang a
worker (libgit2 1.5.1 loops forever inflating a truncated loose object), and
the server keeps serving intact objects afterwards, more times over than it
has worker threads."""

import os
import random
import time

import grpc
import pytest

import blob_pb2 as bp
import blob_pb2_grpc
import commit_pb2 as cp
import commit_pb2_grpc
from conftest import commit, git, make_repo, rpc_error

INTERNAL = grpc.StatusCode.INTERNAL
# Generous compared with a normal answer (milliseconds), short compared with
# a hang; a stuck worker would show as DEADLINE_EXCEEDED.
DEADLINE = 5


def loose_path(repo, oid):
    return os.path.join(repo, "objects", oid[:2], oid[2:])


def truncate_half(path):
    size = os.path.getsize(path)
    os.chmod(path, 0o644)
    os.truncate(path, size // 2)


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def commits(ch):
    return commit_pb2_grpc.CommitServiceStub(ch)


@pytest.fixture(scope="module")
def blobs(ch):
    return blob_pb2_grpc.BlobServiceStub(ch)


@pytest.fixture(scope="module")
def repo(gitaly):
    """good <- bad (refs/heads/main); bad's big blob and small blob are
    truncated loose files and one blob has a flipped byte; the commits and
    everything good reaches stay intact."""
    path = make_repo(gitaly.path("corrupt.git"))
    rnd = random.Random(7)
    big = rnd.randbytes(300 * 1024)
    good = commit(path, {"ok.txt": b"fine\n"}, message="good")
    bad = commit(path, {"ok.txt": b"fine\n", "small.txt": b"small content here\n" * 20,
                        "big.bin": big, "flip.txt": b"flipped content\n" * 50},
                 message="bad", parents=[good], ref="refs/heads/main")
    git("-C", path, "update-ref", "refs/heads/good", good)
    ids = {"good": good, "bad": bad}
    for name in ("small.txt", "big.bin", "flip.txt", "ok.txt"):
        ids[name] = git("-C", path, "rev-parse", "%s:%s" % (bad, name)).decode().strip()
    ids["tree"] = git("-C", path, "rev-parse", bad + "^{tree}").decode().strip()
    for name in ("small.txt", "big.bin"):
        truncate_half(loose_path(path, ids[name]))
    p = loose_path(path, ids["flip.txt"])
    with open(p, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x55
    os.chmod(p, 0o644)
    with open(p, "wb") as f:
        f.write(data)
    return ids


def R(gitaly, rel="corrupt.git"):
    return gitaly.repo(rel)


def timed(fn):
    t = time.monotonic()
    try:
        return fn(), None, time.monotonic() - t
    except grpc.RpcError as e:
        return None, e, time.monotonic() - t


def get_blob(blobs, gitaly, oid, rel="corrupt.git"):
    return b"".join(r.data for r in blobs.GetBlob(
        bp.GetBlobRequest(repository=R(gitaly, rel), oid=oid, limit=-1), timeout=DEADLINE))


def tree_entry(commits, gitaly, rev, path):
    return list(commits.TreeEntry(cp.TreeEntryRequest(
        repository=R(gitaly), revision=rev.encode(), path=path), timeout=DEADLINE))


def assert_internal(err, took):
    assert err is not None, "a read of a corrupt object succeeded"
    assert err.code() == INTERNAL, "%s: %s" % (err.code(), err.details())
    assert took < DEADLINE


def test_truncated_and_flipped_blobs(blobs, commits, gitaly, repo):
    for name in ("small.txt", "big.bin", "flip.txt"):
        _, err, took = timed(lambda: get_blob(blobs, gitaly, repo[name]))
        assert_internal(err, took)
        _, err, took = timed(lambda: tree_entry(commits, gitaly, repo["bad"], name.encode()))
        assert_internal(err, took)
    # The intact blob beside them reads fine, through either RPC.
    assert get_blob(blobs, gitaly, repo["ok.txt"]) == b"fine\n"
    resps = tree_entry(commits, gitaly, repo["bad"], b"ok.txt")
    assert b"".join(r.data for r in resps) == b"fine\n"


def test_truncated_commit(commits, gitaly):
    # Its own repository: no cached handle may have read the commit intact.
    rel = "badcommit.git"
    path = make_repo(gitaly.path(rel))
    good = commit(path, {"ok.txt": b"fine\n"}, message="good", ref="refs/heads/good")
    bad = commit(path, {"ok.txt": b"fine\n", "x": b"x\n"}, message="bad", parents=[good],
                 ref="refs/heads/main")
    p = loose_path(path, bad)
    with open(p, "rb") as f:
        intact = f.read()
    truncate_half(p)
    repo = gitaly.repo(rel)
    for rev in (bad, "main"):
        _, err, took = timed(lambda: commits.FindCommit(cp.FindCommitRequest(
            repository=repo, revision=rev.encode()), timeout=DEADLINE))
        assert_internal(err, took)
    _, err, took = timed(lambda: list(commits.TreeEntry(cp.TreeEntryRequest(
        repository=repo, revision=b"main", path=b"ok.txt"), timeout=DEADLINE)))
    assert_internal(err, took)
    _, err, took = timed(lambda: list(commits.GetTreeEntries(cp.GetTreeEntriesRequest(
        repository=repo, revision=b"main", path=b"."), timeout=DEADLINE)))
    assert_internal(err, took)
    c = commits.FindCommit(cp.FindCommitRequest(
        repository=repo, revision=b"good"), timeout=DEADLINE).commit
    assert c.id == good and c.subject == b"good"
    # Repaired on disk: read again, now whole (a failure is not remembered).
    with open(p, "wb") as f:
        f.write(intact)
    c = commits.FindCommit(cp.FindCommitRequest(
        repository=repo, revision=b"main"), timeout=DEADLINE).commit
    assert c.id == bad and c.subject == b"bad"


def test_server_keeps_serving(blobs, commits, gitaly, repo):
    # Far more corrupt reads than worker threads: none may keep a worker.
    for _ in range(40):
        _, err, took = timed(lambda: get_blob(blobs, gitaly, repo["big.bin"]))
        assert_internal(err, took)
    assert gitaly.proc.poll() is None
    for _ in range(5):
        c = commits.FindCommit(cp.FindCommitRequest(
            repository=R(gitaly), revision=b"good"), timeout=DEADLINE).commit
        assert c.id == repo["good"]


def test_truncated_pack(blobs, commits, gitaly):
    path = make_repo(gitaly.path("badpack.git"))
    rnd = random.Random(8)
    head = commit(path, {"a.bin": rnd.randbytes(200 * 1024), "b.txt": b"bee\n"},
                  ref="refs/heads/main")
    blob = git("-C", path, "rev-parse", head + ":a.bin").decode().strip()
    git("-C", path, "repack", "-q", "-a", "-d")
    git("-C", path, "prune-packed")
    assert not os.path.exists(loose_path(path, blob))
    pack_dir = os.path.join(path, "objects", "pack")
    for name in os.listdir(pack_dir):
        if name.endswith(".pack"):
            truncate_half(os.path.join(pack_dir, name))
    data, err, took = timed(lambda: get_blob(blobs, gitaly, blob, rel="badpack.git"))
    assert took < DEADLINE
    # An error, or the empty answer GetBlob gives for a missing object.
    assert (err is None and data == b"") or (err is not None and err.code() == INTERNAL), err
    resp, err, took = timed(lambda: commits.FindCommit(cp.FindCommitRequest(
        repository=R(gitaly, "badpack.git"), revision=head.encode()), timeout=DEADLINE))
    assert took < DEADLINE
    assert (err is None and not resp.HasField("commit")) or \
        (err is not None and err.code() == INTERNAL), err
    assert gitaly.proc.poll() is None
