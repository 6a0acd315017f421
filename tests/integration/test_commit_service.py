"""CommitService over the wire against a repository built with git at test
time (merges, a rename, a binary file, a symlink, a submodule entry, a
non-UTF-8 path and message, long bodies): each answer is compared with what
the git CLI says (rev-list, log, ls-tree, cat-file, merge-base), and the
wire-level behaviours are checked: 128 KiB blob chunks, 1 MiB commit
chunks, the GetTreeEntries cursor in the first message only, the bidi
CheckObjectsExist stream, quarantined objects, typed error details."""

import base64
import hashlib
import json
import os

import grpc
import pytest

import commit_pb2 as cp
import commit_pb2_grpc
import shared_pb2
import status_pb2
from conftest import assert_code, commit, git, make_repo, rpc_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(ch):
    s = commit_pb2_grpc.CommitServiceStub(ch)
    # The lead registers the service in src/service/service.c; until then
    # every call answers UNIMPLEMENTED and there is nothing to test here.
    try:
        s.FindCommit(cp.FindCommitRequest(repository=shared_pb2.Repository(
            storage_name="default", relative_path="nope.git"), revision=b"HEAD"))
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("CommitService is not registered in this build")
    return s


def sh(path, *args, **kw):
    return git("-C", path, *args, **kw)


def mkblob(path, data):
    return sh(path, "hash-object", "-w", "--stdin", input=data).decode().strip()


def mktree(path, entries):
    lines = "".join("%s %s %s\t" % (m, t, o) for m, t, o, _ in entries)
    body = b"".join(b"%s %s %s\t%s\n" % (m.encode(), t.encode(), o.encode(), n)
                    for m, t, o, n in entries)
    return sh(path, "mktree", input=body).decode().strip()


@pytest.fixture(scope="module")
def repo(gitaly):
    """A repository with history shapes and odd entries; returns (msg, path, oids)."""
    rel = "commits/%s.git" % hashlib.sha1(b"commit-service").hexdigest()
    path = gitaly.path(rel)
    make_repo(path)
    big = os.urandom(400 * 1024)
    leaf = mkblob(path, b"leaf\n")
    d = mktree(path, [("100644", "blob", leaf, b"leaf")])
    c = mktree(path, [("040000", "tree", d, b"d")])
    a = mktree(path, [("040000", "tree", c, b"b")])
    root = mktree(path, [
        ("040000", "tree", a, b"a"),
        ("100644", "blob", mkblob(path, big), b"big.bin"),
        ("100644", "blob", mkblob(path, b"\x00\x01binary"), b"bin.dat"),
        ("100644", "blob", mkblob(path, b"x"), b"caf\xe9"),
        ("120000", "blob", mkblob(path, b"top.txt"), b"link"),
        ("160000", "commit", "1" * 40, b"sub"),
        ("100644", "blob", mkblob(path, b"top\n"), b"top.txt"),
    ])
    oids = {}
    env = {"GIT_AUTHOR_DATE": "1700000000 +0100", "GIT_COMMITTER_DATE": "1700000000 +0100"}
    oids["root"] = sh(path, "commit-tree", root, "-m", "root\n\nSigned-off-by: A <a@x>",
                      env=env).decode().strip()
    prev = oids["root"]
    # Long bodies make the list answers cross the 1 MiB chunk limit.
    for i in range(160):
        msg = "step %d\n\n%s" % (i, "b" * 9000)
        prev = sh(path, "commit-tree", root, "-p", prev, "-m", msg,
                  env={"GIT_AUTHOR_DATE": "%d +0000" % (1700000100 + i),
                       "GIT_COMMITTER_DATE": "%d +0000" % (1700000100 + i)}).decode().strip()
    oids["linear"] = prev
    side = commit(path, {"side": b"s\n"}, "side", [oids["root"]], "refs/heads/side", date=1700100000)
    merge = sh(path, "commit-tree", root, "-p", prev, "-p", side, "-m", "merge").decode().strip()
    latin = sh(path, "-c", "i18n.commitEncoding=ISO-8859-1", "commit-tree", root, "-p", merge,
               input=b"caf\xe9 message\n").decode().strip()
    sh(path, "update-ref", "refs/heads/main", latin)
    sh(path, "tag", "-a", "v1", "-m", "tag", oids["root"])
    oids.update(side=side, merge=merge, main=latin)
    msg = shared_pb2.Repository(storage_name="default", relative_path=rel)
    return msg, path, oids


