"""RepositoryService scenarios, every answer compared with what git (or the
filesystem) says about the same repository."""

import hashlib
import os
import re
import shutil
import subprocess

import grpc
import pytest

import repository_pb2 as rp
import shared_pb2
from conftest import (assert_code, commit, git, git_supports_sha256, make_history,
                      make_repo, rpc_error)

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(gitaly, ch):
    return gitaly.repo_stub(ch)


_n = [0]


@pytest.fixture
def rel():
    """A fresh relative path per test, hashed-storage style."""
    _n[0] += 1
    h = hashlib.sha256(str(_n[0]).encode()).hexdigest()
    return "@hashed/%s/%s/%s.git" % (h[:2], h[2:4], h)


@pytest.fixture
def history(gitaly, rel):
    oids = make_history(gitaly.path(rel))
    return rel, oids


# ---------------------------------------------------------------- create

def test_create_repository(gitaly, stub, rel):
    stub.CreateRepository(rp.CreateRepositoryRequest(repository=gitaly.repo(rel)), timeout=10)
    path = gitaly.path(rel)
    assert git("-C", path, "rev-parse", "--is-bare-repository").strip() == b"true"
    head = git("-C", path, "symbolic-ref", "HEAD").strip()
    assert head in (b"refs/heads/main", b"refs/heads/master")
    assert git("-C", path, "rev-parse", "--show-object-format").strip() == b"sha1"
    # no temporary leftovers next to it
    parent = os.path.dirname(path)
    assert os.listdir(parent) == [os.path.basename(path)]
    assert stub.RepositoryExists(rp.RepositoryExistsRequest(repository=gitaly.repo(rel)),
                                 timeout=10).exists


def test_create_repository_default_branch(gitaly, stub, rel):
    stub.CreateRepository(rp.CreateRepositoryRequest(
        repository=gitaly.repo(rel), default_branch=b"trunk"), timeout=10)
    assert git("-C", gitaly.path(rel), "symbolic-ref", "HEAD").strip() == b"refs/heads/trunk"


def test_create_repository_sha256(gitaly, stub, rel):
    if not git_supports_sha256():
        pytest.skip("git without sha256")
    stub.CreateRepository(rp.CreateRepositoryRequest(
        repository=gitaly.repo(rel), object_format=shared_pb2.OBJECT_FORMAT_SHA256), timeout=10)
    path = gitaly.path(rel)
    assert git("-C", path, "rev-parse", "--show-object-format").strip() == b"sha256"
    r = stub.ObjectFormat(rp.ObjectFormatRequest(repository=gitaly.repo(rel)), timeout=10)
    assert r.format == shared_pb2.OBJECT_FORMAT_SHA256


def test_create_repository_bad_object_format(gitaly, stub, rel):
    e = rpc_error(stub.CreateRepository, rp.CreateRepositoryRequest(
        repository=gitaly.repo(rel), object_format=7), timeout=10)
    assert_code(e, INVALID)
    assert not os.path.exists(gitaly.path(rel))


def test_create_repository_already_exists(gitaly, stub, history):
    rel, oids = history
    before = git("-C", gitaly.path(rel), "show-ref")
    e = rpc_error(stub.CreateRepository,
                  rp.CreateRepositoryRequest(repository=gitaly.repo(rel)), timeout=10)
    assert_code(e, grpc.StatusCode.ALREADY_EXISTS, contains="repository exists already")
    assert git("-C", gitaly.path(rel), "show-ref") == before


def test_create_repository_on_second_storage(gitaly, stub, rel):
    stub.CreateRepository(rp.CreateRepositoryRequest(
        repository=gitaly.repo(rel, "other")), timeout=10)
    assert os.path.isdir(gitaly.path(rel, "other"))
    assert not os.path.exists(gitaly.path(rel, "default"))


# ---------------------------------------------------------------- exists / remove

def test_repository_exists(gitaly, stub, history, rel):
    assert stub.RepositoryExists(rp.RepositoryExistsRequest(repository=gitaly.repo(rel)),
                                 timeout=10).exists is True
    assert stub.RepositoryExists(rp.RepositoryExistsRequest(
        repository=gitaly.repo("does/not/exist.git")), timeout=10).exists is False
    # a directory that is not a git repository
    os.makedirs(gitaly.path("plain-dir"), exist_ok=True)
    assert stub.RepositoryExists(rp.RepositoryExistsRequest(
        repository=gitaly.repo("plain-dir")), timeout=10).exists is False
    e = rpc_error(stub.RepositoryExists, rp.RepositoryExistsRequest(
        repository=gitaly.repo(rel, "nope")), timeout=10)
    assert_code(e, INVALID, contains="storage name not found")


