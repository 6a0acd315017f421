"""BlobService scenarios over the wire. Every answer is compared with what
the git CLI says about the same repository (cat-file, rev-list, ls-tree,
cat-file --batch-all-objects), on a repository built at test time with
binary files, a blob larger than the 128 KiB chunk size (and than 1 MiB),
a symlink, a submodule, LFS pointers, unreachable objects and a quarantine
directory whose objects are visible only through the request's
git_object_directory."""

import os
import subprocess
import random

import grpc
import pytest

import blob_pb2 as bp
import blob_pb2_grpc
import shared_pb2
from conftest import assert_code, git, make_repo, rpc_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
INTERNAL = grpc.StatusCode.INTERNAL
CHUNK = 128 * 1024

REL = "blobs.git"
QUARANTINE = "objects/incoming-test"


def lfs_pointer(seed, size=1234):
    h = ("%064x" % (seed * 0x9E3779B97F4A7C15))[-64:]
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
            % (h, size)).encode()


def hash_object(repo, data, env=None):
    return git("-C", repo, "hash-object", "-w", "--stdin", input=data, env=env).decode().strip()


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(ch):
    s = blob_pb2_grpc.BlobServiceStub(ch)
    try:
        list(s.GetBlob(bp.GetBlobRequest(
            repository=shared_pb2.Repository(storage_name="default", relative_path="x.git"),
            oid="0" * 40), timeout=10))
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("BlobService is not registered in services_all yet")
    return s


@pytest.fixture(scope="module")
def repo(gitaly):
    """The test repository; returns a dict of interesting object ids."""
    path = gitaly.path(REL)
    make_repo(path)
    work = path + ".work"
    git("init", "-q", "-b", "main", work)
    rnd = random.Random(4)
    files = {
        "README.md": b"hello\n",
        "bin/data.bin": rnd.randbytes(3000) + b"\0\0\xff",
        "big/large.bin": rnd.randbytes(1536 * 1024 + 17),
        # Above the server's 8 MiB threshold: streamed from git cat-file.
        "big/huge.bin": rnd.randbytes(9 * 1024 * 1024 + 5),
        "lfs/pointer.dat": lfs_pointer(1),
        "lfs/almost.dat": b"version https://git-lfs.github.com/spec/v1\noid sha256:xyz\nsize 1\n",
        "empty": b"",
        "dir/sub/deep.txt": b"deep\n" * 10,
    }
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(work, name)) or work, exist_ok=True)
        with open(os.path.join(work, name), "wb") as f:
            f.write(data)
    os.symlink("README.md", os.path.join(work, "link"))
    git("-C", work, "add", "-A")
    sub_commit = "1" * 40
    git("-C", work, "update-index", "--add", "--cacheinfo", "160000,%s,sub" % sub_commit)
    git("-C", work, "commit", "-q", "-m", "first")
    with open(os.path.join(work, "README.md"), "wb") as f:
        f.write(b"hello again\n")
    with open(os.path.join(work, "lfs/second.dat"), "wb") as f:
        f.write(lfs_pointer(2, 99))
    git("-C", work, "add", "-A")
    # add -A drops the gitlink (no checkout of it): put it back.
    git("-C", work, "update-index", "--add", "--cacheinfo", "160000,%s,sub" % sub_commit)
    git("-C", work, "commit", "-q", "-m", "second")
    assert git("-C", work, "ls-tree", "HEAD", "sub").startswith(b"160000 commit")
    git("-C", work, "push", "-q", path, "main")
    git("-C", work, "checkout", "-q", "-b", "side", "HEAD~1")
    with open(os.path.join(work, "side.txt"), "wb") as f:
        f.write(b"side\n")
    git("-C", work, "add", "-A")
    git("-C", work, "commit", "-q", "-m", "side")
    git("-C", work, "push", "-q", path, "side")

    ids = {name: git("-C", path, "rev-parse", "main:" + name).decode().strip()
           for name in ("README.md", "bin/data.bin", "big/large.bin", "big/huge.bin", "lfs/pointer.dat",
                        "lfs/almost.dat", "empty", "link", "dir", "lfs/second.dat")}
    ids["main"] = git("-C", path, "rev-parse", "main").decode().strip()
    ids["side"] = git("-C", path, "rev-parse", "side").decode().strip()
    ids["sub"] = sub_commit
    # Unreachable objects: a plain blob and an LFS pointer.
    ids["dangling"] = hash_object(path, b"nobody points at me\n")
    ids["dangling_lfs"] = hash_object(path, lfs_pointer(3))
    # Quarantined objects, as receive-pack leaves them before hooks accept.
    qdir = os.path.join(path, QUARANTINE)
    os.makedirs(qdir)
    qenv = {"GIT_OBJECT_DIRECTORY": qdir,
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(path, "objects")}
    ids["q_blob"] = hash_object(path, b"quarantined content\n", env=qenv)
    ids["q_lfs"] = hash_object(path, lfs_pointer(4, 42), env=qenv)
    return ids


