"""Hostile and malformed requests: each gets upstream's code and message,
the server stays up, and nothing changes on disk (storage trees and a
repository outside the storages are snapshotted before and after)."""

import os

import grpc
import pytest

import repository_pb2 as rp
import server_pb2
import shared_pb2
from conftest import (assert_code, commit, git, make_history, make_repo, rpc_error,
                      tree_snapshot)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def world(gitaly):
    """A victim repository inside the default storage, one outside every
    storage, and symlinks in the storage that point outside."""
    victim = gitaly.path("victim.git")
    oids = make_history(victim)
    # a separate target for the NUL test, so that a failure there does not
    # cascade into the others
    nul_victim = gitaly.path("nulvictim.git")
    make_history(nul_victim)
    outside_dir = os.path.join(gitaly.base, "outside")
    os.makedirs(outside_dir)
    outside = os.path.join(outside_dir, "repo.git")
    make_repo(outside)
    commit(outside, {"secret": b"s\n"}, ref="refs/heads/main")
    os.symlink(outside, gitaly.path("link.git"))
    os.symlink(outside_dir, gitaly.path("dirlink"))
    return {"victim": victim, "nul_victim": nul_victim, "oids": oids, "outside": outside,
            "outside_dir": outside_dir}


@pytest.fixture
def unchanged(gitaly, world):
    """Asserts at the end of the test that no storage and nothing outside
    changed, and that the server still answers."""
    before = {n: tree_snapshot(p) for n, p in gitaly.storages.items()}
    before["outside"] = tree_snapshot(world["outside_dir"])
    yield
    after = {n: tree_snapshot(p) for n, p in gitaly.storages.items()}
    after["outside"] = tree_snapshot(world["outside_dir"])
    for name in before:
        added = set(after[name]) - set(before[name])
        removed = set(before[name]) - set(after[name])
        changed = {k for k in before[name] if k in after[name] and before[name][k] != after[name][k]}
        assert not (added or removed or changed), (name, added, removed, changed)
    with gitaly.channel() as ch:
        assert gitaly.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=5)


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(gitaly, ch):
    return gitaly.repo_stub(ch)


def raw(ch, method):
    return ch.unary_unary(method, request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)


@pytest.mark.parametrize("payload", [
    b"\xff\xff\xff\xff",                  # truncated varint tag
    b"\x0a\x05abc",                       # length beyond the end
    b"\x0a\x02\xff\xfe",                  # repository field that is not a message
    b"\x0f",                              # wire type 7 does not exist
])
def test_malformed_protobuf(gitaly, ch, unchanged, payload):
    for method in ("/gitaly.RepositoryService/RepositoryExists",
                   "/gitaly.RepositoryService/RemoveRepository"):
        e = rpc_error(raw(ch, method), payload, timeout=5)
        assert_code(e, grpc.StatusCode.INTERNAL)


def test_malformed_protobuf_in_stream(gitaly, ch, unchanged):
    call = ch.unary_stream("/gitaly.RepositoryService/GetConfig",
                           request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as ei:
        list(call(b"\x0a\x05abc", timeout=5))
    assert_code(ei.value, grpc.StatusCode.INTERNAL)


def test_empty_message_means_no_repository(gitaly, ch, unchanged):
    e = rpc_error(raw(ch, "/gitaly.RepositoryService/RemoveRepository"), b"", timeout=5)
    assert_code(e, INVALID, "repository not set")


def _repo_cases(gitaly):
    return [
        (None, INVALID, "repository not set"),
        (shared_pb2.Repository(), INVALID, "repository not set"),
        (shared_pb2.Repository(relative_path="victim.git"), INVALID, "storage name not set"),
        (shared_pb2.Repository(storage_name="nope", relative_path="victim.git"), INVALID,
         "storage name not found"),
        (shared_pb2.Repository(storage_name="default"), INVALID, "repository path not set"),
        (gitaly.repo("../outside/repo.git"), INVALID, "relative path escapes root directory"),
        (gitaly.repo("victim.git/../../outside/repo.git"), INVALID,
         "relative path escapes root directory"),
        (gitaly.repo("../st-other/x.git"), INVALID, "relative path escapes root directory"),
    ]


@pytest.mark.parametrize("idx", range(8))
def test_bad_repository_on_read(gitaly, stub, world, unchanged, idx):
    repo, code, msg = _repo_cases(gitaly)[idx]
    e = rpc_error(stub.HasLocalBranches, rp.HasLocalBranchesRequest(repository=repo),
                  timeout=5)
    assert_code(e, code, msg)
    e = rpc_error(stub.RepositorySize, rp.RepositorySizeRequest(repository=repo), timeout=5)
    assert_code(e, code, msg)


@pytest.mark.parametrize("idx", range(8))
def test_bad_repository_on_write(gitaly, stub, world, unchanged, idx):
    repo, code, msg = _repo_cases(gitaly)[idx]
    e = rpc_error(stub.RemoveRepository, rp.RemoveRepositoryRequest(repository=repo),
                  timeout=5)
    assert_code(e, code, msg)
    e = rpc_error(stub.CreateRepository, rp.CreateRepositoryRequest(repository=repo),
                  timeout=5)
    assert_code(e, code, msg)
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"refs/heads/main", revision=world["oids"]["b1"].encode()),
        timeout=5)
    assert_code(e, code, msg)