def test_find_commit_matches_git(stub, repo):
    msg, path, oids = repo
    for rev in [b"main", b"main~1", b"side", b"v1", oids["root"].encode(), b"main~3"]:
        want = sh(path, "rev-parse", rev.decode() + "^{commit}").decode().strip()
        c = stub.FindCommit(cp.FindCommitRequest(repository=msg, revision=rev)).commit
        assert c.id == want
        assert c.tree_id == sh(path, "rev-parse", want + "^{tree}").decode().strip()
        assert list(c.parent_ids) == sh(path, "log", "-1", "--format=%P", want).decode().split()
        raw = sh(path, "cat-file", "commit", want)
        body = raw.split(b"\n\n", 1)[1]
        assert c.body_size == len(body)
        assert c.body == body[:10240]
        assert c.author.date.seconds == int(sh(path, "log", "-1", "--format=%at", want))
        assert c.author.timezone == sh(path, "log", "-1", "--format=%ad", "--date=format:%z", want).strip()
    c = stub.FindCommit(cp.FindCommitRequest(repository=msg, revision=b"main")).commit
    assert c.subject == b"caf\xe9 message"
    assert c.encoding == "ISO-8859-1"
    c = stub.FindCommit(cp.FindCommitRequest(repository=msg, revision=oids["root"].encode(),
                                             trailers=True)).commit
    assert [(t.key, t.value) for t in c.trailers] == [(b"Signed-off-by", b"A <a@x>")]
    # Unknown revisions: an empty answer.
    r = stub.FindCommit(cp.FindCommitRequest(repository=msg, revision=b"nope"))
    assert not r.HasField("commit")
    err = rpc_error(stub.FindCommit, cp.FindCommitRequest(repository=msg, revision=b"-main"))
    assert_code(err, INVALID, "revision can't start with '-'")


def test_tree_entry_streams_blob_in_chunks(stub, repo):
    msg, path, _ = repo
    want = sh(path, "cat-file", "blob", "main:big.bin")
    resps = list(stub.TreeEntry(cp.TreeEntryRequest(repository=msg, revision=b"main", path=b"big.bin")))
    assert len(resps) == (len(want) + 131071) // 131072
    assert b"".join(r.data for r in resps) == want
    assert resps[0].size == len(want) and resps[0].type == cp.TreeEntryResponse.BLOB
    assert all(r.size == 0 and r.oid == "" for r in resps[1:])
    resps = list(stub.TreeEntry(cp.TreeEntryRequest(repository=msg, revision=b"main",
                                                    path=b"big.bin", limit=10)))
    assert b"".join(r.data for r in resps) == want[:10]
    err = rpc_error(lambda: list(stub.TreeEntry(cp.TreeEntryRequest(
        repository=msg, revision=b"main", path=b"big.bin", max_size=100))))
    assert_code(err, FAILED_PRECONDITION,
                "object size (%d) is bigger than the maximum allowed size (100)" % len(want))
    r = list(stub.TreeEntry(cp.TreeEntryRequest(repository=msg, revision=b"main", path=b"caf\xe9")))
    assert r[0].data == b"x"
    r = list(stub.TreeEntry(cp.TreeEntryRequest(repository=msg, revision=b"main", path=b"sub")))
    assert r[0].type == cp.TreeEntryResponse.COMMIT and r[0].oid == "1" * 40
    for p in [b"nope", b"../top.txt", b"a/../top.txt"]:
        err = rpc_error(lambda: list(stub.TreeEntry(cp.TreeEntryRequest(
            repository=msg, revision=b"main", path=p))))
        assert_code(err, NOT_FOUND, "tree entry not found")


def ls_tree(path, *args):
    out = sh(path, "-c", "core.quotePath=false", "ls-tree", "-z", *args)
    rows = []
    for rec in out.split(b"\0"):
        if rec:
            meta, name = rec.split(b"\t", 1)
            mode, typ, oid = meta.split()
            rows.append((int(mode, 8), typ.decode(), oid.decode(), name))
    return rows