def test_remove_repository(gitaly, stub, history, rel):
    stub.RemoveRepository(rp.RemoveRepositoryRequest(repository=gitaly.repo(rel)), timeout=10)
    assert not os.path.exists(gitaly.path(rel))
    assert stub.RepositoryExists(rp.RepositoryExistsRequest(repository=gitaly.repo(rel)),
                                 timeout=10).exists is False
    e = rpc_error(stub.RemoveRepository, rp.RemoveRepositoryRequest(
        repository=gitaly.repo(rel)), timeout=10)
    assert_code(e, NOT_FOUND, contains="repository does not exist")


def test_not_found_repository(gitaly, stub):
    e = rpc_error(stub.HasLocalBranches, rp.HasLocalBranchesRequest(
        repository=gitaly.repo("missing/repo.git")), timeout=10)
    assert_code(e, NOT_FOUND, contains="repository not found")


def test_invalid_repository(gitaly, stub):
    p = gitaly.path("half.git")
    os.makedirs(os.path.join(p, "objects"), exist_ok=True)
    os.makedirs(os.path.join(p, "refs"), exist_ok=True)
    e = rpc_error(stub.HasLocalBranches, rp.HasLocalBranchesRequest(
        repository=gitaly.repo("half.git")), timeout=10)
    assert_code(e, grpc.StatusCode.FAILED_PRECONDITION,
                contains='repository not valid: "HEAD" does not exist')


# ---------------------------------------------------------------- refs

def test_write_ref_branch(gitaly, stub, history):
    rel, oids = history
    path = gitaly.path(rel)
    stub.WriteRef(rp.WriteRefRequest(repository=gitaly.repo(rel), ref=b"refs/heads/new",
                                     revision=oids["a1"].encode()), timeout=10)
    assert git("-C", path, "rev-parse", "refs/heads/new").decode().strip() == oids["a1"]
    # update with the right old value
    stub.WriteRef(rp.WriteRefRequest(repository=gitaly.repo(rel), ref=b"refs/heads/new",
                                     revision=oids["a2"].encode(),
                                     old_revision=oids["a1"].encode()), timeout=10)
    assert git("-C", path, "rev-parse", "refs/heads/new").decode().strip() == oids["a2"]
    # a stale old value must not move the ref
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=gitaly.repo(rel), ref=b"refs/heads/new", revision=oids["b1"].encode(),
        old_revision=oids["a1"].encode()), timeout=10)
    assert_code(e, grpc.StatusCode.INTERNAL)
    assert git("-C", path, "rev-parse", "refs/heads/new").decode().strip() == oids["a2"]
    # revisions are resolved: a branch name works as the new value
    stub.WriteRef(rp.WriteRefRequest(repository=gitaly.repo(rel), ref=b"refs/heads/new2",
                                     revision=b"refs/heads/feature"), timeout=10)
    assert git("-C", path, "rev-parse", "refs/heads/new2").decode().strip() == oids["b1"]
    # zero oid deletes
    stub.WriteRef(rp.WriteRefRequest(repository=gitaly.repo(rel), ref=b"refs/heads/new2",
                                     revision=b"0" * 40), timeout=10)
    assert git("-C", path, "show-ref", "--verify", "refs/heads/new2", check=False) == b""


def test_write_ref_create_only(gitaly, stub, history):
    rel, oids = history
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=gitaly.repo(rel), ref=b"refs/heads/main", revision=oids["b1"].encode(),
        old_revision=b"0" * 40), timeout=10)
    assert_code(e, grpc.StatusCode.INTERNAL)
    assert git("-C", gitaly.path(rel), "rev-parse", "main").decode().strip() == oids["a2"]


def test_write_ref_head(gitaly, stub, history):
    rel, oids = history
    stub.WriteRef(rp.WriteRefRequest(repository=gitaly.repo(rel), ref=b"HEAD",
                                     revision=b"refs/heads/feature"), timeout=10)
    assert git("-C", gitaly.path(rel), "symbolic-ref", "HEAD").strip() == b"refs/heads/feature"


def test_write_ref_missing_object(gitaly, stub, history):
    rel, oids = history
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=gitaly.repo(rel), ref=b"refs/heads/x", revision=b"1" * 40), timeout=10)
    assert_code(e, grpc.StatusCode.INTERNAL)
    assert git("-C", gitaly.path(rel), "show-ref", "--verify", "refs/heads/x",
               check=False) == b""


