"""DiffService scenarios over the wire: a repository generated with git
(renames, binary files, mode and type changes, a submodule entry, symlinks,
non-UTF-8 and quoted paths, files without a trailing newline, a large file,
many files, a merge), every answer compared with what the git CLI says about
the same question; limits and chunking; quarantined objects; bad input with
upstream's codes and messages.

Skipped while the DiffService is not registered in src/service/service.c."""

import hashlib
import os
import shutil
import subprocess

import grpc
import pytest

import diff_pb2 as dp
import diff_pb2_grpc
import shared_pb2
from conftest import assert_code, git, rpc_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
INTERNAL = grpc.StatusCode.INTERNAL
FAILED = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND

SETUP = r"""
set -e
w=$1
git init -q --initial-branch=main "$w"; cd "$w"
seq 1 20 > a.txt; printf 'a b\n c\n' > ws.txt; printf '#!/bin/sh\n' > mode.sh
seq 1 50 > old.txt; printf 'keep\n' > gone.txt; printf '\000\001\002bin' > bin.dat
ln -s a.txt link; printf 'plain\n' > type.txt; mkdir -p 'dir/sp ace b'
echo x > 'dir/sp ace b/x.txt'; printf 'caf\n' > "$(printf 'caf\351.txt')"
printf 'tab\n' > "$(printf 'tab\there')"; printf 'no eol' > noeol.txt; printf 'q\n' > 'q"uo\te'
git add -A; git commit -qm one; git tag c1
seq 1 20 | sed 's/^5$/five/' > a.txt; echo 21 >> a.txt; printf 'a  b\n c\n' > ws.txt
chmod +x mode.sh; seq 1 50 | sed 's/^10$/ten/' > new.txt; rm old.txt gone.txt
printf '\000\001\003bin2' > bin.dat; rm type.txt; ln -s a.txt type.txt
echo y >> 'dir/sp ace b/x.txt'; printf 'caf2\n' > "$(printf 'caf\351.txt')"
printf 'no eol changed' > noeol.txt; printf 'tab2\n' > "$(printf 'tab\there')"
printf 'q2\n' > 'q"uo\te'; seq 1 20000 | sed 's/^/line /' > large.txt; ln -sf new.txt link
git add -A; git update-index --add --cacheinfo 160000,1111111111111111111111111111111111111111,sub
git commit -qm two; git tag c2
for i in $(seq 1 30); do seq 1 100 > many$i.txt; done; git add -A; git commit -qm three; git tag c3
git checkout -q -b side c2; echo side > side.txt; echo side >> a.txt; git add -A; git commit -qm side
git checkout -q main; git merge -q --no-ff --no-commit side; echo merged >> a.txt; git add a.txt
git commit -qm merge; git tag merge
"""


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(ch):
    s = diff_pb2_grpc.DiffServiceStub(ch)
    # Until src/service/service.c lists the DiffService, the server does not
    # know it: skip rather than fail.
    try:
        s.GetPatchID(dp.GetPatchIDRequest(), timeout=10)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("DiffService not registered in this build")
    return s


