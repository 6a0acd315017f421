"""RepositoryService read RPCs against a running server: every answer is
compared with what the git CLI says about the same repository (fsck,
rev-list --disk-usage, check-attr, ls-tree, grep, diff --raw, bundle
verify/list-heads, archive contents, snapshot contents), and bad input is
refused without touching the disk."""

import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
import zipfile

import grpc
import pytest

import repository_pb2 as rp
from conftest import assert_code, commit, git, make_repo, rpc_error, tree_snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ZERO = "0" * 40


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(gitaly, ch):
    return gitaly.repo_stub(ch)


FILES1 = {
    ".gitattributes": b"*.txt diff=foo\n*.bin -diff binary\n",
    "README.md": b"# Project\nsome needle here\n",
    "a.txt": b"alpha\nbeta\nNeedle\ngamma\n",
    "blob.bin": b"needle\x00binary",
    "LICENSE": b"placeholder\n",
}


@pytest.fixture(scope="module")
def repo(gitaly):
    """reads.git: two commits on main, the second modifying, adding and
    deleting files."""
    rel = "group/reads.git"
    path = gitaly.path(rel)
    make_repo(path)
    c1 = commit(path, FILES1, "first", ref="refs/heads/main")
    files2 = dict(FILES1)
    files2["a.txt"] = b"alpha\nchanged\n"
    files2["new.txt"] = b"new file\n"
    del files2["blob.bin"]
    c2 = commit(path, files2, "second", [c1], "refs/heads/main", date=1700000100)
    git("-C", path, "tag", "v1", c1)
    return {"rel": rel, "path": path, "c1": c1, "c2": c2, "repo": gitaly.repo(rel)}


def test_fsck(gitaly, stub, repo):
    resp = stub.Fsck(rp.FsckRequest(repository=repo["repo"]), timeout=30)
    assert resp.error == b""
    # Corrupt a copy: remove a loose blob.
    rel = "group/broken.git"
    path = gitaly.path(rel)
    make_repo(path)
    oid = commit(path, {"f": b"content\n"}, "c", ref="refs/heads/main")
    blob = git("-C", path, "rev-parse", oid + ":f").decode().strip()
    os.remove(os.path.join(path, "objects", blob[:2], blob[2:]))
    want = subprocess.run(["git", "-C", path, "fsck", "--no-progress", "--no-dangling"],
                          capture_output=True)
    assert want.returncode != 0
    resp = stub.Fsck(rp.FsckRequest(repository=gitaly.repo(rel)), timeout=30)
    assert resp.error == want.stdout + want.stderr
    assert blob.encode() in resp.error
    err = rpc_error(stub.Fsck, rp.FsckRequest(repository=gitaly.repo("nope.git")), timeout=10)
    assert_code(err, NOT_FOUND)


def test_objects_size(stub, repo):
    want = int(git("-C", repo["path"], "rev-list", "--disk-usage", "--objects", "main~1", "v1"))

    def reqs():
        yield rp.ObjectsSizeRequest(repository=repo["repo"], revisions=[b"main~1"])
        yield rp.ObjectsSizeRequest(revisions=[b"v1"])
    assert stub.ObjectsSize(reqs(), timeout=10).size == want

    def bad():
        yield rp.ObjectsSizeRequest(repository=repo["repo"], revisions=[b"--output=/tmp/x"])
    assert_code(rpc_error(stub.ObjectsSize, bad(), timeout=10), INVALID,
                "validating revision: revision can't start with '-'")

    def second_repo():
        yield rp.ObjectsSizeRequest(repository=repo["repo"], revisions=[b"main"])
        yield rp.ObjectsSizeRequest(repository=repo["repo"], revisions=[b"main"])
    assert_code(rpc_error(stub.ObjectsSize, second_repo(), timeout=10), INVALID,
                "subsequent requests must not contain repository")

    def unknown():
        yield rp.ObjectsSizeRequest(repository=repo["repo"], revisions=[b"nope"])
    assert_code(rpc_error(stub.ObjectsSize, unknown(), timeout=10), NOT_FOUND,
                "revision not found")


