"""SHA-256 repositories over the wire: a repository made with
`git init --object-format=sha256` (merges, annotated and lightweight tags,
a rename, a binary file) is read through every RPC family and each answer
is compared with what the git CLI says about the same repository. Object
ids are 64 hex digits everywhere, the zero id is 64 zeros, and ids of the
wrong length are refused with upstream's messages."""

import hashlib

import grpc
import pytest

import blob_pb2
import blob_pb2_grpc
import commit_pb2
import commit_pb2_grpc
import diff_pb2
import diff_pb2_grpc
import ref_pb2
import ref_pb2_grpc
import repository_pb2
import repository_pb2_grpc
import shared_pb2
from conftest import assert_code, git, git_supports_sha256, make_repo, rpc_error

pytestmark = pytest.mark.skipif(not git_supports_sha256(), reason="git without sha256")

ZERO64 = "0" * 64


def hexlen(oid):
    assert len(oid) == 64 and all(c in "0123456789abcdef" for c in oid), oid
    return oid


def fast_commit(path, files, message, parents=(), date=1700000000, ref=None):
    """A commit of {name: bytes} (names may hold one '/'), via mktree."""
    top, sub = {}, {}
    for name, content in files.items():
        oid = git("-C", path, "hash-object", "-w", "--stdin", input=content).decode().strip()
        if "/" in name:
            d, base = name.split("/", 1)
            sub.setdefault(d, []).append("100644 blob %s\t%s" % (oid, base))
        else:
            top[name] = "100644 blob %s\t%s" % (oid, name)
    for d, entries in sub.items():
        t = git("-C", path, "mktree", input=("\n".join(sorted(entries, key=lambda e: e.split("\t")[1])) + "\n").encode()).decode().strip()
        top[d] = "040000 tree %s\t%s" % (t, d)
    tree = git("-C", path, "mktree",
               input=("\n".join(top[k] for k in sorted(top)) + "\n").encode()).decode().strip()
    args = ["-C", path, "commit-tree", tree, "-m", message]
    for p in parents:
        args += ["-p", p]
    stamp = "%d +0000" % date
    oid = git(*args, env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}).decode().strip()
    if ref:
        git("-C", path, "update-ref", ref, oid)
    return oid


@pytest.fixture(scope="module")
def repo(gitaly):
    rel = "@hashed/5a/25/sha256-repo.git"
    path = gitaly.path(rel)
    make_repo(path, object_format="sha256")
    binary = bytes(range(256)) * 40
    base = fast_commit(path, {"README.md": b"# hello\n", "src/a.c": b"int a;\n",
                              "old.txt": b"to be renamed\n" * 20}, "base", date=1700000000)
    c1 = fast_commit(path, {"README.md": b"# hello\nmore\n", "src/a.c": b"int a;\n",
                            "new.txt": b"to be renamed\n" * 20, "logo.bin": binary},
                     "rename and binary\n\nbody text", [base], date=1700000100)
    side = fast_commit(path, {"README.md": b"# hello\n", "src/a.c": b"int a;\nint b;\n",
                              "old.txt": b"to be renamed\n" * 20}, "side", [base], date=1700000200,
                       ref="refs/heads/feature")
    merge = fast_commit(path, {"README.md": b"# hello\nmore\n", "src/a.c": b"int a;\nint b;\n",
                               "new.txt": b"to be renamed\n" * 20, "logo.bin": binary},
                        "Merge branch 'feature'", [c1, side], date=1700000300,
                        ref="refs/heads/main")
    git("-C", path, "tag", "light", c1)
    git("-C", path, "tag", "-a", "v1.0", "-m", "release 1.0", merge,
        env={"GIT_COMMITTER_DATE": "1700000400 +0000"})
    git("-C", path, "update-ref", "refs/heads/zzz", base)
    git("-C", path, "update-ref", "refs/remotes/origin/main", side)
    for oid in (base, c1, side, merge):
        hexlen(oid)
    return dict(rel=rel, path=path, base=base, c1=c1, side=side, merge=merge,
                repo=shared_pb2.Repository(storage_name="default", relative_path=rel),
                binary=binary)


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