def test_write_ref_validation(gitaly, stub, history):
    rel, oids = history
    cases = [
        (b"heads/main", oids["a1"].encode(), "ref has to be a full reference"),
        (b"refs/heads/x", b"-delete", "invalid revision: revision can't start with '-'"),
        (b"refs/heads/a\0b", oids["a1"].encode(), "invalid ref: revision can't contain NUL"),
        (b"refs/heads/a b", oids["a1"].encode(),
         "invalid ref: revision can't contain whitespace"),
        (b"refs/heads/x", b"", "invalid revision: empty revision"),
    ]
    before = git("-C", gitaly.path(rel), "show-ref")
    for ref, rev, msg in cases:
        e = rpc_error(stub.WriteRef, rp.WriteRefRequest(repository=gitaly.repo(rel), ref=ref,
                                                        revision=rev), timeout=10)
        assert_code(e, INVALID, msg)
    assert git("-C", gitaly.path(rel), "show-ref") == before


def test_has_local_branches(gitaly, stub, history, rel):
    assert stub.HasLocalBranches(rp.HasLocalBranchesRequest(repository=gitaly.repo(rel)),
                                 timeout=10).value is True
    stub.CreateRepository(rp.CreateRepositoryRequest(
        repository=gitaly.repo(rel + "-empty")), timeout=10)
    assert stub.HasLocalBranches(rp.HasLocalBranchesRequest(
        repository=gitaly.repo(rel + "-empty")), timeout=10).value is False
    # a tag alone is not a branch
    p = gitaly.path(rel + "-tagonly")
    make_repo(p)
    c = commit(p, {"f": b"1"}, ref="refs/tags/t")
    assert c
    assert stub.HasLocalBranches(rp.HasLocalBranchesRequest(
        repository=gitaly.repo(rel + "-tagonly")), timeout=10).value is False


def test_object_format(gitaly, stub, history):
    rel, _ = history
    r = stub.ObjectFormat(rp.ObjectFormatRequest(repository=gitaly.repo(rel)), timeout=10)
    assert r.format == shared_pb2.OBJECT_FORMAT_SHA1


# ---------------------------------------------------------------- sizes

def _apparent_size(path):
    """Sum of the sizes of everything but directories (upstream's walk);
    `find -printf %s` is the independent measurement."""
    out = subprocess.run(["find", path, "!", "-type", "d", "-printf", "%s\n"],
                         stdout=subprocess.PIPE, check=True).stdout.split()
    return sum(int(x) for x in out)


def test_repository_size(gitaly, stub, history):
    rel, _ = history
    path = gitaly.path(rel)
    # add a big blob so that the KiB value is not trivially zero
    commit(path, {"big": os.urandom(300 * 1024)}, ref="refs/heads/big")
    r = stub.RepositorySize(rp.RepositorySizeRequest(repository=gitaly.repo(rel)), timeout=10)
    assert r.size == _apparent_size(path) // 1024
    assert r.size >= 300
    du = int(subprocess.run(["du", "-sk", "--apparent-size", path], stdout=subprocess.PIPE,
                            check=True).stdout.split()[0])
    assert abs(du - r.size) <= du * 0.2 + 64
    # clients name the object directory explicitly, as upstream requires
    e = rpc_error(stub.GetObjectDirectorySize, rp.GetObjectDirectorySizeRequest(
        repository=gitaly.repo(rel)), timeout=10)
    assert_code(e, INVALID, "object directory path is not set")
    repo = gitaly.repo(rel)
    repo.git_object_directory = "objects"
    o = stub.GetObjectDirectorySize(rp.GetObjectDirectorySizeRequest(repository=repo),
                                    timeout=10)
    assert o.size == _apparent_size(os.path.join(path, "objects")) // 1024
    assert 300 <= o.size <= r.size