def test_file_attributes(stub, repo):
    resp = stub.GetFileAttributes(rp.GetFileAttributesRequest(
        repository=repo["repo"], revision=b"main", attributes=["diff", "binary"],
        paths=["a.txt", "blob.bin", "README.md"]), timeout=10)
    got = [(i.path, i.attribute, i.value) for i in resp.attribute_infos]
    assert got == [("a.txt", "diff", "foo"), ("blob.bin", "diff", "unset"),
                   ("blob.bin", "binary", "set")]
    before = tree_snapshot(repo["path"])
    err = rpc_error(stub.GetFileAttributes, rp.GetFileAttributesRequest(
        repository=repo["repo"], revision=b"main", paths=["a.txt"]), timeout=10)
    assert_code(err, INVALID, "attributes are required")
    assert tree_snapshot(repo["path"]) == before


def test_info_attributes(stub, repo):
    info = os.path.join(repo["path"], "info", "attributes")
    os.makedirs(os.path.dirname(info), exist_ok=True)
    data = b"*.bin binary\n" * 20000
    with open(info, "wb") as f:
        f.write(data)
    got = b"".join(r.attributes for r in stub.GetInfoAttributes(
        rp.GetInfoAttributesRequest(repository=repo["repo"]), timeout=10))
    assert got == data
    os.remove(info)
    got = list(stub.GetInfoAttributes(rp.GetInfoAttributesRequest(repository=repo["repo"]),
                                      timeout=10))
    assert [r.attributes for r in got] == [b""]


def test_search_files_by_name(stub, repo):
    files = []
    for r in stub.SearchFilesByName(rp.SearchFilesByNameRequest(
            repository=repo["repo"], ref=b"main", query="."), timeout=10):
        files += r.files
    want = git("-C", repo["path"], "ls-tree", "--full-tree", "-r", "--name-only", "-z",
               "main").split(b"\0")[:-1]
    assert files == want
    files = []
    for r in stub.SearchFilesByName(rp.SearchFilesByNameRequest(
            repository=repo["repo"], ref=b"main", query=".", filter=r"\.txt$"), timeout=10):
        files += r.files
    assert files == [b"a.txt", b"new.txt"]
    err = rpc_error(lambda: list(stub.SearchFilesByName(rp.SearchFilesByNameRequest(
        repository=repo["repo"], ref=b"-main", query="."), timeout=10)))
    assert_code(err, INVALID, "invalid ref argument")


def test_search_files_by_content(stub, repo):
    matches, cur = [], b""
    for r in stub.SearchFilesByContent(rp.SearchFilesByContentRequest(
            repository=repo["repo"], ref=b"main~1", query="needle"), timeout=10):
        cur += r.match_data
        if r.end_of_match:
            matches.append(cur)
            cur = b""
    out = git("-C", repo["path"], "grep", "--ignore-case", "-I", "--line-number", "--null",
              "--before-context=2", "--after-context=2", "--perl-regexp", "-e", "needle",
              "main~1")
    want = [m + b"\n" if not m.endswith(b"\n") else m for m in out.split(b"--\n")]
    assert matches == want
    assert len(matches) == 2  # README.md and a.txt; blob.bin is binary


def _raw(stub, repo, frm, to):
    got = []
    for r in stub.GetRawChanges(rp.GetRawChangesRequest(
            repository=repo["repo"], from_revision=frm, to_revision=to), timeout=10):
        for c in r.raw_changes:
            got.append((rp.GetRawChangesResponse.RawChange.Operation.Name(c.operation),
                        c.old_mode, c.new_mode, c.blob_id, c.size, c.old_path_bytes,
                        c.new_path_bytes))
    return got