def R(gitaly, quarantine=False):
    r = shared_pb2.Repository(storage_name="default", relative_path=REL)
    if quarantine:
        r.git_object_directory = QUARANTINE
        r.git_alternate_object_directories.append("objects")
    return r


def cat(gitaly, oid, kind="blob"):
    return git("-C", gitaly.path(REL), "cat-file", kind, oid)


def all_objects(gitaly, env=None):
    """(oid, type, size) in git's --unordered order."""
    out = git("-C", gitaly.path(REL), "cat-file", "--batch-all-objects", "--batch-check",
              "--buffer", "--unordered", env=env).decode().split("\n")
    res = []
    for line in out:
        if line:
            oid, typ, size = line.split()
            res.append((oid, typ, int(size)))
    return res


def qenv(gitaly):
    path = gitaly.path(REL)
    return {"GIT_OBJECT_DIRECTORY": os.path.join(path, QUARANTINE),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(path, "objects")}


# ---------------------------------------------------------------- GetBlob

@pytest.mark.parametrize("name", ["big/large.bin", "big/huge.bin"])
def test_get_blob_chunks_large_blob(gitaly, stub, repo, name):
    oid = repo[name]
    want = cat(gitaly, oid)
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=oid, limit=-1)))
    assert len(msgs) == (len(want) + CHUNK - 1) // CHUNK
    assert msgs[0].oid == oid and msgs[0].size == len(want)
    assert all(m.oid == "" and m.size == 0 for m in msgs[1:])
    assert all(len(m.data) == CHUNK for m in msgs[:-1])
    assert b"".join(m.data for m in msgs) == want


@pytest.mark.parametrize("name", ["big/large.bin", "big/huge.bin"])
@pytest.mark.parametrize("limit", [0, 1, 100, CHUNK, CHUNK + 1, 10 ** 9, -1])
def test_get_blob_limits(gitaly, stub, repo, limit, name):
    oid = repo[name]
    want = cat(gitaly, oid)
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=oid, limit=limit)))
    data = b"".join(m.data for m in msgs)
    expect = want if limit < 0 else want[:limit]
    assert data == expect
    assert msgs[0].size == len(want) and msgs[0].oid == oid
    if limit == 0:
        assert len(msgs) == 1 and msgs[0].data == b""


def test_get_blob_binary_and_empty(gitaly, stub, repo):
    for name in ("bin/data.bin", "link"):
        oid = repo[name]
        msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=oid, limit=-1)))
        assert b"".join(m.data for m in msgs) == cat(gitaly, oid)
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=repo["empty"],
                                               limit=-1)))
    assert len(msgs) == 1 and msgs[0].oid == repo["empty"] and msgs[0].size == 0


def test_get_blob_by_revision_syntax(gitaly, stub, repo):
    # cat-file resolves any revision; upstream passes the oid field through.
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid="main:README.md",
                                               limit=-1)))
    assert msgs[0].oid == repo["README.md"]
    assert b"".join(m.data for m in msgs) == b"hello again\n"
    short = repo["README.md"][:10]
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=short, limit=-1)))
    assert msgs[0].oid == repo["README.md"]