def entries_of(resps):
    types = {cp.TreeEntry.BLOB: "blob", cp.TreeEntry.TREE: "tree", cp.TreeEntry.COMMIT: "commit"}
    return [(e.mode, types[e.type], e.oid, e.path) for r in resps for e in r.entries]


def test_get_tree_entries_against_ls_tree(stub, repo):
    msg, path, _ = repo
    resps = list(stub.GetTreeEntries(cp.GetTreeEntriesRequest(repository=msg, revision=b"main", path=b".")))
    assert entries_of(resps) == ls_tree(path, "main")
    assert resps[0].HasField("pagination_cursor")
    flat = {e.path: e.flat_path for e in resps[0].entries}
    assert flat[b"a"] == b"a/b/d"
    resps = list(stub.GetTreeEntries(cp.GetTreeEntriesRequest(
        repository=msg, revision=b"main", path=b".", recursive=True)))
    assert entries_of(resps) == ls_tree(path, "-r", "-t", "main")
    # Paging with the handed-out tokens walks the whole listing.
    got, token = [], ""
    while True:
        resps = list(stub.GetTreeEntries(cp.GetTreeEntriesRequest(
            repository=msg, revision=b"main", path=b".",
            pagination_params=shared_pb2.PaginationParameter(limit=2, page_token=token))))
        got += entries_of(resps)
        token = resps[0].pagination_cursor.next_cursor
        assert all(not r.HasField("pagination_cursor") for r in resps[1:])
        if not token:
            break
        name = json.loads(base64.b64decode(token))["file_name"]
        assert name == got[-1][3].decode("utf-8", errors="replace")
    assert got == ls_tree(path, "main")
    err = rpc_error(lambda: list(stub.GetTreeEntries(cp.GetTreeEntriesRequest(
        repository=msg, revision=b"main", path=b".",
        pagination_params=shared_pb2.PaginationParameter(limit=2, page_token="zzz")))))
    assert_code(err, grpc.StatusCode.UNKNOWN, "could not find starting OID: zzz")
    err = rpc_error(lambda: list(stub.GetTreeEntries(cp.GetTreeEntriesRequest(
        repository=msg, revision=b"main", path=b""))))
    assert_code(err, INVALID, "empty path")
    st = None
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status()
            st.ParseFromString(v)
    assert st is not None
    detail = cp.GetTreeEntriesError()
    detail.ParseFromString(st.details[0].value)
    assert detail.HasField("path")
    err = rpc_error(lambda: list(stub.GetTreeEntries(cp.GetTreeEntriesRequest(
        repository=msg, revision=b"nope", path=b"."))))
    assert_code(err, INVALID, "invalid revision or path")


def ids(resps):
    return [c.id for r in resps for c in r.commits]


def test_list_commits_chunked_and_paginated(stub, repo):
    msg, path, oids = repo
    resps = list(stub.ListCommits(cp.ListCommitsRequest(repository=msg, revisions=["main"])))
    assert ids(resps) == sh(path, "rev-list", "main").decode().split()
    assert len(resps) > 1  # ~160 commits of 9 KB bodies exceed 1 MiB
    assert all(r.ByteSize() < 1024 * 1024 for r in resps)
    resps = list(stub.ListCommits(cp.ListCommitsRequest(
        repository=msg, revisions=["main", "^side"], order=cp.ListCommitsRequest.TOPO, reverse=True)))
    assert ids(resps) == sh(path, "rev-list", "--topo-order", "--reverse", "main", "^side").decode().split()
    every = sh(path, "rev-list", "main").decode().split()
    resps = list(stub.ListCommits(cp.ListCommitsRequest(
        repository=msg, revisions=["main"],
        pagination_params=shared_pb2.PaginationParameter(limit=5, page_token=every[9]))))
    assert ids(resps) == every[10:15]
    err = rpc_error(lambda: list(stub.ListCommits(cp.ListCommitsRequest(repository=msg, revisions=["-x"]))))
    assert_code(err, INVALID, "invalid revision: revision can't start with '-'")


