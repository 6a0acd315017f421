"""SHA-256 repositories over the wire: a repository made with
`git init --object-format=sha256` (merges, annotated and lightweight tags,
a rename, a binary file) is read through every RPC family and each answer
is compared with what the git CLI says about the same repository. Object
ids are 64 hex digits everywhere, the zero id is 64 zeros, and ids of the
wrong length are refused with upstream's messages."""

import hashlib
import io
import os
import tarfile

import grpc
import pytest

import blob_pb2
import blob_pb2_grpc
import analysis_pb2
import analysis_pb2_grpc
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
MIT = (b"MIT License\n\nPermission is hereby granted, free of charge, to any person "
       b"obtaining a copy of this software and associated documentation files, to deal "
       b"in the Software without restriction.\n\nThe above copyright notice and this "
       b"permission notice shall be included in all copies or substantial portions of the "
       b"Software.\n")
FAKE_SIG = (b"-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEEfakefake\n=ABCD\n"
            b"-----END PGP SIGNATURE-----\n")


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
    lfs = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize 12345\n"
           % hashlib.sha256(b"big").hexdigest()).encode()
    common = {"LICENSE": MIT, ".gitattributes": b"*.rb linguist-language=Python\n",
              "lib/x.rb": b"puts 1\n" * 10, "big.dat": lfs}

    def files(**kw):
        d = dict(common)
        d.update({k.replace("__", "/").replace("_dot_", "."): v for k, v in kw.items()})
        return d

    base = fast_commit(path, files(README_dot_md=b"# hello\n", src__a_dot_c=b"int a;\n",
                                   old_dot_txt=b"to be renamed\n" * 20), "base", date=1700000000)
    c1 = fast_commit(path, files(README_dot_md=b"# hello\nmore\n", src__a_dot_c=b"int a;\n",
                                 new_dot_txt=b"to be renamed\n" * 20, logo_dot_bin=binary),
                     "rename and binary\n\nbody text", [base], date=1700000100)
    side = fast_commit(path, files(README_dot_md=b"# hello\n", src__a_dot_c=b"int a;\nint b;\n",
                                   old_dot_txt=b"to be renamed\n" * 20), "side", [base],
                       date=1700000200, ref="refs/heads/feature")
    merge = fast_commit(path, files(README_dot_md=b"# hello\nmore\n",
                                    src__a_dot_c=b"int a;\nint b;\n",
                                    new_dot_txt=b"to be renamed\n" * 20, logo_dot_bin=binary),
                        "Merge branch 'feature'", [c1, side], date=1700000300,
                        ref="refs/heads/main")
    # A signed commit (the signature is not checked, only carried).
    tree = revparse(path, merge + "^{tree}")
    raw = ("tree %s\nparent %s\nauthor A <a@example.com> 1700000500 +0000\n"
           "committer C <c@example.com> 1700000500 +0000\ngpgsig %s\n\nsigned\n"
           % (tree, merge, FAKE_SIG.decode().rstrip("\n").replace("\n", "\n "))).encode()
    signed = git("-C", path, "hash-object", "-t", "commit", "-w", "--stdin",
                 input=raw).decode().strip()
    git("-C", path, "update-ref", "refs/heads/signed", signed)
    git("-C", path, "tag", "light", c1)
    git("-C", path, "tag", "-a", "v1.0", "-m", "release 1.0", merge,
        env={"GIT_COMMITTER_DATE": "1700000400 +0000"})
    git("-C", path, "update-ref", "refs/heads/zzz", base)
    git("-C", path, "update-ref", "refs/remotes/origin/main", side)
    for oid in (base, c1, side, merge):
        hexlen(oid)
    return dict(rel=rel, path=path, base=base, c1=c1, side=side, merge=merge, signed=signed,
                lfs=lfs, signed_raw=raw,
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
    assert all_ids == {repo["base"], repo["c1"], repo["side"], repo["merge"], repo["signed"]}


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
    assert got == [b"feature", b"main", b"signed"]
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


# ---------------------------------------------------------------- more commits

def test_list_files_and_recursive_tree(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    got = sorted(p for r in cs.ListFiles(commit_pb2.ListFilesRequest(
        repository=repo["repo"], revision=b"main")) for p in r.paths)
    assert got == sorted(git("-C", repo["path"], "ls-tree", "-r", "--name-only",
                             "main").split(b"\n")[:-1])
    got = sorted((e.path, e.oid, e.type) for r in cs.GetTreeEntries(
        commit_pb2.GetTreeEntriesRequest(repository=repo["repo"], revision=b"main", path=b".",
                                         recursive=True)) for e in r.entries)
    want = []
    for l in git("-C", repo["path"], "ls-tree", "-r", "-t", "main").splitlines():
        meta, name = l.split(b"\t")
        typ = {b"blob": commit_pb2.TreeEntry.BLOB, b"tree": commit_pb2.TreeEntry.TREE}[meta.split()[1]]
        want.append((name, meta.split()[2].decode(), typ))
    assert got == sorted(want)
    # Flat paths of a single-child chain and a sub tree entry.
    e = [e for r in cs.GetTreeEntries(commit_pb2.GetTreeEntriesRequest(
        repository=repo["repo"], revision=b"main", path=b"lib")) for e in r.entries]
    assert [(x.path, x.oid) for x in e] == [(b"lib/x.rb",
                                              revparse(repo["path"], "main:lib/x.rb"))]
    t = list(cs.TreeEntry(commit_pb2.TreeEntryRequest(repository=repo["repo"], revision=b"main",
                                                      path=b"src")))
    assert t[0].type == commit_pb2.TreeEntryResponse.TREE
    assert t[0].oid == revparse(repo["path"], "main:src")
    assert t[0].size == int(git("-C", repo["path"], "cat-file", "-s", "main:src"))


def test_languages_blame_last_commits(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    langs = {l.name: l.bytes for l in cs.CommitLanguages(commit_pb2.CommitLanguagesRequest(
        repository=repo["repo"], revision=b"main")).languages}
    # src/a.c is C; lib/x.rb is Python through .gitattributes.
    assert langs == {"C": len(b"int a;\nint b;\n"), "Python": len(b"puts 1\n" * 10)}
    blame = b"".join(r.data for r in cs.RawBlame(commit_pb2.RawBlameRequest(
        repository=repo["repo"], revision=b"main", path=b"src/a.c")))
    assert blame == git("-C", repo["path"], "blame", "-p", "main", "--", "src/a.c")
    got = [(c.path_bytes, c.commit.id) for r in cs.ListLastCommitsForTree(
        commit_pb2.ListLastCommitsForTreeRequest(repository=repo["repo"], revision="main",
                                                 path=b"", limit=25)) for c in r.commits]
    for path, oid in got:
        want = git("-C", repo["path"], "log", "-1", "--format=%H", "main", "--",
                   path.decode()).decode().strip()
        assert oid == hexlen(want), path
    assert {p for p, _ in got} >= {b"src", b"README.md", b"new.txt"}


def test_signatures(ch, repo):
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    got = [s for r in cs.FilterShasWithSignatures(iter([
        commit_pb2.FilterShasWithSignaturesRequest(
            repository=repo["repo"], shas=[repo["merge"].encode(), repo["signed"].encode()])]))
        for s in r.shas]
    assert got == [repo["signed"].encode()]
    sig, text = b"", b""
    for r in cs.GetCommitSignatures(commit_pb2.GetCommitSignaturesRequest(
            repository=repo["repo"], commit_ids=[repo["signed"], repo["merge"]])):
        if r.commit_id:
            assert r.commit_id == repo["signed"]
        sig += r.signature
        text += r.signed_text
    assert sig == FAKE_SIG.rstrip(b"\n")
    assert text.endswith(b"\nsigned\n") and b"gpgsig" not in text
    # Ids of the other format's length are refused as upstream does.
    e = rpc_error(lambda: list(cs.GetCommitSignatures(commit_pb2.GetCommitSignaturesRequest(
        repository=repo["repo"], commit_ids=["a" * 40]))))
    assert_code(e, grpc.StatusCode.INVALID_ARGUMENT,
                'invalid object ID: "%s", expected length 64, got 40' % ("a" * 40))


# ---------------------------------------------------------------- more blobs

def test_list_blobs_match_rev_list(ch, repo):
    bs = blob_pb2_grpc.BlobServiceStub(ch)
    got = [(b.oid, b.path) for r in bs.ListBlobs(blob_pb2.ListBlobsRequest(
        repository=repo["repo"], revisions=["main"], with_paths=True)) for b in r.blobs if b.oid]
    want = []
    for l in git("-C", repo["path"], "rev-list", "--objects", "--in-commit-order",
                 "--filter=blob:limit=9223372036854775807", "main").splitlines():
        oid = l.split(b" ")[0].decode()
        if cat(repo["path"], "-t", oid).strip() == b"blob":
            want.append((oid, l[len(oid) + 1:]))
    assert got == want
    got = sorted(b.oid for r in bs.ListAllBlobs(blob_pb2.ListAllBlobsRequest(
        repository=repo["repo"])) for b in r.blobs if b.oid)
    want = sorted(l.split()[0].decode() for l in git(
        "-C", repo["path"], "cat-file", "--batch-all-objects", "--batch-check").splitlines()
        if l.split()[1] == b"blob")
    assert got == want
    data = b"".join(b.data for r in bs.ListBlobs(blob_pb2.ListBlobsRequest(
        repository=repo["repo"], revisions=[repo["c1"] + ":logo.bin"], bytes_limit=-1))
        for b in r.blobs)
    assert data == repo["binary"]


def test_lfs_pointers(ch, repo):
    bs = blob_pb2_grpc.BlobServiceStub(ch)
    oid = revparse(repo["path"], "main:big.dat")
    want = [(oid, repo["lfs"])]
    got = [(p.oid, p.data) for r in bs.GetLFSPointers(blob_pb2.GetLFSPointersRequest(
        repository=repo["repo"], blob_ids=[oid, revparse(repo["path"], "main:README.md")]))
        for p in r.lfs_pointers]
    assert got == want
    got = [(p.oid, p.data) for r in bs.ListLFSPointers(blob_pb2.ListLFSPointersRequest(
        repository=repo["repo"], revisions=["main"])) for p in r.lfs_pointers]
    assert got == want
    got = [(p.oid, p.data) for r in bs.ListAllLFSPointers(blob_pb2.ListAllLFSPointersRequest(
        repository=repo["repo"])) for p in r.lfs_pointers]
    assert got == want


def test_check_blobs_generated(ch, repo):
    an = analysis_pb2_grpc.AnalysisServiceStub(ch)
    req = analysis_pb2.CheckBlobsGeneratedRequest(repository=repo["repo"], blobs=[
        analysis_pb2.CheckBlobsGeneratedRequest.Blob(revision=b"main:src/a.c", path=b"src/a.c"),
        analysis_pb2.CheckBlobsGeneratedRequest.Blob(
            revision=revparse(repo["path"], "main:README.md").encode(), path=b"Cargo.lock")])
    got = [(b.revision, b.generated) for r in an.CheckBlobsGenerated(iter([req]))
           for b in r.blobs]
    assert got == [(b"main:src/a.c", False),
                   (revparse(repo["path"], "main:README.md").encode(), True)]


def test_commit_delta(ch, repo):
    ds = diff_pb2_grpc.DiffServiceStub(ch)
    got = sorted((d.from_path, d.to_path, d.from_id, d.to_id) for r in ds.CommitDelta(
        diff_pb2.CommitDeltaRequest(repository=repo["repo"], left_commit_id=repo["base"],
                                    right_commit_id=repo["side"])) for d in r.deltas)
    old = revparse(repo["path"], repo["base"] + ":src/a.c")
    new = revparse(repo["path"], repo["side"] + ":src/a.c")
    assert got == [(b"src/a.c", b"src/a.c", old, new)]


# ---------------------------------------------------------------- repository reads

def test_repository_reads(ch, repo):
    rs = repository_pb2_grpc.RepositoryServiceStub(ch)
    lic = rs.FindLicense(repository_pb2.FindLicenseRequest(repository=repo["repo"]))
    assert (lic.license_short_name, lic.license_path) == ("mit", "LICENSE")
    attrs = [(a.path, a.attribute, a.value) for a in rs.GetFileAttributes(
        repository_pb2.GetFileAttributesRequest(repository=repo["repo"], revision=b"main",
                                                attributes=["linguist-language"],
                                                paths=["lib/x.rb", "src/a.c"])).attribute_infos]
    assert attrs == [("lib/x.rb", "linguist-language", "Python")]
    assert b"".join(r.attributes for r in rs.GetInfoAttributes(
        repository_pb2.GetInfoAttributesRequest(repository=repo["repo"]))) == b""
    names = [f for r in rs.SearchFilesByName(repository_pb2.SearchFilesByNameRequest(
        repository=repo["repo"], query="src/", ref=b"main")) for f in r.files]
    assert names == [b"src/a.c"]
    hits = b"".join(r.match_data for r in rs.SearchFilesByContent(
        repository_pb2.SearchFilesByContentRequest(repository=repo["repo"], query="int b",
                                                   ref=b"main")))
    assert b"main:src/a.c" in hits
    changes = [(c.blob_id, c.operation) for r in rs.GetRawChanges(
        repository_pb2.GetRawChangesRequest(repository=repo["repo"], from_revision=ZERO64,
                                            to_revision=repo["base"])) for c in r.raw_changes]
    assert len(changes) == 7  # every file of base, added
    assert all(len(b) == 64 and op == 1 for b, op in changes)
    size = rs.ObjectsSize(iter([repository_pb2.ObjectsSizeRequest(
        repository=repo["repo"], revisions=[b"main"])])).size
    assert size == int(git("-C", repo["path"], "rev-list", "--disk-usage", "--objects", "main"))
    assert rs.Fsck(repository_pb2.FsckRequest(repository=repo["repo"])).error == b""
    bundle = b"".join(r.data for r in rs.CreateBundle(repository_pb2.CreateBundleRequest(
        repository=repo["repo"])))
    assert bundle.startswith(b"# v3 git bundle\n@object-format=sha256\n")
    bundle = b"".join(r.data for r in rs.CreateBundleFromRefList(iter([
        repository_pb2.CreateBundleFromRefListRequest(repository=repo["repo"],
                                                      patterns=[b"refs/heads/main"])])))
    assert ("%s refs/heads/main" % repo["merge"]).encode() in bundle
    tar = b"".join(r.data for r in rs.GetArchive(repository_pb2.GetArchiveRequest(
        repository=repo["repo"], commit_id=repo["merge"], prefix="p",
        format=repository_pb2.GetArchiveRequest.TAR)))
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert t.extractfile("p/src/a.c").read() == b"int a;\nint b;\n"
    snap = b"".join(r.data for r in rs.GetSnapshot(repository_pb2.GetSnapshotRequest(
        repository=repo["repo"])))
    with tarfile.open(fileobj=io.BytesIO(snap)) as t:
        names = t.getnames()
    assert "HEAD" in names
    # SHA-256 object file names: xx/<62 hex> and pack-<64 hex>.pack/.idx.
    on_disk = set()
    for d in ("objects/pack",) + tuple("objects/%02x" % i for i in range(256)):
        full = os.path.join(repo["path"], d)
        if os.path.isdir(full):
            on_disk |= {d + "/" + f for f in os.listdir(full)
                        if f.endswith((".pack", ".idx")) or d != "objects/pack"}
    assert on_disk and on_disk <= set(names)
    assert any(n.endswith(".pack") and len(os.path.basename(n)) == 5 + 64 + 5 for n in names)


def test_quarantined_objects_through_the_reader(ch, repo):
    """Objects only in a quarantine directory are seen by requests naming it
    (the cat-file reader gets its own cache key), and only by them."""
    qdir = os.path.join(repo["path"], "objects", "incoming-sha256")
    os.makedirs(qdir, exist_ok=True)
    env = {"GIT_OBJECT_DIRECTORY": qdir,
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(repo["path"], "objects")}
    blob = git("-C", repo["path"], "hash-object", "-w", "--stdin", input=b"quarantined\n",
               env=env).decode().strip()
    hexlen(blob)
    bs = blob_pb2_grpc.BlobServiceStub(ch)
    q = shared_pb2.Repository(storage_name="default", relative_path=repo["rel"],
                              git_object_directory="objects/incoming-sha256",
                              git_alternate_object_directories=["objects"])
    data = b"".join(r.data for r in bs.GetBlob(blob_pb2.GetBlobRequest(
        repository=q, oid=blob, limit=-1)))
    assert data == b"quarantined\n"
    # Objects of the repository itself are visible through the alternate.
    main_readme = revparse(repo["path"], "main:README.md")
    assert b"".join(r.data for r in bs.GetBlob(blob_pb2.GetBlobRequest(
        repository=q, oid=main_readme, limit=-1))) == b"# hello\nmore\n"
    # Without the quarantine the object does not exist: one empty message.
    r = list(bs.GetBlob(blob_pb2.GetBlobRequest(repository=repo["repo"], oid=blob, limit=-1)))
    assert len(r) == 1 and r[0].oid == "" and r[0].size == 0
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    got = {x.name: x.exists for resp in cs.CheckObjectsExist(iter([
        commit_pb2.CheckObjectsExistRequest(repository=q, revisions=[blob.encode()])]))
        for x in resp.revisions}
    assert got == {blob.encode(): True}


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_default_branch_fallbacks(ch, gitaly, fmt):
    """HEAD naming a missing branch, no main or master: the first branch by
    name is the default, for RefService and for CommitService's empty
    revision; a detached HEAD fails head_only as git symbolic-ref does. Both
    formats (libgit2 and the cat-file reader) answer alike."""
    rel = "@hashed/5a/26/%s-fallback.git" % fmt
    path = gitaly.path(rel)
    make_repo(path, object_format=fmt, default_branch="nope")
    b = fast_commit(path, {"b.c": b"int b;\n"}, "b", ref="refs/heads/beta")
    a = fast_commit(path, {"a.c": b"int a;\n"}, "a", ref="refs/heads/alpha")
    r = shared_pb2.Repository(storage_name="default", relative_path=rel)
    rs = ref_pb2_grpc.RefServiceStub(ch)
    cs = commit_pb2_grpc.CommitServiceStub(ch)
    assert rs.FindDefaultBranchName(ref_pb2.FindDefaultBranchNameRequest(
        repository=r)).name == b"refs/heads/alpha"
    assert rs.FindDefaultBranchName(ref_pb2.FindDefaultBranchNameRequest(
        repository=r, head_only=True)).name == b"refs/heads/nope"
    files = [p for resp in cs.ListFiles(commit_pb2.ListFilesRequest(repository=r))
             for p in resp.paths]
    assert files == [b"a.c"]
    git("-C", path, "update-ref", "--no-deref", "HEAD", b)
    e = rpc_error(rs.FindDefaultBranchName, ref_pb2.FindDefaultBranchNameRequest(
        repository=r, head_only=True))
    assert_code(e, grpc.StatusCode.INTERNAL, "head reference: exit status 128")
    assert a != b


def test_large_blob_streamed(ch, repo):
    """Blobs over 8 MiB are streamed from git rather than read whole: the
    bytes and the 128 KiB chunking are the same on SHA-256."""
    data = hashlib.sha256(b"seed").digest() * (9 * 1024 * 1024 // 32 + 7)
    oid = git("-C", repo["path"], "hash-object", "-w", "--stdin", input=data).decode().strip()
    bs = blob_pb2_grpc.BlobServiceStub(ch)
    msgs = list(bs.GetBlob(blob_pb2.GetBlobRequest(repository=repo["repo"], oid=oid, limit=-1)))
    assert msgs[0].oid == hexlen(oid) and msgs[0].size == len(data)
    assert all(len(m.data) == 128 * 1024 for m in msgs[:-1])
    assert b"".join(m.data for m in msgs) == data
    part = b"".join(m.data for m in bs.GetBlob(blob_pb2.GetBlobRequest(
        repository=repo["repo"], oid=oid, limit=200000)))
    assert part == data[:200000]


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_ref_exists_alike_on_both_formats(ch, gitaly, fmt):
    """RefExists as upstream's show-ref --verify on both formats: a present
    ref, an absent one, and a ref to a missing object (an error)."""
    rel = "@hashed/5a/27/%s-exists.git" % fmt
    path = gitaly.path(rel)
    make_repo(path, object_format=fmt)
    fast_commit(path, {"a": b"a\n"}, "a", ref="refs/heads/main")
    with open(os.path.join(path, "refs", "heads", "ghost"), "w") as f:
        f.write("e" * (64 if fmt == "sha256" else 40) + "\n")
    r = shared_pb2.Repository(storage_name="default", relative_path=rel)
    rs = ref_pb2_grpc.RefServiceStub(ch)
    assert rs.RefExists(ref_pb2.RefExistsRequest(repository=r, ref=b"refs/heads/main")).value
    assert not rs.RefExists(ref_pb2.RefExistsRequest(repository=r, ref=b"refs/heads/x")).value
    e = rpc_error(rs.RefExists, ref_pb2.RefExistsRequest(repository=r, ref=b"refs/heads/ghost"))
    assert_code(e, grpc.StatusCode.INTERNAL, "exit status 128")
