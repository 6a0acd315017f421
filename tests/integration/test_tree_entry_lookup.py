"""TreeEntry finds the entry by name in its directory's tree (no listing of
the whole directory): the answers stay those of upstream's listing-based
lookup, in a directory of 3,000 entries, nested, for trees and blobs, and
for path spellings the listing never matches (unclean paths are not
found; a trailing slash is dropped)."""

import grpc
import pytest

import commit_pb2 as cp
import commit_pb2_grpc
from conftest import git, git_supports_sha256, make_repo

NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module", params=["sha1", "sha256"])
def repo(gitaly, request):
    """The same trees in a SHA-1 repository (libgit2's by-name lookup) and a
    SHA-256 one (the cat-file reader's scan of the directory)."""
    fmt = request.param
    if fmt == "sha256" and not git_supports_sha256():
        pytest.skip("git without sha256")
    rel = "tree-lookup.git" if fmt == "sha1" else "tree-lookup-sha256.git"
    path = gitaly.path(rel)
    make_repo(path, object_format=fmt)
    blob = git("-C", path, "hash-object", "-w", "--stdin", input=b"x\n").decode().strip()
    leaf = git("-C", path, "hash-object", "-w", "--stdin", input=b"leaf\n").decode().strip()
    deep = git("-C", path, "mktree", input=("100644 blob %s\tleaf\n" % leaf).encode()).decode().strip()
    mid = git("-C", path, "mktree", input=("040000 tree %s\tc\n" % deep).encode()).decode().strip()
    many = "".join("100644 blob %s\tf%04d\n" % (blob, i) for i in range(3000))
    big = git("-C", path, "mktree", input=many.encode()).decode().strip()
    root = git("-C", path, "mktree", input=(
        "040000 tree %s\tbig\n040000 tree %s\tb\n100644 blob %s\tREADME\n" % (big, mid, blob)).encode()
    ).decode().strip()
    c = git("-C", path, "commit-tree", root, "-m", "m").decode().strip()
    git("-C", path, "update-ref", "refs/heads/main", c)
    ch = gitaly.channel("unix")
    yield commit_pb2_grpc.CommitServiceStub(ch), gitaly.repo(rel), path
    ch.close()


def entry(stub, repo, p):
    rs = list(stub.TreeEntry(cp.TreeEntryRequest(repository=repo, revision=b"main", path=p)))
    return rs[0]


@pytest.mark.parametrize("p", [b"big/f0000", b"big/f1499", b"big/f2999", b"README", b"b/c/leaf",
                               b"b/c", b"b", b"b/c/"])
def test_found(repo, p):
    stub, msg, path = repo
    r = entry(stub, msg, p)
    assert r.oid == git("-C", path, "rev-parse", b"main:" + p.rstrip(b"/")).decode().strip()
    want = git("-C", path, "cat-file", "-t", r.oid).decode().strip()
    assert r.type == {"blob": cp.TreeEntryResponse.BLOB, "tree": cp.TreeEntryResponse.TREE}[want]


@pytest.mark.parametrize("p", [b"big/f3000", b"./README", b"b//c", b"b/./c", b"b/c/../c",
                               b"nope/leaf", b"big/f0000/x", b"../README"])
def test_not_found(repo, p):
    stub, msg, _ = repo
    with pytest.raises(grpc.RpcError) as e:
        entry(stub, msg, p)
    assert e.value.code() == NOT_FOUND
    assert e.value.details() == "tree entry not found"