def test_repository_info(gitaly, stub, history):
    rel, oids = history
    path = gitaly.path(rel)
    r = stub.RepositoryInfo(rp.RepositoryInfoRequest(repository=gitaly.repo(rel)), timeout=10)
    assert r.size == _apparent_size(path)
    loose_refs = subprocess.run(["find", os.path.join(path, "refs"), "-type", "f"],
                                stdout=subprocess.PIPE, check=True).stdout.split()
    assert r.references.loose_count == len(loose_refs)
    assert r.references.packed_size == 0
    loose = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(path, "objects"))
             for f in fs if re.fullmatch(r"[0-9a-f]{2}", os.path.basename(d))]
    assert r.objects.size == sum(os.path.getsize(p) for p in loose)
    assert r.objects.recent_size == r.objects.size
    assert r.objects.stale_size == 0 and r.objects.keep_size == 0
    # after packing refs and objects
    git("-C", path, "pack-refs", "--all")
    git("-C", path, "repack", "-a", "-d", "-q")
    git("-C", path, "prune-packed")
    r = stub.RepositoryInfo(rp.RepositoryInfoRequest(repository=gitaly.repo(rel)), timeout=10)
    assert r.references.loose_count == 0
    assert r.references.packed_size == os.path.getsize(os.path.join(path, "packed-refs"))
    packs = [os.path.join(path, "objects", "pack", f)
             for f in os.listdir(os.path.join(path, "objects", "pack")) if f.endswith(".pack")]
    assert r.objects.size == sum(os.path.getsize(p) for p in packs)


# ---------------------------------------------------------------- config

def test_set_full_path_and_full_path(gitaly, stub, history):
    rel, _ = history
    stub.SetFullPath(rp.SetFullPathRequest(repository=gitaly.repo(rel), path="group/project"),
                     timeout=10)
    assert git("-C", gitaly.path(rel), "config", "gitlab.fullpath").strip() == b"group/project"
    r = stub.FullPath(rp.FullPathRequest(repository=gitaly.repo(rel)), timeout=10)
    assert r.path == "group/project"
    stub.SetFullPath(rp.SetFullPathRequest(repository=gitaly.repo(rel), path="a b/ü\"x"),
                     timeout=10)
    assert git("-C", gitaly.path(rel), "config", "gitlab.fullpath").decode().strip() == "a b/ü\"x"
    assert stub.FullPath(rp.FullPathRequest(repository=gitaly.repo(rel)),
                         timeout=10).path == "a b/ü\"x"
    e = rpc_error(stub.SetFullPath, rp.SetFullPathRequest(repository=gitaly.repo(rel), path=""),
                  timeout=10)
    assert_code(e, INVALID, "no path provided")


def test_full_path_unset(gitaly, stub, history):
    rel, _ = history
    e = rpc_error(stub.FullPath, rp.FullPathRequest(repository=gitaly.repo(rel)), timeout=10)
    assert_code(e, grpc.StatusCode.INTERNAL)


def test_get_config(gitaly, stub, history):
    rel, _ = history
    path = gitaly.path(rel)
    git("-C", path, "config", "custom.key", "value with spaces")
    with open(os.path.join(path, "config"), "rb") as f:
        want = f.read()
    data = b"".join(m.data for m in stub.GetConfig(
        rp.GetConfigRequest(repository=gitaly.repo(rel)), timeout=10))
    assert data == want


def test_get_config_large(gitaly, stub, history):
    rel, _ = history
    path = gitaly.path(rel)
    with open(os.path.join(path, "config"), "ab") as f:
        for i in range(6000):
            f.write(b"[section%d]\n\tkey = %s\n" % (i, b"v" * 40))
    with open(os.path.join(path, "config"), "rb") as f:
        want = f.read()
    assert len(want) > 256 * 1024
    msgs = list(stub.GetConfig(rp.GetConfigRequest(repository=gitaly.repo(rel)), timeout=10))
    assert b"".join(m.data for m in msgs) == want
    assert len(msgs) > 1 and max(len(m.data) for m in msgs) <= 128 * 1024


# ---------------------------------------------------------------- checksum

REFS_ALLOWED = re.compile(
    rb"HEAD|(refs/(heads|tags|keep-around|merge-requests|environments|notes)/)")