def test_raw_changes(stub, repo):
    got = _raw(stub, repo, repo["c1"], repo["c2"])
    out = git("-C", repo["path"], "diff", "--raw", "--no-abbrev", "-z", repo["c1"], repo["c2"])
    parts = out.split(b"\0")
    want = []
    ops = {"A": "ADDED", "D": "DELETED", "M": "MODIFIED"}
    for meta, path in zip(parts[0::2], parts[1::2]):
        sm, dm, ss, ds, st = meta[1:].decode().split(" ")
        blob = ss if ds == ZERO else ds
        size = int(git("-C", repo["path"], "cat-file", "-s", blob))
        want.append((ops[st], int(sm, 8), int(dm, 8), blob, size,
                     b"" if st == "A" else path, b"" if st == "D" else path))
    assert got == want
    assert _raw(stub, repo, repo["c1"], ZERO) == []
    err = rpc_error(lambda: _raw(stub, repo, "-x", repo["c2"]))
    assert_code(err, INVALID, "invalid 'from' revision: \"-x\"")


def _bundle(chunks, tmp):
    path = os.path.join(tmp, "b.bundle")
    with open(path, "wb") as f:
        for c in chunks:
            f.write(c.data)
    return path


def test_create_bundle(gitaly, stub, repo, tmp_path):
    path = _bundle(stub.CreateBundle(rp.CreateBundleRequest(repository=repo["repo"]),
                                     timeout=30), str(tmp_path))
    git("-C", repo["path"], "bundle", "verify", "-q", path)
    heads = sorted(l for l in git("bundle", "list-heads", path).decode().splitlines()
                   if not l.endswith(" HEAD"))
    refs = sorted(git("-C", repo["path"], "for-each-ref",
                      "--format=%(objectname) %(refname)").decode().splitlines())
    assert heads == refs

    def reqs():
        yield rp.CreateBundleFromRefListRequest(repository=repo["repo"],
                                                patterns=[b"refs/tags/v1"])
        yield rp.CreateBundleFromRefListRequest(patterns=[b"refs/heads/missing"])
    path = _bundle(stub.CreateBundleFromRefList(reqs(), timeout=30), str(tmp_path))
    assert git("bundle", "list-heads", path).decode().split() == [repo["c1"], "refs/tags/v1"]

    make_repo(gitaly.path("group/empty.git"))
    err = rpc_error(lambda: list(stub.CreateBundle(rp.CreateBundleRequest(
        repository=gitaly.repo("group/empty.git")), timeout=10)))
    assert_code(err, PRECONDITION, "create bundle: refusing to create empty bundle")


def _archive(stub, repo, **kw):
    return b"".join(r.data for r in stub.GetArchive(rp.GetArchiveRequest(
        repository=repo["repo"], commit_id="main", prefix="proj", **kw), timeout=30))