@pytest.fixture(scope="module")
def repo(gitaly):
    """(Repository message, path, {tag: oid}) of the generated repository."""
    rel = "@hashed/di/ff/%s.git" % hashlib.sha256(b"diff").hexdigest()
    path = gitaly.path(rel)
    work = path + ".work"
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null",
               GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.com",
               GIT_COMMITTER_NAME="C", GIT_COMMITTER_EMAIL="c@example.com",
               GIT_AUTHOR_DATE="1700000000 +0000", GIT_COMMITTER_DATE="1700000000 +0000")
    subprocess.run(["sh", "-c", SETUP, "sh", work], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    git("clone", "-q", "--bare", work, path)
    shutil.rmtree(work)
    oids = {t: git("-C", path, "rev-parse", t).decode().strip()
            for t in ("c1", "c2", "c3", "merge")}
    return gitaly.repo(rel), path, oids


def gitc(path, *args, input=None):
    return git("--git-dir=" + path, *args, input=input)


# ---------------------------------------------------------------- helpers

def files_of(responses):
    """Reassembles CommitDiff responses into (first message, patch bytes)."""
    files, cur = [], None
    for r in responses:
        assert len(r.raw_patch_data) <= 5120
        if cur is None:
            cur = [r, bytearray()]
        else:
            assert r.from_path == b"" and r.from_id == "" and r.old_mode == 0
        cur[1] += r.raw_patch_data
        if r.end_of_patch:
            files.append((cur[0], bytes(cur[1])))
            cur = None
    assert cur is None
    return files


def raw_records(path, *args):
    out = gitc(path, "diff", "--raw", "-z", "--no-abbrev", *args)
    parts = out.split(b"\0")
    recs, i = [], 0
    while i < len(parts) and parts[i].startswith(b":"):
        om, nm, fid, tid, st = parts[i][1:].decode().split(" ")
        frm = to = parts[i + 1]
        i += 2
        if st[0] in "RC":
            to = parts[i]
            i += 1
        recs.append((int(om, 8), int(nm, 8), fid, tid, st[0], frm, to))
    return recs


def sections(text):
    """From each `diff --git` section: the lines from the first hunk header
    (or "Binary files") to the end of the section."""
    out = []
    for sec in text.split(b"\ndiff --git ")[0:]:
        lines = sec.split(b"\n")
        start = next((i for i, l in enumerate(lines)
                      if l.startswith(b"@@") or l.startswith(b"Binary")), len(lines))
        out.append(b"\n".join(lines[start:]))
    # Every section but the last lost its final newline to the split.
    return [s + b"\n" if i + 1 < len(out) and s else s for i, s in enumerate(out)]


# ---------------------------------------------------------------- CommitDiff

@pytest.mark.parametrize("left,right", [("c1", "c2"), ("c2", "c1"), ("c1", "merge")])
def test_commit_diff_matches_git(stub, repo, left, right):
    msg, path, oids = repo
    resp = list(stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=oids[left], right_commit_id=oids[right]), timeout=30))
    files = files_of(resp)
    recs = raw_records(path, "--find-renames=30%", oids[left], oids[right])
    i = 0
    for om, nm, fid, tid, st, frm, to in recs:
        one = gitc(path, "diff", "--full-index", "--find-renames=30%", oids[left], oids[right],
                   "--", b":(literal)" + frm, b":(literal)" + to)
        secs = sections(one)
        assert len(secs) == (2 if st == "T" else 1)
        for k, want in enumerate(secs):
            head, patch = files[i]
            i += 1
            assert (head.from_path, head.to_path) == (frm, to)
            if st == "T":
                assert (head.old_mode, head.new_mode) == ((om, 0) if k == 0 else (0, nm))
            else:
                assert (head.from_id, head.to_id, head.old_mode, head.new_mode) == (fid, tid, om, nm)
            assert head.binary == want.startswith(b"Binary")
            assert patch == want, frm
    assert i == len(files)
    names = {f[0].to_path for f in files}
    # The non-UTF-8 path travels as bytes.
    assert "café.txt".encode("latin-1") in names
    if left == "c1" and right == "c2":
        assert {b"tab\there", b'q"uo\\te', b"sub", b"link", b"type.txt"} <= names


def test_commit_diff_chunking_and_limits(stub, repo):
    msg, path, oids = repo
    resp = list(stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c2"],
        paths=[b"large.txt"]), timeout=30))
    assert len(resp) > 2
    assert resp[0].to_path == b"large.txt" and not resp[0].end_of_patch
    assert len(resp[0].raw_patch_data) == 5120 and resp[-1].end_of_patch

    req = dp.CommitDiffRequest(repository=msg, left_commit_id=oids["c2"],
                               right_commit_id=oids["c3"], enforce_limits=True, max_files=10,
                               max_lines=100000, max_bytes=10000000, max_patch_bytes=100000)
    files = files_of(stub.CommitDiff(req, timeout=30))
    assert len(files) == 11 and files[10][0].overflow_marker and files[10][0].from_path == b""

    req.collect_all_paths = True
    files = files_of(stub.CommitDiff(req, timeout=30))
    assert len(files) == 31 and all(f[0].overflow_marker for f in files[10:])
    assert all(f[1] == b"" for f in files[10:]) and files[9][1] != b""

    req = dp.CommitDiffRequest(repository=msg, left_commit_id=oids["c2"],
                               right_commit_id=oids["c3"], collapse_diffs=True, safe_max_files=4,
                               safe_max_lines=100000, safe_max_bytes=10000000)
    files = files_of(stub.CommitDiff(req, timeout=30))
    assert [f[0].collapsed for f in files[:6]] == [False] * 4 + [True] * 2
    assert files[5][1] == b""

    req = dp.CommitDiffRequest(repository=msg, left_commit_id=oids["c2"],
                               right_commit_id=oids["c3"], enforce_limits=True, max_files=100,
                               max_lines=100000, max_bytes=10000000, max_patch_bytes=50,
                               max_patch_bytes_for_file_extension={".txt": 100000})
    files = files_of(stub.CommitDiff(req, timeout=30))
    assert not files[0][0].too_large and files[0][1]
    assert files[-1][0].to_path == b"sub" and files[-1][0].too_large