def revparse(path, rev):
    return git("-C", path, "rev-parse", rev).decode().strip()


def cat(path, *args):
    return git("-C", path, "cat-file", *args)


# ---------------------------------------------------------------- repository

def test_object_format_and_create(ch, gitaly, repo):
    rs = repository_pb2_grpc.RepositoryServiceStub(ch)
    r = rs.ObjectFormat(repository_pb2.ObjectFormatRequest(repository=repo["repo"]))
    assert r.format == shared_pb2.OBJECT_FORMAT_SHA256
    new = shared_pb2.Repository(storage_name="default", relative_path="@hashed/aa/bb/new256.git")
    rs.CreateRepository(repository_pb2.CreateRepositoryRequest(
        repository=new, object_format=shared_pb2.OBJECT_FORMAT_SHA256))
    out = git("-C", gitaly.path(new.relative_path), "rev-parse", "--show-object-format")
    assert out.decode().strip() == "sha256"


# ---------------------------------------------------------------- commits

def test_find_commit_matches_cat_file(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    for rev in ("main", repo["merge"], repo["c1"], "v1.0", "refs/heads/feature", "main~1"):
        c = cs.FindCommit(commit_pb2.FindCommitRequest(repository=repo["repo"],
                                                       revision=rev.encode())).commit
        oid = revparse(repo["path"], rev + "^{commit}")
        assert c.id == oid
        raw = cat(repo["path"], "commit", oid).decode()
        tree = raw.split("\n")[0].split()[1]
        parents = [l.split()[1] for l in raw.split("\n\n")[0].split("\n") if l.startswith("parent ")]
        assert c.tree_id == hexlen(tree)
        assert list(c.parent_ids) == parents
        assert c.body == raw.split("\n\n", 1)[1].encode()
    # Unknown commit: an empty answer, not an error.
    r = cs.FindCommit(commit_pb2.FindCommitRequest(repository=repo["repo"],
                                                   revision=b"f" * 64))
    assert not r.HasField("commit")


def test_list_commits_by_oid_and_ref_name(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    oids = [repo["base"], repo["merge"], repo["side"][:12], "e" * 64]
    got = [c.id for r in cs.ListCommitsByOid(commit_pb2.ListCommitsByOidRequest(
        repository=repo["repo"], oid=oids)) for c in r.commits]
    assert got == [repo["base"], repo["merge"], repo["side"]]
    got = [(c.ref_name, c.commit.id) for r in cs.ListCommitsByRefName(
        commit_pb2.ListCommitsByRefNameRequest(repository=repo["repo"],
                                               ref_names=[b"refs/heads/main", b"refs/heads/zzz"]))
        for c in r.commit_refs]
    assert got == [(b"refs/heads/main", repo["merge"]), (b"refs/heads/zzz", repo["base"])]


def test_list_commits_and_log_queries_match_git(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    want = git("-C", repo["path"], "rev-list", "main").decode().split()
    got = [c.id for r in cs.ListCommits(commit_pb2.ListCommitsRequest(
        repository=repo["repo"], revisions=["main"])) for c in r.commits]
    assert got == want
    got = [c.id for r in cs.FindCommits(commit_pb2.FindCommitsRequest(
        repository=repo["repo"], revision=b"main", limit=10)) for c in r.commits]
    assert got == git("-C", repo["path"], "log", "--format=%H", "main").decode().split()
    got = [c.id for r in cs.FindAllCommits(commit_pb2.FindAllCommitsRequest(
        repository=repo["repo"])) for c in r.commits]
    assert sorted(got) == sorted(git("-C", repo["path"], "rev-list", "--all").decode().split())
    r = cs.LastCommitForPath(commit_pb2.LastCommitForPathRequest(
        repository=repo["repo"], revision=b"main", path=b"new.txt"))
    assert r.commit.id == git("-C", repo["path"], "log", "-1", "--format=%H", "main", "--",
                              "new.txt").decode().strip()
    got = [c.id for r in cs.CommitsByMessage(commit_pb2.CommitsByMessageRequest(
        repository=repo["repo"], revision=b"main", query="rename")) for c in r.commits]
    assert got == [repo["c1"]]
    all_ids = {c.id for r in cs.ListAllCommits(commit_pb2.ListAllCommitsRequest(
        repository=repo["repo"])) for c in r.commits}
    assert all_ids == {repo["base"], repo["c1"], repo["side"], repo["merge"]}


def test_counts_ancestry_stats(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    n = cs.CountCommits(commit_pb2.CountCommitsRequest(repository=repo["repo"],
                                                       revision=b"main")).count
    assert n == int(git("-C", repo["path"], "rev-list", "--count", "main"))
    d = cs.CountDivergingCommits(commit_pb2.CountDivergingCommitsRequest(
        repository=repo["repo"], **{"from": b"main", "to": b"zzz"}))
    assert (d.left_count, d.right_count) == (3, 0)
    a = cs.CommitIsAncestor(commit_pb2.CommitIsAncestorRequest(
        repository=repo["repo"], ancestor_id=repo["base"], child_id=repo["merge"]))
    assert a.value
    s = cs.CommitStats(commit_pb2.CommitStatsRequest(repository=repo["repo"],
                                                     revision=repo["c1"].encode()))
    assert s.oid == repo["c1"]
    num = [l.split("\t") for l in git("-C", repo["path"], "diff", "--numstat", repo["base"],
                                      repo["c1"]).decode().splitlines()]
    assert s.additions == sum(int(a) for a, _, _ in num if a != "-")
    assert s.deletions == sum(int(d) for _, d, _ in num if d != "-")


def test_check_objects_exist(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    revs = [repo["merge"].encode(), b"main", b"f" * 64, b"v1.0"]
    got = {r.name: r.exists for resp in cs.CheckObjectsExist(iter([
        commit_pb2.CheckObjectsExistRequest(repository=repo["repo"], revisions=revs)]))
        for r in resp.revisions}
    assert got == {repo["merge"].encode(): True, b"main": True, b"f" * 64: False, b"v1.0": True}


def test_commit_messages(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    msgs = {}
    for r in cs.GetCommitMessages(commit_pb2.GetCommitMessagesRequest(
            repository=repo["repo"], commit_ids=[repo["c1"], repo["merge"]])):
        if r.commit_id:
            cur = r.commit_id
            msgs[cur] = b""
        msgs[cur] += r.message
    assert msgs[repo["c1"]] == b"rename and binary\n\nbody text\n"
    assert msgs[repo["merge"]] == b"Merge branch 'feature'\n"


# ---------------------------------------------------------------- refs

def test_default_branch_exists_find_branch(ch, repo):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    r = rs.FindDefaultBranchName(ref_pb2.FindDefaultBranchNameRequest(repository=repo["repo"]))
    assert r.name == b"refs/heads/main"
    assert rs.RefExists(ref_pb2.RefExistsRequest(repository=repo["repo"],
                                                 ref=b"refs/heads/feature")).value
    assert not rs.RefExists(ref_pb2.RefExistsRequest(repository=repo["repo"],
                                                     ref=b"refs/heads/nope")).value
    b = rs.FindBranch(ref_pb2.FindBranchRequest(repository=repo["repo"], name=b"feature")).branch
    assert b.name == b"feature" and b.target_commit.id == repo["side"]
    assert not rs.FindBranch(ref_pb2.FindBranchRequest(repository=repo["repo"],
                                                       name=b"nope")).HasField("branch")


def for_each_ref(path, *args):
    out = git("-C", path, "for-each-ref", "--format=%(refname)%00%(objectname)", *args)
    return [tuple(l.split(b"\0")) for l in out.split(b"\n") if l]


@pytest.mark.parametrize("sort,git_sort", [
    (ref_pb2.FindLocalBranchesRequest.NAME, None),
    (ref_pb2.FindLocalBranchesRequest.UPDATED_DESC, "--sort=-committerdate"),
])
def test_branch_listings_match_for_each_ref(ch, repo, sort, git_sort):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    got = [(b.name, b.target_commit.id.encode()) for r in rs.FindLocalBranches(
        ref_pb2.FindLocalBranchesRequest(repository=repo["repo"], sort_by=sort))
        for b in r.local_branches]
    want = for_each_ref(repo["path"], *([git_sort] if git_sort else []), "refs/heads")
    assert got == want
    got = [(b.name, b.target.id.encode()) for r in rs.FindAllBranches(
        ref_pb2.FindAllBranchesRequest(repository=repo["repo"])) for b in r.branches]
    assert got == for_each_ref(repo["path"], "refs/heads", "refs/remotes")
    got = [(b.name, b.target_commit.id.encode()) for r in rs.FindAllRemoteBranches(
        ref_pb2.FindAllRemoteBranchesRequest(repository=repo["repo"], remote_name="origin"))
        for b in r.branches]
    assert got == for_each_ref(repo["path"], "refs/remotes/origin")


def test_list_refs_and_refs_by_oid(ch, repo):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    got = [(r.name, r.target.encode(), r.peeled_target.encode()) for resp in rs.ListRefs(
        ref_pb2.ListRefsRequest(repository=repo["repo"], patterns=[b"refs/"], head=True,
                                peel_tags=True)) for r in resp.references]
    out = git("-C", repo["path"], "for-each-ref",
              "--format=%(refname)%00%(objectname)%00%(*objectname)", "refs/")
    want = [(b"HEAD", repo["merge"].encode(), b"")] + \
        [tuple(l.split(b"\0")) for l in out.split(b"\n") if l]
    assert got == want
    r = rs.FindRefsByOID(ref_pb2.FindRefsByOIDRequest(repository=repo["repo"], oid=repo["base"]))
    assert list(r.refs) == ["refs/heads/zzz"]
    # Like upstream, the id goes to --points-at as it is: git refuses a
    # name it cannot resolve (usage error 129 -> InvalidArgument).
    e = rpc_error(rs.FindRefsByOID, ref_pb2.FindRefsByOIDRequest(repository=repo["repo"],
                                                               oid="a" * 40))
    assert_code(e, grpc.StatusCode.INVALID_ARGUMENT, contains="exit status 129")


def test_containing_commit(ch, repo):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    got = sorted(n for r in rs.ListBranchNamesContainingCommit(
        ref_pb2.ListBranchNamesContainingCommitRequest(repository=repo["repo"],
                                                       commit_id=repo["side"]))
        for n in r.branch_names)
    assert got == [b"feature", b"main"]
    got = sorted(n for r in rs.ListTagNamesContainingCommit(
        ref_pb2.ListTagNamesContainingCommitRequest(repository=repo["repo"],
                                                    commit_id=repo["c1"]))
        for n in r.tag_names)
    assert got == [b"light", b"v1.0"]


def test_tags(ch, repo):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    tags = {t.name: t for r in rs.FindAllTags(ref_pb2.FindAllTagsRequest(
        repository=repo["repo"])) for t in r.tags}
    ann = revparse(repo["path"], "refs/tags/v1.0")
    assert tags[b"v1.0"].id == hexlen(ann)
    assert tags[b"v1.0"].message == b"release 1.0"
    assert tags[b"v1.0"].target_commit.id == repo["merge"]
    assert tags[b"light"].id == repo["c1"] and tags[b"light"].target_commit.id == repo["c1"]
    t = rs.FindTag(ref_pb2.FindTagRequest(repository=repo["repo"], tag_name=b"v1.0")).tag
    assert t.id == ann and t.target_commit.id == repo["merge"]
    msgs = [r for r in rs.GetTagMessages(ref_pb2.GetTagMessagesRequest(
        repository=repo["repo"], tag_ids=[ann]))]
    assert msgs[0].tag_id == ann and b"".join(m.message for m in msgs) == b"release 1.0\n"
    sigs = [s for r in rs.GetTagSignatures(ref_pb2.GetTagSignaturesRequest(
        repository=repo["repo"], tag_revisions=["refs/tags/v1.0"])) for s in r.signatures]
    assert [s.tag_id for s in sigs] == [ann]
    assert sigs[0].content == cat(repo["path"], "tag", ann)


def test_update_and_delete_refs(ch, repo):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    rs.UpdateReferences(iter([ref_pb2.UpdateReferencesRequest(
        repository=repo["repo"], updates=[ref_pb2.UpdateReferencesRequest.Update(
            reference=b"refs/heads/tmp", old_object_id=ZERO64.encode(),
            new_object_id=repo["base"].encode())])]))
    assert revparse(repo["path"], "refs/heads/tmp") == repo["base"]
    e = rpc_error(rs.UpdateReferences, iter([ref_pb2.UpdateReferencesRequest(
        repository=repo["repo"], updates=[ref_pb2.UpdateReferencesRequest.Update(
            reference=b"refs/heads/tmp2", old_object_id=b"0" * 40,
            new_object_id=repo["base"].encode())])]))
    assert_code(e, grpc.StatusCode.INVALID_ARGUMENT,
                'validating old object ID: invalid object ID: "%s", expected length 64, got 40'
                % ("0" * 40))
    rs.DeleteRefs(ref_pb2.DeleteRefsRequest(repository=repo["repo"], refs=[b"refs/heads/tmp"]))
    assert git("-C", repo["path"], "show-ref", "--verify", "refs/heads/tmp", check=False) == b""


# ---------------------------------------------------------------- diffs

def test_diff_family(ch, repo):
    ds = diff_pb2_grpc.DiffServiceStub(ch)
    diffs = list(ds.CommitDiff(diff_pb2.CommitDiffRequest(
        repository=repo["repo"], left_commit_id=repo["base"], right_commit_id=repo["c1"])))
    paths = sorted((d.from_path, d.to_path) for d in diffs if d.from_path or d.to_path)
    assert (b"old.txt", b"new.txt") in paths
    for d in diffs:
        if d.to_id:
            assert len(d.to_id) == 64 and len(d.from_id) == 64
    raw = b"".join(r.data for r in ds.RawDiff(diff_pb2.RawDiffRequest(
        repository=repo["repo"], left_commit_id=repo["base"], right_commit_id=repo["c1"])))
    assert raw == git("-C", repo["path"], "diff", "--full-index", repo["base"], repo["c1"])
    blob_old = revparse(repo["path"], repo["base"] + ":README.md")
    blob_new = revparse(repo["path"], repo["c1"] + ":README.md")
    assert ("index %s..%s" % (blob_old, blob_new)).encode() in raw
    patch = b"".join(r.data for r in ds.RawPatch(diff_pb2.RawPatchRequest(
        repository=repo["repo"], left_commit_id=repo["base"], right_commit_id=repo["side"])))
    assert patch.startswith(b"From " + repo["side"].encode() + b" ")
    stats = {s.path: (s.additions, s.deletions) for r in ds.DiffStats(diff_pb2.DiffStatsRequest(
        repository=repo["repo"], left_commit_id=repo["base"], right_commit_id=repo["side"]))
        for s in r.stats}
    assert stats == {b"src/a.c": (1, 0)}
    changed = [p for r in ds.FindChangedPaths(diff_pb2.FindChangedPathsRequest(
        repository=repo["repo"], requests=[diff_pb2.FindChangedPathsRequest.Request(
            commit_request=diff_pb2.FindChangedPathsRequest.Request.CommitRequest(
                commit_revision=repo["side"]))])) for p in r.paths]
    assert [(p.path, p.status) for p in changed] == \
        [(b"src/a.c", diff_pb2.ChangedPaths.MODIFIED)]
    pid = ds.GetPatchID(diff_pb2.GetPatchIDRequest(repository=repo["repo"],
                                                    old_revision=repo["base"].encode(),
                                                    new_revision=repo["side"].encode()))
    assert pid.patch_id


# ---------------------------------------------------------------- blobs

def test_get_blob_and_blobs(ch, repo):
    bs = blob_pb2_grpc.BlobServiceStub(ch)
    oid = revparse(repo["path"], repo["c1"] + ":logo.bin")
    data = b"".join(r.data for r in bs.GetBlob(blob_pb2.GetBlobRequest(
        repository=repo["repo"], oid=oid, limit=-1)))
    assert data == repo["binary"]
    got = [(r.oid, r.path, r.size) for r in bs.GetBlobs(blob_pb2.GetBlobsRequest(
        repository=repo["repo"], limit=0, revision_paths=[
            blob_pb2.GetBlobsRequest.RevisionPath(revision="main", path=b"src/a.c")]))]
    assert got == [(revparse(repo["path"], "main:src/a.c"), b"src/a.c", 14)]


# ---------------------------------------------------------------- trees

def test_tree_entries(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    got = sorted((e.path, e.oid) for r in cs.GetTreeEntries(commit_pb2.GetTreeEntriesRequest(
        repository=repo["repo"], revision=b"main", path=b".")) for e in r.entries)
    want = sorted((l.split(b"\t")[1], l.split()[2].decode()) for l in
                  git("-C", repo["path"], "ls-tree", "main").splitlines())
    assert got == want
    data = b"".join(r.data for r in cs.TreeEntry(commit_pb2.TreeEntryRequest(
        repository=repo["repo"], revision=b"main", path=b"README.md")))
    assert data == b"# hello\nmore\n"


# ---------------------------------------------------------------- oids

@pytest.mark.parametrize("oid,msg", [
    ("a" * 40, 'invalid object ID: "%s", expected length 64, got 40' % ("a" * 40)),
    ("g" * 64, 'invalid object ID: "%s", invalid character \'g\'' % ("g" * 64)),
])
def test_wrong_length_ids_are_refused(ch, repo, oid, msg):
    rs = ref_pb2_grpc.RefServiceStub(ch)
    e = rpc_error(lambda: list(rs.ListBranchNamesContainingCommit(
        ref_pb2.ListBranchNamesContainingCommitRequest(repository=repo["repo"], commit_id=oid))))
    assert_code(e, grpc.StatusCode.INVALID_ARGUMENT, msg)


def test_cached_reader_sees_new_objects_and_refs(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    rs = ref_pb2_grpc.RefServiceStub(ch)
    assert cs.FindCommit(commit_pb2.FindCommitRequest(repository=repo["repo"],
                                                      revision=b"main")).commit.id
    new = fast_commit(repo["path"], {"x": hashlib.sha256(b"late").hexdigest().encode()}, "late",
                      [repo["merge"]], date=1700000900, ref="refs/heads/late")
    c = cs.FindCommit(commit_pb2.FindCommitRequest(repository=repo["repo"],
                                                   revision=b"late")).commit
    assert c.id == new
    git("-C", repo["path"], "repack", "-adq")
    c = cs.FindCommit(commit_pb2.FindCommitRequest(repository=repo["repo"],
                                                   revision=new.encode())).commit
    assert c.id == new
    assert rs.RefExists(ref_pb2.RefExistsRequest(repository=repo["repo"],
                                                 ref=b"refs/heads/late")).value
    git("-C", repo["path"], "update-ref", "-d", "refs/heads/late")
    assert not rs.RefExists(ref_pb2.RefExistsRequest(repository=repo["repo"],
                                                     ref=b"refs/heads/late")).value