def test_counts_and_ancestry(stub, repo):
    msg, path, oids = repo
    r = stub.CountCommits(cp.CountCommitsRequest(repository=msg, revision=b"main"))
    assert r.count == int(sh(path, "rev-list", "--count", "main"))
    r = stub.CountDivergingCommits(cp.CountDivergingCommitsRequest(repository=msg, **{"from": b"main", "to": b"side"}))
    left, right = map(int, sh(path, "rev-list", "--count", "--left-right", "main...side").split())
    assert (r.left_count, r.right_count) == (left, right)
    r = stub.CommitIsAncestor(cp.CommitIsAncestorRequest(repository=msg, ancestor_id=oids["side"], child_id=oids["main"]))
    assert r.value is True
    r = stub.CommitIsAncestor(cp.CommitIsAncestorRequest(repository=msg, ancestor_id=oids["main"], child_id=oids["side"]))
    assert r.value is False
    r = stub.LastCommitForPath(cp.LastCommitForPathRequest(repository=msg, revision=b"main", path=b"side"))
    assert r.commit.id == sh(path, "log", "-1", "--format=%H", "main", "--", "side").decode().strip()


def test_check_objects_exist_bidi(stub, repo):
    msg, path, oids = repo

    def reqs():
        yield cp.CheckObjectsExistRequest(repository=msg, revisions=[b"main", b"nope"])
        yield cp.CheckObjectsExistRequest(revisions=[oids["root"].encode(), b"main:a/b"])

    got = [(r.name, r.exists) for resp in stub.CheckObjectsExist(reqs()) for r in resp.revisions]
    assert got == [(b"main", True), (b"nope", False), (oids["root"].encode(), True), (b"main:a/b", True)]