@pytest.mark.parametrize("which", ["missing", "tree", "commit"])
def test_get_blob_not_a_blob_is_one_empty_message(gitaly, stub, repo, which):
    oid = {"missing": "f" * 40, "tree": repo["dir"], "commit": repo["main"]}[which]
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=oid, limit=-1)))
    assert len(msgs) == 1
    assert msgs[0] == bp.GetBlobResponse()


def test_get_blob_validation(gitaly, stub, repo):
    err = rpc_error(lambda: list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly)))))
    assert_code(err, INVALID, "empty Oid")
    err = rpc_error(lambda: list(stub.GetBlob(bp.GetBlobRequest(oid=repo["README.md"]))))
    assert err.code() == INVALID
    bad = shared_pb2.Repository(storage_name="default", relative_path="nope.git")
    err = rpc_error(lambda: list(stub.GetBlob(bp.GetBlobRequest(repository=bad, oid="a" * 40))))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_get_blob_quarantine(gitaly, stub, repo):
    oid = repo["q_blob"]
    plain = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=oid, limit=-1)))
    assert plain == [bp.GetBlobResponse()]
    q = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly, True), oid=oid, limit=-1)))
    assert q[0].oid == oid and b"".join(m.data for m in q) == b"quarantined content\n"
    # Normal objects stay visible through the alternate.
    q = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly, True), oid=repo["README.md"],
                                            limit=-1)))
    assert q[0].oid == repo["README.md"]


def test_cached_handle_sees_later_push_and_repack(gitaly, stub, repo):
    path = gitaly.path(REL)
    # Warm the handle cache.
    list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=repo["README.md"])))
    work = path + ".work"
    git("-C", work, "checkout", "-q", "main")
    with open(os.path.join(work, "late.txt"), "wb") as f:
        f.write(b"pushed after caching\n")
    git("-C", work, "add", "late.txt")
    git("-C", work, "commit", "-q", "-m", "late")
    git("-C", work, "push", "-q", path, "main:refs/heads/late")
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid="late:late.txt",
                                               limit=-1)))
    assert b"".join(m.data for m in msgs) == b"pushed after caching\n"
    git("-C", path, "repack", "-q", "-ad")
    for name in ("README.md", "big/large.bin"):
        msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=repo[name],
                                                   limit=-1)))
        assert b"".join(m.data for m in msgs) == cat(gitaly, repo[name])


# ---------------------------------------------------------------- GetBlobs

def ls_tree_entry(gitaly, rev, path):
    out = git("-C", gitaly.path(REL), "ls-tree", "-z", rev, "--", path).decode()
    meta, name = out.rstrip("\0").split("\t", 1)
    mode, typ, oid = meta.split()
    return int(mode, 8), typ, oid


def group_get_blobs(msgs):
    items = []
    for m in msgs:
        if m.oid or m.revision or m.path:
            items.append([m, b""])
        items[-1][1] += m.data
    return items


def test_get_blobs_kinds(gitaly, stub, repo):
    pairs = [("main", b"README.md"), ("main", b"big/large.bin"), ("main", b"dir"),
             ("main", b"dir/sub/"), ("main", b"sub"), ("main", b"link"),
             ("main", b"does/not/exist"), ("nope", b"README.md"), ("main~1", b"README.md"),
             ("main", b""), ("main", b"./README.md")]
    req = bp.GetBlobsRequest(repository=R(gitaly), limit=-1, revision_paths=[
        bp.GetBlobsRequest.RevisionPath(revision=r, path=p) for r, p in pairs])
    items = group_get_blobs(stub.GetBlobs(req))
    assert len(items) == len(pairs)
    by = {(m.revision, m.path): (m, d) for m, d in items}
    # Blobs: mode, oid, size and content as ls-tree and cat-file say.
    for rev, p in [("main", "README.md"), ("main", "big/large.bin"), ("main", "link"),
                   ("main~1", "README.md")]:
        m, data = by[(rev, p.encode())]
        mode, typ, oid = ls_tree_entry(gitaly, rev, p)
        assert (m.mode, m.oid, m.type, m.is_submodule) == (mode, oid, shared_pb2.BLOB, False)
        assert data == cat(gitaly, oid) and m.size == len(data)
    # Trees: type and size, no data; trailing slash trimmed in the answer.
    m, data = by[("main", b"dir")]
    assert m.type == shared_pb2.TREE and m.oid == repo["dir"] and data == b""
    assert m.size == int(git("-C", gitaly.path(REL), "cat-file", "-s", repo["dir"]))
    m, _ = by[("main", b"dir/sub")]
    assert m.type == shared_pb2.TREE and m.mode == 0o40000
    # Submodule: commit type, no size.
    m, _ = by[("main", b"sub")]
    assert (m.is_submodule, m.type, m.oid, m.mode, m.size) == (
        True, shared_pb2.COMMIT, repo["sub"], 0o160000, 0)
    # Not found: only revision and path.
    for key in [("main", b"does/not/exist"), ("nope", b"README.md"), ("main", b""),
                ("main", b"./README.md")]:
        m, data = by[key]
        assert (m.oid, m.size, m.mode, m.type, data) == ("", 0, 0, 0, b"")


