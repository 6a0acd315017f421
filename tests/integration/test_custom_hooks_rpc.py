"""RepositoryService SetCustomHooks/GetCustomHooks (and the deprecated
Restore/Backup twins): tar streams in and out, compared with the files on
disk and with what Python's tarfile reads back; bad archives change
nothing."""

import io
import os
import tarfile

import grpc
import pytest

import repository_pb2 as rp
from conftest import assert_code, make_repo, rpc_error


@pytest.fixture(scope="module")
def stub(gitaly):
    ch = gitaly.channel("unix")
    yield gitaly.repo_stub(ch)
    ch.close()


_n = [0]


@pytest.fixture
def rel(gitaly):
    _n[0] += 1
    r = "hooks/repo%d.git" % _n[0]
    make_repo(gitaly.path(r))
    return r


def make_tar(entries):
    """entries: list of (name, kind, content_or_target, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "link":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def chunks(repo, data, size=1000, cls=rp.SetCustomHooksRequest):
    yield cls(repository=repo)
    for i in range(0, len(data), size):
        yield cls(data=data[i:i + size])


HOOK = b"#!/bin/sh\necho 'custom hook says no' >&2\nexit 1\n"


def test_set_then_get_round_trip(gitaly, stub, rel):
    tar = make_tar([
        ("custom_hooks", "dir", None, 0o755),
        ("custom_hooks/pre-receive", "file", HOOK, 0o755),
        ("custom_hooks/update.d", "dir", None, 0o755),
        ("custom_hooks/update.d/one", "file", b"#!/bin/sh\nexit 0\n", 0o700),
        ("outside.txt", "file", b"not a hook", 0o644),
    ])
    stub.SetCustomHooks(chunks(gitaly.repo(rel), tar), timeout=10)
    hooks = os.path.join(gitaly.path(rel), "custom_hooks")
    with open(os.path.join(hooks, "pre-receive"), "rb") as f:
        assert f.read() == HOOK
    assert os.stat(os.path.join(hooks, "pre-receive")).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(hooks, "update.d", "one")).st_mode & 0o777 == 0o700
    # only custom_hooks/ is extracted; nothing else lands in the repository
    assert not os.path.exists(os.path.join(gitaly.path(rel), "outside.txt"))
    assert not os.path.exists(os.path.join(gitaly.path(rel), "custom_hooks.lock"))

    data = b"".join(m.data for m in stub.GetCustomHooks(
        rp.GetCustomHooksRequest(repository=gitaly.repo(rel)), timeout=10))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        names = sorted(t.getnames())
        assert names == ["custom_hooks", "custom_hooks/pre-receive", "custom_hooks/update.d",
                         "custom_hooks/update.d/one"]
        assert t.extractfile("custom_hooks/pre-receive").read() == HOOK
    backup = b"".join(m.data for m in stub.BackupCustomHooks(
        rp.BackupCustomHooksRequest(repository=gitaly.repo(rel)), timeout=10))
    assert backup == data


def test_replace_and_empty_archive(gitaly, stub, rel):
    first = make_tar([("custom_hooks/pre-receive", "file", HOOK, 0o755)])
    stub.RestoreCustomHooks(chunks(gitaly.repo(rel), first, cls=rp.RestoreCustomHooksRequest),
                            timeout=10)
    second = make_tar([("custom_hooks/post-receive", "file", b"#!/bin/sh\n", 0o755)])
    stub.SetCustomHooks(chunks(gitaly.repo(rel), second), timeout=10)
    hooks = os.path.join(gitaly.path(rel), "custom_hooks")
    assert sorted(os.listdir(hooks)) == ["post-receive"]
    # an empty upload replaces the hooks with an empty directory
    stub.SetCustomHooks(iter([rp.SetCustomHooksRequest(repository=gitaly.repo(rel))]), timeout=10)
    assert os.listdir(hooks) == []


def test_get_without_hooks_sends_nothing(gitaly, stub, rel):
    msgs = list(stub.GetCustomHooks(rp.GetCustomHooksRequest(repository=gitaly.repo(rel)),
                                    timeout=10))
    assert msgs == []


def test_symlinked_custom_hooks_refused(gitaly, stub, rel):
    tar = make_tar([("custom_hooks", "link", "/etc", 0o777)])
    err = rpc_error(stub.SetCustomHooks, chunks(gitaly.repo(rel), tar), timeout=10)
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT,
                contains="custom_hooks in the archive is not a directory")
    assert not os.path.lexists(os.path.join(gitaly.path(rel), "custom_hooks"))


def test_garbage_archive_changes_nothing(gitaly, stub, rel):
    good = make_tar([("custom_hooks/pre-receive", "file", HOOK, 0o755)])
    stub.SetCustomHooks(chunks(gitaly.repo(rel), good), timeout=10)
    err = rpc_error(stub.SetCustomHooks, chunks(gitaly.repo(rel), b"x" * 5000), timeout=10)
    assert_code(err, grpc.StatusCode.INTERNAL, contains="setting custom hooks")
    with open(os.path.join(gitaly.path(rel), "custom_hooks", "pre-receive"), "rb") as f:
        assert f.read() == HOOK
    tmp = os.path.join(gitaly.storages["default"], "+gitaly", "tmp")
    assert not [e for e in os.listdir(tmp) if e.startswith("custom-hooks-")]


def test_dotdot_members_do_not_escape(gitaly, stub, rel):
    tar = make_tar([("custom_hooks/../../escaped", "file", b"x", 0o644),
                    ("custom_hooks/ok", "file", b"y", 0o755)])
    try:
        stub.SetCustomHooks(chunks(gitaly.repo(rel), tar), timeout=10)
    except grpc.RpcError:
        pass
    parent = os.path.dirname(gitaly.path(rel))
    assert not os.path.exists(os.path.join(parent, "escaped"))
    assert not os.path.exists(os.path.join(gitaly.path(rel), "escaped"))


def test_bad_repository(gitaly, stub):
    err = rpc_error(stub.SetCustomHooks,
                    iter([rp.SetCustomHooksRequest(repository=gitaly.repo("missing.git"))]),
                    timeout=10)
    assert_code(err, grpc.StatusCode.NOT_FOUND)
    err = rpc_error(lambda: list(stub.GetCustomHooks(rp.GetCustomHooksRequest(), timeout=10)))
    assert_code(err, grpc.StatusCode.INVALID_ARGUMENT)