def test_get_archive(stub, repo):
    want = {}
    for line in git("-C", repo["path"], "ls-tree", "-r", "-z", "main").split(b"\0")[:-1]:
        meta, name = line.split(b"\t", 1)
        oid = meta.split()[2].decode()
        want["proj/" + name.decode()] = git("-C", repo["path"], "cat-file", "blob", oid)
    for fmt, mode in ((rp.GetArchiveRequest.TAR, "r:"), (rp.GetArchiveRequest.TAR_GZ, "r:gz"),
                      (rp.GetArchiveRequest.TAR_BZ2, "r:bz2")):
        data = _archive(stub, repo, format=fmt)
        with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as t:
            got = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
        assert got == want
    data = _archive(stub, repo, format=rp.GetArchiveRequest.ZIP)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        got = {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
    assert got == want
    # The same bytes git itself produces for a plain tar.
    assert _archive(stub, repo, format=rp.GetArchiveRequest.TAR) == git(
        "-C", repo["path"], "archive", "--format=tar", "--prefix=proj/", "main", "--", ".")

    before = tree_snapshot(repo["path"])
    err = rpc_error(_archive, stub, repo, format=rp.GetArchiveRequest.TAR, path=b"../../x")
    assert_code(err, INVALID, "relative path escapes root directory")
    err = rpc_error(_archive, stub, repo, format=rp.GetArchiveRequest.TAR, path=b"missing")
    assert_code(err, PRECONDITION, "path doesn't exist")
    err = rpc_error(lambda: list(stub.GetArchive(rp.GetArchiveRequest(
        repository=repo["repo"], commit_id="--remote=x", format=rp.GetArchiveRequest.TAR),
        timeout=10)))
    assert_code(err, INVALID, "invalid commitId: revision can't start with '-'")
    assert tree_snapshot(repo["path"]) == before


def test_get_snapshot(stub, repo, tmp_path):
    data = b"".join(r.data for r in stub.GetSnapshot(
        rp.GetSnapshotRequest(repository=repo["repo"]), timeout=30))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        names = sorted(m.name.rstrip("/") for m in t.getmembers())
        t.extractall(str(tmp_path / "r"))
    assert "config" not in names and "HEAD" in names
    assert any(n.startswith("objects/") for n in names)
    restored = str(tmp_path / "r")
    git("init", "-q", "--bare", restored)
    git("-C", restored, "fsck", "--no-progress", "--no-dangling")
    assert git("-C", restored, "for-each-ref") == git("-C", repo["path"], "for-each-ref")


def test_find_license(gitaly, stub):
    rel = "group/licensed.git"
    path = gitaly.path(rel)
    make_repo(path)
    assert stub.FindLicense(rp.FindLicenseRequest(repository=gitaly.repo(rel)),
                            timeout=10) == rp.FindLicenseResponse()
    with open("/usr/share/common-licenses/GPL-3", "rb") as f:
        gpl = f.read()
    commit(path, {"COPYING": gpl, "README.md": b"hi\n"}, "c", ref="refs/heads/main")
    resp = stub.FindLicense(rp.FindLicenseRequest(repository=gitaly.repo(rel)), timeout=10)
    assert (resp.license_short_name, resp.license_name, resp.license_nickname,
            resp.license_path) == ("gpl-3.0", "GNU General Public License v3.0 only",
                                   "GNU GPLv3", "COPYING")
    err = rpc_error(stub.FindLicense, rp.FindLicenseRequest(
        repository=gitaly.repo("../escape.git")), timeout=10)
    assert_code(err, INVALID)


def test_raw_changes_chunked(gitaly, stub):
    """12000 added files: the changes arrive in several messages, each
    holding below 1 MiB of changes (upstream's chunker counts the changes'
    own sizes, not the framing), in git's order."""
    rel = "group/many.git"
    path = gitaly.path(rel)
    make_repo(path)
    blob = git("-C", path, "hash-object", "-w", "--stdin", input=b"same\n").decode().strip()
    names = ["%s-%05d.txt" % ("n" * 80, i) for i in range(12000)]
    tree = git("-C", path, "mktree", input="".join(
        "100644 blob %s\t%s\n" % (blob, n) for n in names).encode()).decode().strip()
    c = git("-C", path, "commit-tree", tree, "-m", "many").decode().strip()
    sizes, got = [], []
    for r in stub.GetRawChanges(rp.GetRawChangesRequest(
            repository=gitaly.repo(rel), from_revision=ZERO, to_revision=c), timeout=60):
        sizes.append(sum(ch.ByteSize() for ch in r.raw_changes))
        got += [ch.new_path_bytes.decode() for ch in r.raw_changes]
        assert all(ch.blob_id == blob and ch.size == 5 for ch in r.raw_changes)
    assert got == sorted(names)
    assert len(sizes) >= 2
    assert max(sizes) < 1024 * 1024
    assert sizes[0] + len(names[0]) + 100 > 1024 * 1024  # the first one was full