def test_get_blobs_limit_and_chunks(gitaly, stub, repo):
    req = bp.GetBlobsRequest(repository=R(gitaly), limit=CHUNK + 5, revision_paths=[
        bp.GetBlobsRequest.RevisionPath(revision="main", path=b"big/large.bin"),
        bp.GetBlobsRequest.RevisionPath(revision="main", path=b"README.md")])
    msgs = list(stub.GetBlobs(req))
    assert len(msgs) == 3
    assert msgs[0].path == b"big/large.bin" and len(msgs[0].data) == CHUNK
    assert msgs[1].path == b"" and msgs[1].oid == "" and len(msgs[1].data) == 5
    assert msgs[2].path == b"README.md" and msgs[2].data == b"hello again\n"
    req.limit = 0
    msgs = list(stub.GetBlobs(req))
    assert [m.data for m in msgs] == [b"", b""]
    assert msgs[0].size == len(cat(gitaly, repo["big/large.bin"]))


def test_get_blobs_huge_blob_streamed(gitaly, stub, repo):
    want = cat(gitaly, repo["big/huge.bin"])
    for limit, expect in ((-1, want), (len(want) - 3, want[:-3])):
        req = bp.GetBlobsRequest(repository=R(gitaly), limit=limit, revision_paths=[
            bp.GetBlobsRequest.RevisionPath(revision="main", path=b"big/huge.bin")])
        msgs = list(stub.GetBlobs(req))
        assert len(msgs) == (len(expect) + CHUNK - 1) // CHUNK
        assert msgs[0].size == len(want) and msgs[0].oid == repo["big/huge.bin"]
        assert all(m.oid == "" and m.path == b"" for m in msgs[1:])
        assert b"".join(m.data for m in msgs) == expect


def test_get_blobs_validation(gitaly, stub):
    err = rpc_error(lambda: list(stub.GetBlobs(bp.GetBlobsRequest(repository=R(gitaly)))))
    assert_code(err, INVALID, "empty RevisionPaths")
    for rev, msg in [("-main", "revision can't start with '-'"),
                     ("ma in", "revision can't contain whitespace"),
                     ("", "empty revision")]:
        req = bp.GetBlobsRequest(repository=R(gitaly), revision_paths=[
            bp.GetBlobsRequest.RevisionPath(revision=rev, path=b"README.md")])
        err = rpc_error(lambda: list(stub.GetBlobs(req)))
        assert_code(err, INVALID, msg)


# ---------------------------------------------------------------- ListBlobs

def revlist_blobs(gitaly, *revs):
    out = git("-C", gitaly.path(REL), "rev-list", "--in-commit-order", "--objects",
              "--object-names", "--filter=object:type=blob", "--filter-provided-objects",
              *revs).decode().split("\n")
    res = []
    for line in out:
        if line:
            oid, _, path = line.partition(" ")
            res.append((oid, path.encode()))
    return res


def flatten_list(msgs):
    """Joins continuation items (no oid) into the blob before them."""
    res = []
    for m in msgs:
        for b in m.blobs:
            if b.oid:
                res.append([b.oid, b.size, b.data, getattr(b, "path", b"")])
            else:
                res[-1][2] += b.data
    return res