def test_commit_diff_whitespace_and_word_diff(stub, repo):
    msg, path, oids = repo
    files = files_of(stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c2"], paths=[b"ws.txt"],
        whitespace_changes=dp.CommitDiffRequest.WHITESPACE_CHANGES_IGNORE_ALL), timeout=30))
    assert len(files) == 1 and files[0][1] == b""
    files = files_of(stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c2"], paths=[b"a.txt"],
        diff_mode=dp.CommitDiffRequest.WORDDIFF), timeout=30))
    want = sections(gitc(path, "diff", "--word-diff=porcelain", oids["c1"], oids["c2"], "--",
                         "a.txt"))
    assert files[0][1] == want[0] and b"\n~\n" in files[0][1]


# ---------------------------------------------------------------- others

def test_commit_delta(stub, repo):
    msg, path, oids = repo
    deltas = [d for r in stub.CommitDelta(dp.CommitDeltaRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c3"]), timeout=30)
        for d in r.deltas]
    want = []
    for om, nm, fid, tid, st, frm, to in raw_records(path, "--find-renames", oids["c1"],
                                                     oids["c3"]):
        if st == "T":
            want.append((frm, to, fid, "0" * 40, om, 0))
            want.append((frm, to, "0" * 40, tid, 0, nm))
        else:
            want.append((frm, to, fid, tid, om, nm))
    got = [(d.from_path, d.to_path, d.from_id, d.to_id, d.old_mode, d.new_mode) for d in deltas]
    assert got == want


def test_raw_diff_and_patch(stub, repo):
    msg, path, oids = repo
    for method, want in (
            (stub.RawDiff, gitc(path, "diff", "--full-index", oids["c1"], oids["c3"])),
            (stub.RawPatch, gitc(path, "format-patch", "--stdout", "--signature", "GitLab",
                                 "%s..%s" % (oids["c1"], oids["c3"])))):
        req = (dp.RawDiffRequest if method == stub.RawDiff else dp.RawPatchRequest)(
            repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c3"])
        chunks = [r.data for r in method(req, timeout=30)]
        assert len(chunks) > 1 and all(len(c) == 128 * 1024 for c in chunks[:-1])
        assert b"".join(chunks) == want


def test_diff_stats(stub, repo):
    msg, path, oids = repo
    stats = [s for r in stub.DiffStats(dp.DiffStatsRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c3"]), timeout=30)
        for s in r.stats]
    parts = gitc(path, "diff", "--numstat", "-z", oids["c1"], oids["c3"]).split(b"\0")
    want, i = [], 0
    while i < len(parts) - 1:
        a, d, p = parts[i].split(b"\t", 2)
        num = lambda x: 0 if x == b"-" else int(x)  # noqa: E731
        if p == b"":
            want.append((num(a), num(d), parts[i + 1], parts[i + 2]))
            i += 3
        else:
            want.append((num(a), num(d), b"", p))
            i += 1
    assert [(s.additions, s.deletions, s.old_path, s.path) for s in stats] == want


STATUS = {"A": dp.ChangedPaths.ADDED, "M": dp.ChangedPaths.MODIFIED,
          "D": dp.ChangedPaths.DELETED, "T": dp.ChangedPaths.TYPE_CHANGE,
          "C": dp.ChangedPaths.COPIED}


def diff_tree(path, *args):
    out = gitc(path, "diff-tree", "-z", "-r", "--no-renames", "--no-commit-id",
               "--diff-filter=AMDTC", *args).split(b"\0")
    want, i = [], 0
    while i < len(out) - 1:
        head = out[i]
        if not head.startswith(b":"):
            i += 1
            continue
        n = len(head) - len(head.lstrip(b":"))
        fields = head.lstrip(b":").decode().split(" ")
        for k in range(n):
            want.append((out[i + 1], STATUS[fields[-1][k]], int(fields[k], 8), int(fields[n], 8)))
        i += 2
    return want


def test_find_changed_paths(stub, repo):
    msg, path, oids = repo
    R = dp.FindChangedPathsRequest.Request

    def call(requests, mode=0):
        return [(p.path, p.status, p.old_mode, p.new_mode)
                for r in stub.FindChangedPaths(dp.FindChangedPathsRequest(
                    repository=msg, requests=requests, merge_commit_diff_mode=mode), timeout=30)
                for p in r.paths]

    got = call([R(commit_request=R.CommitRequest(commit_revision="c2")),
                R(tree_request=R.TreeRequest(left_tree_revision="c2^{tree}",
                                             right_tree_revision=oids["c3"]))])
    assert got == diff_tree(path, oids["c2"]) + diff_tree(path, oids["c2"], oids["c3"])
    assert call([R(commit_request=R.CommitRequest(commit_revision="merge"))], 2) == \
        diff_tree(path, "-c", oids["merge"])
    assert call([R(commit_request=R.CommitRequest(commit_revision="merge"))], 1) == \
        diff_tree(path, "-m", oids["merge"])

    err = rpc_error(call, [R(commit_request=R.CommitRequest(commit_revision="nope"))])
    assert_code(err, NOT_FOUND, 'resolving commit: revision can not be found: "nope"')
    err = rpc_error(call, [R(tree_request=R.TreeRequest(left_tree_revision="",
                                                        right_tree_revision="c3"))])
    assert_code(err, INVALID, "resolving left tree: revision cannot be empty")


def test_patch_id(stub, repo):
    msg, path, oids = repo
    want = git("patch-id", "--stable",
               input=gitc(path, "diff", "--full-index", oids["c1"], oids["c2"])).split()[0]
    got = stub.GetPatchID(dp.GetPatchIDRequest(repository=msg, old_revision=b"c1",
                                               new_revision=b"c2"), timeout=30)
    assert got.patch_id == want.decode()
    err = rpc_error(stub.GetPatchID, dp.GetPatchIDRequest(
        repository=msg, old_revision=b"c1", new_revision=b"c1"), timeout=30)
    assert_code(err, FAILED, "no difference between old and new revision")


def test_quarantine(gitaly, stub, repo):
    """A commit only in a quarantine directory is seen through it only."""
    msg, path, oids = repo
    quarantine = os.path.join(path, "objects", "incoming-q1")
    os.makedirs(quarantine)
    env = {"GIT_OBJECT_DIRECTORY": quarantine,
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(path, "objects")}
    blob = git("--git-dir=" + path, "hash-object", "-w", "--stdin", input=b"quarantined\n",
               env=env).decode().strip()
    tree = git("--git-dir=" + path, "mktree", input=("100644 blob %s\tq.txt\n" % blob).encode(),
               env=env).decode().strip()
    new = git("--git-dir=" + path, "commit-tree", tree, "-p", oids["c1"], "-m", "q",
              env=env).decode().strip()
    q = shared_pb2.Repository()
    q.CopyFrom(msg)
    q.git_object_directory = "objects/incoming-q1"
    q.git_alternate_object_directories.append("objects")
    data = b"".join(r.data for r in stub.RawDiff(dp.RawDiffRequest(
        repository=q, left_commit_id=oids["c1"], right_commit_id=new), timeout=30))
    assert b"+quarantined" in data
    err = rpc_error(lambda: list(stub.RawDiff(dp.RawDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=new), timeout=30)))
    assert_code(err, INTERNAL, "exit status 128")


def test_bad_input(stub, repo):
    msg, path, oids = repo

    def diff(**kw):
        return list(stub.CommitDiff(dp.CommitDiffRequest(**kw), timeout=30))

    assert_code(rpc_error(diff, left_commit_id="a", right_commit_id="b"), INVALID,
                "repository not set")
    assert_code(rpc_error(diff, repository=msg, right_commit_id="b"), INVALID,
                "empty LeftCommitId")
    assert_code(rpc_error(diff, repository=msg, left_commit_id="a"), INVALID,
                "empty RightCommitId")
    assert_code(rpc_error(diff, repository=msg, left_commit_id="--output=/tmp/x",
                          right_commit_id="c2"), INTERNAL,
                "cmd: positional arg \"--output=/tmp/x\" cannot start with dash '-': "
                "invalid argument")
    assert_code(rpc_error(diff, repository=msg, left_commit_id="c1",
                          right_commit_id="0" * 40), FAILED, "exit status 128")
    missing = shared_pb2.Repository(storage_name="default", relative_path="nope.git")
    assert rpc_error(diff, repository=missing, left_commit_id="a",
                     right_commit_id="b").code() == NOT_FOUND
    err = rpc_error(lambda: list(stub.DiffStats(dp.DiffStatsRequest(
        repository=msg, left_commit_id="c1", right_commit_id="nope"), timeout=30)))
    assert_code(err, FAILED, "exit status 128")
    err = rpc_error(stub.GetPatchID, dp.GetPatchIDRequest(
        repository=msg, old_revision=b"-c1", new_revision=b"c2"), timeout=30)
    assert_code(err, INTERNAL, "spawning diff: positional arg \"-c1\" cannot start with "
                "dash '-': invalid argument")
    assert not os.path.exists("/tmp/x")


def test_cancel_and_deadline_leave_no_git(gitaly, stub, repo):
    """A client going away mid-stream, or a deadline, ends the git child."""
    import time

    msg, path, oids = repo
    stream = stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c2"],
        paths=[b"large.txt"]), timeout=30)
    first = next(stream)
    assert first.to_path == b"large.txt"
    stream.cancel()
    deadline = time.time() + 5
    while gitaly.descendants() and time.time() < deadline:
        time.sleep(0.05)
    assert gitaly.descendants() == []
    # A deadline too short for the answer: DeadlineExceeded, no git left.
    err = rpc_error(lambda: list(stub.RawDiff(dp.RawDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c3"]),
        timeout=0.001)))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.time() + 5
    while gitaly.descendants() and time.time() < deadline:
        time.sleep(0.05)
    assert gitaly.descendants() == []