def test_absolute_path_stays_inside_storage(gitaly, stub, world, unchanged):
    # upstream joins an absolute relative_path under the storage root
    repo = gitaly.repo(world["outside"])
    r = stub.RepositoryExists(rp.RepositoryExistsRequest(repository=repo), timeout=5)
    assert r.exists is False
    e = rpc_error(stub.RemoveRepository, rp.RemoveRepositoryRequest(repository=repo), timeout=5)
    assert_code(e, NOT_FOUND)
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"refs/heads/main", revision=b"HEAD"), timeout=5)
    assert_code(e, NOT_FOUND, "repository not found")


@pytest.mark.parametrize("rel", ["link.git", "dirlink/repo.git"])
def test_symlink_out_of_storage(gitaly, stub, world, unchanged, rel):
    repo = gitaly.repo(rel)
    outside_main = git("-C", world["outside"], "rev-parse", "main")
    for call, req in [
        (stub.RemoveRepository, rp.RemoveRepositoryRequest(repository=repo)),
        (stub.WriteRef, rp.WriteRefRequest(repository=repo, ref=b"HEAD",
                                           revision=b"refs/heads/evil")),
        (stub.SetFullPath, rp.SetFullPathRequest(repository=repo, path="evil")),
        (stub.HasLocalBranches, rp.HasLocalBranchesRequest(repository=repo)),
    ]:
        e = rpc_error(call, req, timeout=5)
        assert_code(e, INVALID, contains="escapes root directory")
    # like any other escape, RepositoryExists passes the error through
    e = rpc_error(stub.RepositoryExists, rp.RepositoryExistsRequest(repository=repo), timeout=5)
    assert_code(e, INVALID, contains="escapes root directory")
    assert os.path.isdir(world["outside"])
    assert git("-C", world["outside"], "rev-parse", "main") == outside_main
    assert git("-C", world["outside"], "symbolic-ref", "HEAD").strip() == b"refs/heads/main"


def test_create_through_symlinked_dir(gitaly, stub, world, unchanged):
    e = rpc_error(stub.CreateRepository, rp.CreateRepositoryRequest(
        repository=gitaly.repo("dirlink/new.git")), timeout=5)
    assert_code(e, INVALID, contains="escapes root directory")
    assert not os.path.exists(os.path.join(world["outside_dir"], "new.git"))


def test_nul_in_relative_path(gitaly, stub, world, unchanged):
    # C strings would stop at the NUL and hit nulvictim.git: must not happen
    repo = gitaly.repo("nulvictim.git\0/../../outside/repo.git")
    e = rpc_error(stub.RemoveRepository, rp.RemoveRepositoryRequest(repository=repo), timeout=5)
    assert e.code() in (INVALID, grpc.StatusCode.INTERNAL, NOT_FOUND), e
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"HEAD", revision=b"refs/heads/feature"), timeout=5)
    assert e.code() in (INVALID, grpc.StatusCode.INTERNAL, NOT_FOUND), e
    assert os.path.isdir(world["nul_victim"])


def test_nul_in_ref_and_revision(gitaly, stub, world, unchanged):
    repo = gitaly.repo("victim.git")
    oids = world["oids"]
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"refs/heads/main\0junk", revision=oids["b1"].encode()), timeout=5)
    assert_code(e, INVALID, "invalid ref: revision can't contain NUL")
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"refs/heads/main", revision=oids["b1"].encode() + b"\0x"),
        timeout=5)
    assert_code(e, INVALID, "invalid revision: revision can't contain NUL")
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"refs/heads/main", revision=oids["b1"].encode(),
        old_revision=oids["a2"].encode() + b"\0"), timeout=5)
    assert_code(e, INVALID, "invalid OldRevision: revision can't contain NUL")


@pytest.mark.parametrize("rev", [b"--upload-pack=touch /tmp/pwned", b"-", b"--all"])
def test_revision_starting_with_dash(gitaly, stub, world, unchanged, rev):
    repo = gitaly.repo("victim.git")
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"refs/heads/main", revision=rev), timeout=5)
    assert_code(e, INVALID, "invalid revision: revision can't start with '-'")
    e = rpc_error(stub.WriteRef, rp.WriteRefRequest(
        repository=repo, ref=b"-refs/heads/x", revision=world["oids"]["a1"].encode()), timeout=5)
    assert_code(e, INVALID, "invalid ref: revision can't start with '-'")


def test_oversized_message(gitaly, ch, stub, world, unchanged):
    repo = gitaly.repo("victim.git")
    e = rpc_error(stub.SetFullPath, rp.SetFullPathRequest(
        repository=repo, path="x" * (5 * 1024 * 1024)), timeout=20)
    assert_code(e, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # a message just below 4 MiB passes the transport (and is then refused
    # by the handler as a path problem, or answered "does not exist")
    try:
        r = stub.RepositoryExists(rp.RepositoryExistsRequest(
            repository=gitaly.repo("z" * (4 * 1024 * 1024 - 4096))), timeout=20)
        assert r.exists is False
    except grpc.RpcError as e:
        assert e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, e


def test_many_bad_requests_keep_server_healthy(gitaly, ch, stub, unchanged):
    call = raw(ch, "/gitaly.RepositoryService/WriteRef")
    for i in range(200):
        try:
            call(bytes([i % 256]) * (i % 17 + 1), timeout=5)
        except grpc.RpcError as e:
            assert e.code() != grpc.StatusCode.UNAVAILABLE, e
    r = stub.RepositoryExists(rp.RepositoryExistsRequest(repository=gitaly.repo("victim.git")),
                              timeout=5)
    assert r.exists