@pytest.mark.parametrize("revs", [["main"], ["--all"], ["main", "--not", "side"],
                                  ["side", "^main"], ["main~1"]])
def test_list_blobs_matches_rev_list(gitaly, stub, repo, revs):
    want = revlist_blobs(gitaly, *revs)
    assert want
    got = flatten_list(stub.ListBlobs(bp.ListBlobsRequest(
        repository=R(gitaly), revisions=revs, with_paths=True)))
    assert [(o, p) for o, _, _, p in got] == want
    for oid, size, data, _ in got:
        assert data == b""
        assert size == int(git("-C", gitaly.path(REL), "cat-file", "-s", oid))


def test_list_blobs_content_limits(gitaly, stub, repo):
    want = revlist_blobs(gitaly, "main")
    got = flatten_list(stub.ListBlobs(bp.ListBlobsRequest(
        repository=R(gitaly), revisions=["main"], bytes_limit=-1)))
    assert [g[0] for g in got] == [o for o, _ in want]
    for oid, size, data, path in got:
        assert data == cat(gitaly, oid) and size == len(data) and path == b""
    got = flatten_list(stub.ListBlobs(bp.ListBlobsRequest(
        repository=R(gitaly), revisions=["main"], bytes_limit=7, limit=3)))
    assert len(got) == 3
    for oid, size, data, _ in got:
        assert data == cat(gitaly, oid)[:7]


def test_list_blobs_message_size(gitaly, stub, repo):
    msgs = list(stub.ListBlobs(bp.ListBlobsRequest(
        repository=R(gitaly), revisions=["main"], bytes_limit=-1)))
    # The 1.5 MiB blob cannot fit one message: the chunker splits at 1 MiB.
    assert len(msgs) >= 2
    assert all(m.ByteSize() < 1024 * 1024 + CHUNK for m in msgs)


def test_list_blobs_validation_and_errors(gitaly, stub, repo):
    err = rpc_error(lambda: list(stub.ListBlobs(bp.ListBlobsRequest(repository=R(gitaly)))))
    assert_code(err, INVALID, "missing revisions")
    err = rpc_error(lambda: list(stub.ListBlobs(bp.ListBlobsRequest(
        repository=R(gitaly), revisions=["main", "--foo"]))))
    assert_code(err, INVALID, 'invalid revision: "--foo"')
    err = rpc_error(lambda: list(stub.ListBlobs(bp.ListBlobsRequest(
        repository=R(gitaly), revisions=["does-not-exist"]))))
    assert_code(err, INTERNAL, contains="processing blobs: rev-list pipeline command: exit status 128")


# ---------------------------------------------------------------- ListAllBlobs

def test_list_all_blobs_matches_cat_file(gitaly, stub, repo):
    want = [(o, s) for o, t, s in all_objects(gitaly) if t == "blob"]
    got = flatten_list(stub.ListAllBlobs(bp.ListAllBlobsRequest(repository=R(gitaly))))
    assert [(o, s) for o, s, _, _ in got] == want
    oids = {o for o, _ in want}
    assert repo["dangling"] in oids and repo["q_blob"] not in oids


def test_list_all_blobs_quarantine_and_content(gitaly, stub, repo):
    want = [(o, s) for o, t, s in all_objects(gitaly, env=qenv(gitaly)) if t == "blob"]
    got = flatten_list(stub.ListAllBlobs(bp.ListAllBlobsRequest(
        repository=R(gitaly, True), bytes_limit=-1)))
    assert [(o, s) for o, s, _, _ in got] == want
    assert repo["q_blob"] in {o for o, _ in want}
    for oid, size, data, _ in got:
        assert len(data) == size
        if oid == repo["q_blob"]:
            assert data == b"quarantined content\n"
    got = flatten_list(stub.ListAllBlobs(bp.ListAllBlobsRequest(
        repository=R(gitaly), limit=2, bytes_limit=3)))
    assert len(got) == 2 and all(len(d) <= 3 for _, _, d, _ in got)


# ---------------------------------------------------------------- LFS

def pointers(msgs):
    return sorted((p.oid, p.size, p.data) for m in msgs for p in m.lfs_pointers)