def test_corrupt_object_is_an_error_not_a_crash(gitaly, stub, repo):
    msg, path, oids = repo
    rel = "corrupt.git"
    cpath = gitaly.path(rel)
    shutil.copytree(path, cpath)
    blob = gitc(cpath, "rev-parse", "%s:large.txt" % oids["c2"]).decode().strip()
    obj = os.path.join(cpath, "objects", blob[:2], blob[2:])
    if not os.path.exists(obj):
        pytest.skip("blob is packed")
    os.chmod(obj, 0o644)
    with open(obj, "wb") as f:
        f.write(b"\x78\x9c garbage, not zlib")
    cmsg = gitaly.repo(rel)
    for call in (
            lambda: files_of(stub.CommitDiff(dp.CommitDiffRequest(
                repository=cmsg, left_commit_id=oids["c1"], right_commit_id=oids["c2"]),
                timeout=30)),
            lambda: list(stub.RawDiff(dp.RawDiffRequest(
                repository=cmsg, left_commit_id=oids["c1"], right_commit_id=oids["c2"]),
                timeout=30)),
            lambda: list(stub.DiffStats(dp.DiffStatsRequest(
                repository=cmsg, left_commit_id=oids["c1"], right_commit_id=oids["c2"]),
                timeout=30)),
            lambda: stub.GetPatchID(dp.GetPatchIDRequest(
                repository=cmsg, old_revision=b"c1", new_revision=b"c2"), timeout=30)):
        err = rpc_error(call)
        assert err.code() in (FAILED, INTERNAL), err
    # The server is still there, and the intact repository still answers.
    assert files_of(stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=oids["c1"], right_commit_id=oids["c2"]), timeout=30))


