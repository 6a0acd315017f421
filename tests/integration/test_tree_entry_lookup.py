"""TreeEntry finds the entry by name in its directory's tree (no listing of
the whole directory): the answers stay those of upstream's listing-based
lookup, in a directory of 3,000 entries, nested, for trees and blobs, and
for path spellings the listing never matches (unclean paths are not
found; a trailing slash is dropped)."""

import grpc
import pytest

import commit_pb2 as cp
import commit_pb2_grpc
from conftest import git, make_repo

NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def repo(gitaly):
    path = gitaly.path("tree-lookup.git")
    make_repo(path)
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
    yield commit_pb2_grpc.CommitServiceStub(ch), gitaly.repo("tree-lookup.git"), path
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