def test_get_lfs_pointers(gitaly, stub, repo):
    ids = [repo["lfs/pointer.dat"], repo["lfs/almost.dat"], repo["README.md"],
           repo["big/large.bin"], repo["dir"], repo["dangling_lfs"]]
    got = pointers(stub.GetLFSPointers(bp.GetLFSPointersRequest(repository=R(gitaly),
                                                                blob_ids=ids)))
    want = sorted((o, len(cat(gitaly, o)), cat(gitaly, o))
                  for o in (repo["lfs/pointer.dat"], repo["dangling_lfs"]))
    assert got == want
    err = rpc_error(lambda: list(stub.GetLFSPointers(bp.GetLFSPointersRequest(
        repository=R(gitaly)))))
    assert_code(err, INVALID, "empty BlobIds")
    err = rpc_error(lambda: list(stub.GetLFSPointers(bp.GetLFSPointersRequest(
        repository=R(gitaly), blob_ids=["f" * 40]))))
    assert_code(err, INTERNAL, 'retrieving object info for "%s": object not found' % ("f" * 40))


def test_list_lfs_pointers(gitaly, stub, repo):
    got = pointers(stub.ListLFSPointers(bp.ListLFSPointersRequest(
        repository=R(gitaly), revisions=["main"])))
    assert [g[0] for g in got] == sorted([repo["lfs/pointer.dat"], repo["lfs/second.dat"]])
    assert all(g[2] == cat(gitaly, g[0]) for g in got)
    got = pointers(stub.ListLFSPointers(bp.ListLFSPointersRequest(
        repository=R(gitaly), revisions=["main", "--not", "side"])))
    assert [g[0] for g in got] == [repo["lfs/second.dat"]]
    got = list(stub.ListLFSPointers(bp.ListLFSPointersRequest(
        repository=R(gitaly), revisions=["--all"], limit=1)))
    assert sum(len(m.lfs_pointers) for m in got) == 1
    err = rpc_error(lambda: list(stub.ListLFSPointers(bp.ListLFSPointersRequest(
        repository=R(gitaly)))))
    assert_code(err, INVALID, "missing revisions")
    err = rpc_error(lambda: list(stub.ListLFSPointers(bp.ListLFSPointersRequest(
        repository=R(gitaly), revisions=["-x"]))))
    assert_code(err, INVALID, 'invalid revision: "-x"')


def test_list_all_lfs_pointers(gitaly, stub, repo):
    got = pointers(stub.ListAllLFSPointers(bp.ListAllLFSPointersRequest(repository=R(gitaly))))
    expect = sorted([repo["lfs/pointer.dat"], repo["lfs/second.dat"], repo["dangling_lfs"]])
    assert [g[0] for g in got] == expect
    got = pointers(stub.ListAllLFSPointers(bp.ListAllLFSPointersRequest(
        repository=R(gitaly, True))))
    assert [g[0] for g in got] == sorted(expect + [repo["q_lfs"]])
    # Rails' push check: the quarantine alone (alternates cleared) lists
    # only the newly pushed pointers.
    only_q = shared_pb2.Repository(storage_name="default", relative_path=REL,
                                   git_object_directory=QUARANTINE)
    got = pointers(stub.ListAllLFSPointers(bp.ListAllLFSPointersRequest(repository=only_q)))
    assert [(g[0], g[2]) for g in got] == [(repo["q_lfs"], lfs_pointer(4, 42))]
    got = list(stub.ListAllLFSPointers(bp.ListAllLFSPointersRequest(
        repository=R(gitaly), limit=2)))
    assert sum(len(m.lfs_pointers) for m in got) == 2


def test_catfile_cache_metrics(gitaly, stub, repo):
    def total(kind):
        for name, labels, value in gitaly.metrics():
            if name == "gitaly_catfile_cache_total" and labels.get("type") == kind:
                return value
        return 0.0
    list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=repo["README.md"])))
    hits = total("hit")
    for _ in range(3):
        list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=repo["README.md"])))
    assert total("hit") >= hits + 3


# ---------------------------------------------------------------- corruption