def test_sha256_repository(gitaly, stub):
    from conftest import git_supports_sha256
    if not git_supports_sha256():
        pytest.skip("git without sha256")
    rel = "sha256.git"
    path = gitaly.path(rel)
    work = path + ".work"
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null",
               GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.com",
               GIT_COMMITTER_NAME="C", GIT_COMMITTER_EMAIL="c@example.com")
    subprocess.run(["sh", "-c", "set -e; git init -q --object-format=sha256 \"$1\"; cd \"$1\";"
                    "printf 'plain\\n' > t; seq 1 5 > a; git add -A; git commit -qm one;"
                    "rm t; ln -s a t; seq 2 6 > a; git add -A; git commit -qm two",
                    "sh", work], env=env, check=True)
    git("clone", "-q", "--bare", work, path)
    shutil.rmtree(work)
    msg = gitaly.repo(rel)
    one, two = (gitc(path, "rev-parse", r).decode().strip() for r in ("HEAD~", "HEAD"))
    assert len(two) == 64
    files = files_of(stub.CommitDiff(dp.CommitDiffRequest(
        repository=msg, left_commit_id=one, right_commit_id=two), timeout=30))
    want = sections(gitc(path, "diff", "--full-index", one, two))
    assert [f[1] for f in files] == want
    assert [f[0].to_path for f in files] == [b"a", b"t", b"t"]
    assert files[1][0].to_id == "0" * 64 and files[2][0].from_id == "0" * 64
    assert len(files[0][0].from_id) == 64
    R = dp.FindChangedPathsRequest.Request
    got = [(p.path, p.status) for r in stub.FindChangedPaths(dp.FindChangedPathsRequest(
        repository=msg, requests=[R(commit_request=R.CommitRequest(commit_revision="HEAD"))]),
        timeout=30) for p in r.paths]
    assert got == [(b"a", dp.ChangedPaths.MODIFIED), (b"t", dp.ChangedPaths.TYPE_CHANGE)]