def expected_checksum(path):
    out = git("-C", path, "show-ref", "--head", check=False)
    s = 0
    for line in out.splitlines():
        if REFS_ALLOWED.search(line):
            s ^= int.from_bytes(hashlib.sha1(line).digest(), "big")
    if s == 0:
        return "0" * 40
    return s.to_bytes((s.bit_length() + 7) // 8, "big").hex()


def test_calculate_checksum(gitaly, stub, history):
    rel, oids = history
    path = gitaly.path(rel)
    git("-C", path, "update-ref", "refs/merge-requests/1/head", oids["b1"])
    git("-C", path, "update-ref", "refs/environments/prod", oids["a1"])
    r = stub.CalculateChecksum(rp.CalculateChecksumRequest(repository=gitaly.repo(rel)),
                               timeout=10)
    assert r.checksum == expected_checksum(path)
    # refs outside the allowed namespaces do not count
    git("-C", path, "update-ref", "refs/pipelines/1", oids["base"])
    assert stub.CalculateChecksum(rp.CalculateChecksumRequest(repository=gitaly.repo(rel)),
                                  timeout=10).checksum == r.checksum
    # moving a branch changes it
    git("-C", path, "update-ref", "refs/heads/feature", oids["a2"])
    r2 = stub.CalculateChecksum(rp.CalculateChecksumRequest(repository=gitaly.repo(rel)),
                                timeout=10)
    assert r2.checksum != r.checksum
    assert r2.checksum == expected_checksum(path)
    # packed refs give the same answer
    git("-C", path, "pack-refs", "--all")
    assert stub.CalculateChecksum(rp.CalculateChecksumRequest(repository=gitaly.repo(rel)),
                                  timeout=10).checksum == r2.checksum


def test_calculate_checksum_empty(gitaly, stub, rel):
    stub.CreateRepository(rp.CreateRepositoryRequest(repository=gitaly.repo(rel)), timeout=10)
    r = stub.CalculateChecksum(rp.CalculateChecksumRequest(repository=gitaly.repo(rel)),
                               timeout=10)
    assert r.checksum == "0" * 40


def test_calculate_checksum_broken_repo(gitaly, stub, history):
    rel, _ = history
    path = gitaly.path(rel)
    with open(os.path.join(path, "HEAD"), "w") as f:
        f.write("garbage\n")
    e = rpc_error(stub.CalculateChecksum,
                  rp.CalculateChecksumRequest(repository=gitaly.repo(rel)), timeout=10)
    assert_code(e, grpc.StatusCode.DATA_LOSS, contains="not a git repository")


# ---------------------------------------------------------------- merge base

def test_find_merge_base(gitaly, stub, history):
    rel, oids = history
    path = gitaly.path(rel)
    want = git("-C", path, "merge-base", "main", "feature").decode().strip()
    assert want == oids["base"]
    r = stub.FindMergeBase(rp.FindMergeBaseRequest(repository=gitaly.repo(rel),
                                                   revisions=[b"main", b"feature"]), timeout=10)
    assert r.base == want
    r = stub.FindMergeBase(rp.FindMergeBaseRequest(
        repository=gitaly.repo(rel), revisions=[oids["a2"].encode(), oids["a1"].encode()]),
        timeout=10)
    assert r.base == git("-C", path, "merge-base", oids["a2"], oids["a1"]).decode().strip()
    # unrelated history: empty base, not an error
    orphan = commit(path, {"o": b"o"}, "orphan", ref="refs/heads/orphan")
    r = stub.FindMergeBase(rp.FindMergeBaseRequest(
        repository=gitaly.repo(rel), revisions=[b"main", orphan.encode()]), timeout=10)
    assert r.base == ""
    # unknown revision: empty base too
    r = stub.FindMergeBase(rp.FindMergeBaseRequest(
        repository=gitaly.repo(rel), revisions=[b"main", b"no-such-branch"]), timeout=10)
    assert r.base == ""


def test_find_merge_base_needs_two(gitaly, stub, history):
    rel, _ = history
    e = rpc_error(stub.FindMergeBase, rp.FindMergeBaseRequest(
        repository=gitaly.repo(rel), revisions=[b"main"]), timeout=10)
    assert_code(e, INVALID, "at least 2 revisions are required")


def test_find_merge_base_option_injection(gitaly, stub, history):
    rel, _ = history
    path = gitaly.path(rel)
    before = git("-C", path, "show-ref")
    try:
        r = stub.FindMergeBase(rp.FindMergeBaseRequest(
            repository=gitaly.repo(rel), revisions=[b"--all", b"main"]), timeout=10)
        assert r.base == ""
    except grpc.RpcError as e:
        assert e.code() in (INVALID, grpc.StatusCode.INTERNAL)
    assert git("-C", path, "show-ref") == before


def test_concurrent_creates_of_same_repo(gitaly, stub, rel):
    import concurrent.futures
    req = rp.CreateRepositoryRequest(repository=gitaly.repo(rel))

    def one():
        try:
            stub.CreateRepository(req, timeout=20)
            return "ok"
        except grpc.RpcError as e:
            return e.code()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: one(), range(8)))
    assert results.count("ok") == 1, results
    # upstream answers AlreadyExists, or Internal when it loses the lock race
    assert all(r in ("ok", grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INTERNAL)
               for r in results), results
    assert git("-C", gitaly.path(rel), "rev-parse", "--is-bare-repository").strip() == b"true"
    shutil.rmtree(gitaly.path(rel))