def test_corrupt_objects_give_errors_not_crashes(gitaly, stub, repo):
    rel = "corrupt.git"
    path = gitaly.path(rel)
    make_repo(path)
    loose = hash_object(path, b"loose object soon to be garbage\n")
    mismatch = hash_object(path, b"content whose hash will not match\n")
    packed_src = os.path.join(path + ".src")
    make_repo(packed_src)
    rnd = random.Random(7)
    packed = hash_object(packed_src, rnd.randbytes(200000))
    git("-C", packed_src, "repack", "-q", "-a", "-d")
    # A loose object whose zlib stream is garbage.
    lpath = os.path.join(path, "objects", loose[:2], loose[2:])
    os.chmod(lpath, 0o644)
    with open(lpath, "wb") as f:
        f.write(b"\x78\x01garbage" * 4)
    # A loose object that inflates fine but hashes to something else.
    import zlib
    mpath = os.path.join(path, "objects", mismatch[:2], mismatch[2:])
    os.chmod(mpath, 0o644)
    with open(mpath, "wb") as f:
        f.write(zlib.compress(b"blob 5\0wrong"[:12]))
    # A truncated pack.
    packdir = os.path.join(path, "objects", "pack")
    for name in os.listdir(os.path.join(packed_src, "objects", "pack")):
        with open(os.path.join(packed_src, "objects", "pack", name), "rb") as f:
            data = f.read()
        if name.endswith(".pack"):
            data = data[:len(data) // 2]
        with open(os.path.join(packdir, name), "wb") as f:
            f.write(data)
    r = shared_pb2.Repository(storage_name="default", relative_path=rel)
    for oid in (loose, mismatch, packed):
        try:
            msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=r, oid=oid, limit=-1),
                                     timeout=20))
        except grpc.RpcError as e:
            assert e.code() == INTERNAL, (oid, e.code(), e.details())
        else:
            # libgit2 may not notice every corruption from the header alone,
            # but it must never hand out bytes that are not the object.
            assert msgs == [bp.GetBlobResponse()], oid
    err = rpc_error(lambda: list(stub.ListAllBlobs(bp.ListAllBlobsRequest(
        repository=r, bytes_limit=-1), timeout=20)))
    assert err.code() == INTERNAL
    # The server is still serving.
    msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=R(gitaly), oid=repo["README.md"],
                                               limit=-1)))
    assert b"".join(m.data for m in msgs) == b"hello again\n"


# ---------------------------------------------------------------- revision syntax

def test_revision_resolution_matches_git(gitaly, stub, repo):
    """Ambiguous names, hex-looking branch names, peeling and paths resolve
    to what git cat-file says."""
    rel = "ambiguous.git"
    path = gitaly.path(rel)
    src = gitaly.path(REL)
    git("clone", "-q", "--bare", src, path)
    side = git("-C", path, "rev-parse", "side").decode().strip()
    main = git("-C", path, "rev-parse", "main").decode().strip()
    git("-C", path, "tag", "main", side)              # tag shadows the branch
    git("-C", path, "branch", main[:7], side)         # branch named like an abbreviation
    git("-C", path, "tag", "-a", "-m", "annotated", "v1", main)
    r = shared_pb2.Repository(storage_name="default", relative_path=rel)
    specs = ["main:README.md", "refs/heads/main:README.md", main[:7] + ":side.txt",
             main[:7] + ":README.md", "v1:README.md", "v1^{tree}", "main~1:README.md",
             "side^:lfs/pointer.dat", "main:dir/sub/deep.txt", "HEAD:README.md",
             "main:nope", "nope:README.md"]
    for spec in specs:
        res = subprocess.run(["git", "-C", path, "cat-file", "-t", spec],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        msgs = list(stub.GetBlob(bp.GetBlobRequest(repository=r, oid=spec, limit=-1)))
        if res.returncode != 0 or res.stdout.strip() != b"blob":
            assert msgs == [bp.GetBlobResponse()], spec
            continue
        oid = git("-C", path, "rev-parse", spec).decode().strip()
        assert msgs[0].oid == oid, spec
        assert b"".join(m.data for m in msgs) == git("-C", path, "cat-file", "blob", spec), spec