def test_list_all_commits_sees_quarantine(stub, repo, gitaly):
    msg, path, oids = repo
    qdir = os.path.join(path, "objects", "incoming-q")
    os.makedirs(qdir)
    tree = sh(path, "rev-parse", "main^{tree}").decode().strip()
    env = {"GIT_OBJECT_DIRECTORY": qdir, "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(path, "objects")}
    q = sh(path, "commit-tree", tree, "-m", "quarantined", env=env).decode().strip()
    qmsg = shared_pb2.Repository(storage_name="default", relative_path=msg.relative_path,
                                 git_object_directory="objects/incoming-q",
                                 git_alternate_object_directories=["objects"])
    assert q in ids(stub.ListAllCommits(cp.ListAllCommitsRequest(repository=qmsg)))
    assert q not in ids(stub.ListAllCommits(cp.ListAllCommitsRequest(repository=msg)))
    got = stub.FindCommit(cp.FindCommitRequest(repository=qmsg, revision=q.encode())).commit
    assert got.id == q
    assert not stub.FindCommit(cp.FindCommitRequest(repository=msg, revision=q.encode())).HasField("commit")
    every = set(sh(path, "rev-list", "--all").decode().split())
    assert set(ids(stub.ListAllCommits(cp.ListAllCommitsRequest(repository=msg)))) >= every


def test_log_queries_match_git(stub, repo):
    msg, path, oids = repo
    got = [c.id for r in stub.FindCommits(cp.FindCommitsRequest(
        repository=msg, revision=b"main", limit=20, offset=3, skip_merges=True)) for c in r.commits]
    assert got == sh(path, "log", "--format=%H", "--skip=3", "--max-count=20", "--no-merges", "main").decode().split()
    got = [c.id for r in stub.FindCommits(cp.FindCommitsRequest(
        repository=msg, revision=b"main", limit=5, paths=[b"side"])) for c in r.commits]
    assert got == sh(path, "log", "--format=%H", "--max-count=5", "main", "--", "side").decode().split()
    got = [c.id for r in stub.CommitsByMessage(cp.CommitsByMessageRequest(
        repository=msg, revision=b"main", query="STEP 1", limit=7)) for c in r.commits]
    assert got == sh(path, "log", "--pretty=%H", "--grep=STEP 1", "-i", "--max-count=7", "main").decode().split()
    got = ids(stub.FindAllCommits(cp.FindAllCommitsRequest(repository=msg, max_count=30)))
    assert got == sh(path, "log", "--pretty=%H", "--max-count=30", "--branches").decode().split()


def test_files_blame_stats_messages(stub, repo):
    msg, path, oids = repo
    paths = [p for r in stub.ListFiles(cp.ListFilesRequest(repository=msg, revision=b"main")) for p in r.paths]
    want = [l.split(b" ", 1)[1] for l in sh(path, "-c", "core.quotePath=false", "ls-tree", "-z", "-r",
                                               "--format=%(objecttype) %(path)", "main").split(b"\0")
            if l.startswith(b"blob ")]
    assert paths == want
    data = b"".join(r.data for r in stub.RawBlame(cp.RawBlameRequest(repository=msg, revision=b"main", path=b"top.txt")))
    assert data == sh(path, "blame", "-p", "main", "--", "top.txt")
    err = rpc_error(lambda: list(stub.RawBlame(cp.RawBlameRequest(
        repository=msg, revision=b"main", path=b"top.txt", range=b"3,4"))))
    assert_code(err, INVALID, "range is outside of the file length")
    r = stub.CommitStats(cp.CommitStatsRequest(repository=msg, revision=oids["side"].encode()))
    assert r.oid == oids["side"]
    a = d = 0
    for line in sh(path, "diff", "--numstat", oids["side"] + "^", oids["side"]).decode().splitlines():
        x, y, _ = line.split("\t", 2)
        if x != "-":
            a, d = a + int(x), d + int(y)
    assert (r.additions, r.deletions) == (a, d)
    resps = list(stub.GetCommitMessages(cp.GetCommitMessagesRequest(repository=msg, commit_ids=[oids["linear"]])))
    assert resps[0].commit_id == oids["linear"]
    assert b"".join(r.message for r in resps[1:]) == sh(path, "cat-file", "commit", oids["linear"]).split(b"\n\n", 1)[1]


def test_last_commits_for_tree(stub, repo):
    msg, path, oids = repo
    resps = list(stub.ListLastCommitsForTree(cp.ListLastCommitsForTreeRequest(
        repository=msg, revision="main", path=b"", limit=25)))
    got = [(c.path_bytes, c.commit.id) for r in resps for c in r.commits]
    assert all(len(r.commits) <= 10 for r in resps)
    rows = ls_tree(path, "main")
    # Trees first, then blobs, then submodules, each group in tree order.
    rank = {"tree": 0, "blob": 1, "commit": 2}
    assert [p for p, _ in got] == [n for _, t, _, n in sorted(rows, key=lambda row: rank[row[1]])]
    for p, cid in got:
        assert cid == sh(path, "log", "-1", "--format=%H", "main", "--", p).decode().strip()


def test_signatures_and_languages(stub, repo):
    msg, path, oids = repo
    raw = sh(path, "cat-file", "commit", oids["side"])
    head, body = raw.split(b"\n\n", 1)
    signed = head + b"\ngpgsig -----BEGIN PGP SIGNATURE-----\n abc\n -----END PGP SIGNATURE-----\n\n" + body
    soid = sh(path, "hash-object", "-t", "commit", "-w", "--stdin", input=signed).decode().strip()
    resps = list(stub.GetCommitSignatures(cp.GetCommitSignaturesRequest(repository=msg, commit_ids=[soid, oids["side"]])))
    assert resps[0].commit_id == soid
    assert resps[0].signature == b"-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----"
    assert b"".join(r.signed_text for r in resps[1:]) == raw

    def reqs():
        yield cp.FilterShasWithSignaturesRequest(repository=msg, shas=[oids["side"].encode(), soid.encode()])
        yield cp.FilterShasWithSignaturesRequest(shas=[oids["main"].encode()])

    got = [list(r.shas) for r in stub.FilterShasWithSignatures(reqs())]
    assert got == [[soid.encode()], []]
    c = stub.FindCommit(cp.FindCommitRequest(repository=msg, revision=soid.encode())).commit
    assert c.signature_type == shared_pb2.PGP
    # Only the binary and odd files: no detectable language but nothing breaks.
    r = stub.CommitLanguages(cp.CommitLanguagesRequest(repository=msg, revision=b"main"))
    assert [l.name for l in r.languages] == []
