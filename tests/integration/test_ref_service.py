"""RefService over the wire, every answer compared with what the git CLI says
about the same repository (for-each-ref with the same sort, cat-file,
merge-base --is-ancestor), plus upstream's edge cases: pagination tokens,
unknown revisions, ambiguous refs, a revision starting with '-', non-UTF-8
names and messages, and the typed error details."""

import hashlib
import os

import grpc
import pytest

import errors_pb2
import ref_pb2 as rp
import ref_pb2_grpc
import shared_pb2
import status_pb2
from conftest import assert_code, commit, git, make_repo, rpc_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
INTERNAL = grpc.StatusCode.INTERNAL
ABORTED = grpc.StatusCode.ABORTED

N_BRANCHES = 1200
N_TAGS = 300
FAKE_SIG = (b"-----BEGIN PGP SIGNATURE-----\n\n"
            b"iQEzBAABCAAdFiEEfakefakefakefakefakefakefakefakeFAKE\n"
            b"=ABCD\n-----END PGP SIGNATURE-----\n")


@pytest.fixture(scope="module")
def ch(gitaly):
    c = gitaly.channel("unix")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(ch):
    return ref_pb2_grpc.RefServiceStub(ch)


_n = [0]


def fresh_rel():
    _n[0] += 1
    h = hashlib.sha256(("ref%d" % _n[0]).encode()).hexdigest()
    return "@hashed/%s/%s/%s.git" % (h[:2], h[2:4], h)


def mktag(path, target, name, message, typ="commit", tagger_date=1700000000, sig=b""):
    body = ("object %s\ntype %s\ntag %s\ntagger T <t@example.com> %d +0200\n\n" % (
        target, typ, name, tagger_date)).encode() + message + sig
    oid = git("-C", path, "hash-object", "-t", "tag", "-w", "--stdin", input=body).decode().strip()
    git("-C", path, "update-ref", "refs/tags/" + name, oid)
    return oid, body


@pytest.fixture(scope="module")
def big(gitaly):
    """Thousands of branches with distinct committer dates, annotated,
    signed, nested and non-commit tags, remote branches, non-UTF-8."""
    rel = fresh_rel()
    path = gitaly.path(rel)
    make_repo(path)
    base = commit(path, {"README": b"base\n"}, "base", date=1600000000)
    side = commit(path, {"README": b"side\n"}, "side\n\nbody of side", [base], date=1600000500)
    git("-C", path, "update-ref", "refs/heads/side", side)
    lines = []
    prev = base
    commits = []
    for i in range(60):
        prev = commit(path, {"README": ("c%d\n" % i).encode()},
                      "commit %d" % i, [prev], date=1600001000 + 97 * i)
        commits.append(prev)
    for i in range(N_BRANCHES):
        lines.append("create refs/heads/b%04d %s" % (i, commits[(i * 7) % len(commits)]))
    lines.append("create refs/heads/main %s" % commits[-1])
    for i in range(N_TAGS):
        lines.append("create refs/tags/lw%03d %s" % (i, commits[i % len(commits)]))
    lines.append("create refs/remotes/origin/main %s" % commits[-1])
    lines.append("create refs/remotes/origin/old %s" % base)
    lines.append("create refs/remotes/up/x %s" % side)
    git("-C", path, "update-ref", "--stdin", input=("\n".join(lines) + "\n").encode())
    # Non-UTF-8 message and branch name.
    tree = git("-C", path, "rev-parse", base + "^{tree}").decode().strip()
    raw = ("tree %s\nparent %s\nauthor J\xe9r\xf4me <j@example.com> 1600000001 -0130\n"
           "committer Bad Date <b@example.com> notanumber +0000\n\n" % (tree, base)).encode("latin-1") + b"caf\xe9\r\n\nbody\n"
    latin = git("-C", path, "hash-object", "-t", "commit", "-w", "--stdin", "--literally",
                input=raw).decode().strip()
    env_name = b"refs/heads/caf\xe9-branch"
    git("-C", path, "update-ref", "--stdin",
        input=b"create " + env_name + b" " + latin.encode() + b"\n")
    blob = git("-C", path, "hash-object", "-w", "--stdin", input=b"blob\n").decode().strip()
    ann, _ = mktag(path, commits[3], "v1.0", b"Release 1.0\n\nnotes\n\n\n")
    signed, signed_body = mktag(path, commits[4], "v2.0-signed", b"signed tag\n", sig=FAKE_SIG)
    nested, _ = mktag(path, ann, "v1.0-nested", b"nested\n", typ="tag")
    blobtag, _ = mktag(path, blob, "blob-tag", b"a blob\n", typ="blob")
    long_msg = b"L" * (200 * 1024) + b"\n"
    longtag, _ = mktag(path, commits[5], "long", long_msg)
    git("-C", path, "update-ref", "refs/tags/lw-blob", blob)
    return dict(rel=rel, path=path, base=base, side=side, commits=commits, latin=latin,
                blob=blob, ann=ann, signed=signed, signed_body=signed_body, nested=nested,
                blobtag=blobtag, longtag=longtag, long_msg=long_msg)


def fer(path, *args):
    """for-each-ref lines (bytes)."""
    out = git("-C", path, "for-each-ref", *args)
    return [l for l in out.split(b"\n") if l]


def details(err):
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status()
            st.ParseFromString(v)
            return st
    return None


def detail_of(err, cls):
    st = details(err)
    assert st is not None, "no status details"
    for d in st.details:
        if d.type_url == "type.googleapis.com/" + cls.DESCRIPTOR.full_name:
            m = cls()
            m.ParseFromString(d.value)
            return m
    raise AssertionError("no %s detail in %r" % (cls.DESCRIPTOR.full_name, st))


# ---------------------------------------------------------------- branches

@pytest.mark.parametrize("sort,gitsort", [
    (rp.FindLocalBranchesRequest.NAME, "refname"),
    (rp.FindLocalBranchesRequest.UPDATED_ASC, "committerdate"),
    (rp.FindLocalBranchesRequest.UPDATED_DESC, "-committerdate"),
])
def test_find_local_branches_matches_for_each_ref(gitaly, stub, big, sort, gitsort):
    msgs = list(stub.FindLocalBranches(rp.FindLocalBranchesRequest(
        repository=gitaly.repo(big["rel"]), sort_by=sort), timeout=60))
    got = [(b.name, b.target_commit.id) for m in msgs for b in m.local_branches]
    want = [tuple(l.split(b" ")) for l in fer(big["path"], "--sort=" + gitsort,
                                              "--format=%(refname) %(objectname)", "refs/heads")]
    assert [(n, o.encode()) for n, o in got] == want
    # upstream chunks 20 refs per message
    assert all(len(m.local_branches) == 20 for m in msgs[:-1])
    assert 0 < len(msgs[-1].local_branches) <= 20


def test_branch_commit_fields(gitaly, stub, big):
    r = stub.FindBranch(rp.FindBranchRequest(repository=gitaly.repo(big["rel"]), name=b"side"))
    c = r.branch.target_commit
    assert r.branch.name == b"side"
    assert c.id == big["side"]
    assert c.subject == b"side"
    assert c.body == b"side\n\nbody of side\n"
    assert c.body_size == len(c.body)
    assert list(c.parent_ids) == [big["base"]]
    assert c.tree_id == git("-C", big["path"], "rev-parse", big["side"] + "^{tree}").decode().strip()
    assert c.author.name == b"Test Author" and c.author.email == b"author@example.com"
    assert c.author.date.seconds == 1600000500 and c.author.timezone == b"+0000"
    assert c.committer.name == b"Test Committer"
    # non-UTF-8 branch name and message survive byte for byte
    r = stub.FindBranch(rp.FindBranchRequest(repository=gitaly.repo(big["rel"]),
                                             name=b"caf\xe9-branch"))
    assert r.branch.name == b"caf\xe9-branch"
    lc = r.branch.target_commit
    assert lc.subject == b"caf\xe9"
    assert lc.author.name == b"J\xe9r\xf4me" and lc.author.timezone == b"-0130"
    assert lc.author.date.seconds == 1600000001
    # an unparsable date becomes upstream's fallback (Go's maximum time)
    assert lc.committer.date.seconds == 9223371974719179007


def test_find_branch_edge_cases(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    assert not stub.FindBranch(rp.FindBranchRequest(repository=repo, name=b"nope")).HasField("branch")
    e = rpc_error(stub.FindBranch, rp.FindBranchRequest(repository=repo, name=b""))
    assert_code(e, INVALID, "Branch name cannot be empty")
    # "refs/heads/origin" does not exist but would match refs/heads/origin/...
    git("-C", big["path"], "update-ref", "refs/heads/amb/child", big["base"])
    try:
        e = rpc_error(stub.FindBranch, rp.FindBranchRequest(repository=repo, name=b"amb"))
        assert_code(e, INVALID, 'target reference is ambiguous: reference is ambiguous: '
                    'conflicts with "refs/heads/amb/child"')
    finally:
        git("-C", big["path"], "update-ref", "-d", "refs/heads/amb/child")
    e = rpc_error(stub.FindBranch, rp.FindBranchRequest(
        repository=gitaly.repo("does/not/exist.git"), name=b"x"))
    assert_code(e, NOT_FOUND)


def test_local_branches_pagination(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    names = [l for l in fer(big["path"], "--format=%(refname)", "refs/heads")]

    def page(**kw):
        return [b.name for m in stub.FindLocalBranches(rp.FindLocalBranchesRequest(
            repository=repo, pagination_params=shared_pb2.PaginationParameter(**kw)))
            for b in m.local_branches]

    assert page(limit=5) == names[:5]
    assert page(limit=7, page_token=names[10].decode()) == names[11:18]
    assert page(limit=0) == []
    assert page(limit=-1) == names
    assert page(page_token=names[-1].decode(), limit=10) == []
    e = rpc_error(page, limit=3, page_token="refs/heads/does-not-exist")
    assert_code(e, INTERNAL, "finding refs: sending lines: could not find page token")


def test_find_all_branches(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    got = [(b.name, b.target.id) for m in stub.FindAllBranches(
        rp.FindAllBranchesRequest(repository=repo)) for b in m.branches]
    want = [tuple(l.split(b" ")) for l in fer(big["path"], "--format=%(refname) %(objectname)",
                                              "refs/heads", "refs/remotes")]
    assert [(n, o.encode()) for n, o in got] == want
    merged = [b.name for m in stub.FindAllBranches(rp.FindAllBranchesRequest(
        repository=repo, merged_only=True, merged_branches=[b"refs/heads/side",
                                                            b"refs/heads/b0001"]))
        for b in m.branches]
    assert merged == fer(big["path"], "--format=%(refname)", "--merged=refs/heads/main",
                         "refs/heads/side", "refs/heads/b0001")
    assert merged == [b"refs/heads/b0001"]


def test_find_all_remote_branches(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    got = [b.name for m in stub.FindAllRemoteBranches(rp.FindAllRemoteBranchesRequest(
        repository=repo, remote_name="origin")) for b in m.branches]
    assert got == [b"refs/remotes/origin/main", b"refs/remotes/origin/old"]
    e = rpc_error(lambda: list(stub.FindAllRemoteBranches(
        rp.FindAllRemoteBranchesRequest(repository=repo))))
    assert_code(e, INVALID, "empty RemoteName")


def test_default_branch(gitaly, stub):
    rel = fresh_rel()
    path = gitaly.path(rel)
    make_repo(path, default_branch="trunk")
    repo = gitaly.repo(rel)
    # empty repository: nothing to name
    assert stub.FindDefaultBranchName(rp.FindDefaultBranchNameRequest(repository=repo)).name == b""
    assert stub.FindDefaultBranchName(rp.FindDefaultBranchNameRequest(
        repository=repo, head_only=True)).name == b"refs/heads/trunk"
    c = commit(path, {"a": b"a"}, "a", ref="refs/heads/zeta")
    git("-C", path, "update-ref", "refs/heads/alpha", c)
    assert stub.FindDefaultBranchName(rp.FindDefaultBranchNameRequest(repository=repo)).name == b"refs/heads/alpha"
    git("-C", path, "update-ref", "refs/heads/master", c)
    assert stub.FindDefaultBranchName(rp.FindDefaultBranchNameRequest(repository=repo)).name == b"refs/heads/master"
    git("-C", path, "update-ref", "refs/heads/main", c)
    assert stub.FindDefaultBranchName(rp.FindDefaultBranchNameRequest(repository=repo)).name == b"refs/heads/main"
    git("-C", path, "update-ref", "refs/heads/trunk", c)
    assert stub.FindDefaultBranchName(rp.FindDefaultBranchNameRequest(repository=repo)).name == b"refs/heads/trunk"


def test_ref_exists(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    for ref, want in [(b"refs/heads/main", True), (b"refs/heads/nope", False),
                      (b"refs/tags/v1.0", True), (b"refs/heads/caf\xe9-branch", True),
                      (b"refs/heads/../x", False), (b"refs/heads", False)]:
        assert stub.RefExists(rp.RefExistsRequest(repository=repo, ref=ref)).value is want, ref
    for bad in (b"main", b"HEAD", b""):
        assert_code(rpc_error(stub.RefExists, rp.RefExistsRequest(repository=repo, ref=bad)),
                    INVALID, "invalid refname")


# ---------------------------------------------------------------- tags

@pytest.mark.parametrize("sort,gitsort", [
    (None, None),
    (rp.FindAllTagsRequest.SortBy(key=rp.FindAllTagsRequest.SortBy.REFNAME,
                                  direction=shared_pb2.DESCENDING), "-refname"),
    (rp.FindAllTagsRequest.SortBy(key=rp.FindAllTagsRequest.SortBy.CREATORDATE), "creatordate"),
    (rp.FindAllTagsRequest.SortBy(key=rp.FindAllTagsRequest.SortBy.VERSION_REFNAME,
                                  direction=shared_pb2.DESCENDING), "-version:refname"),
])
def test_find_all_tags_matches_git(gitaly, stub, big, sort, gitsort):
    req = rp.FindAllTagsRequest(repository=gitaly.repo(big["rel"]))
    if sort is not None:
        req.sort_by.CopyFrom(sort)
    tags = [t for m in stub.FindAllTags(req, timeout=60) for t in m.tags]
    args = ["--format=%(refname:lstrip=2) %(objectname)"]
    if gitsort:
        args.append("--sort=" + gitsort)
    want = [tuple(l.split(b" ")) for l in fer(big["path"], *args, "refs/tags/")]
    assert [(t.name, t.id.encode()) for t in tags] == want
    by = {t.name: t for t in tags}
    ann = by[b"v1.0"]
    assert ann.message == b"Release 1.0\n\nnotes"  # trailing newlines trimmed
    assert ann.message_size == len(ann.message)
    assert ann.tagger.name == b"T" and ann.tagger.timezone == b"+0200"
    assert ann.target_commit.id == big["commits"][3]
    assert by[b"v2.0-signed"].signature_type == shared_pb2.PGP
    assert by[b"v1.0-nested"].target_commit.id == big["commits"][3]
    assert not by[b"blob-tag"].HasField("target_commit")
    assert not by[b"lw-blob"].HasField("target_commit") and by[b"lw-blob"].id == big["blob"]
    assert by[b"lw000"].target_commit.id == big["commits"][0] and by[b"lw000"].message == b""
    long = by[b"long"]
    assert len(long.message) == 10 * 1024 and long.message_size == len(big["long_msg"]) - 1


def test_find_all_tags_pagination(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    names = [l for l in fer(big["path"], "--format=%(refname)", "refs/tags/")]

    def page(**kw):
        return [b"refs/tags/" + t.name for m in stub.FindAllTags(rp.FindAllTagsRequest(
            repository=repo, pagination_params=shared_pb2.PaginationParameter(**kw))) for t in m.tags]

    assert page(limit=4) == names[:4]
    assert page(limit=4, page_token=names[2].decode()) == names[3:7]
    assert page(limit=0) == []
    e = rpc_error(page, limit=2, page_token="refs/tags/zzz-missing")
    assert_code(e, INVALID, "could not find page token")
    e = rpc_error(lambda: list(stub.FindAllTags(rp.FindAllTagsRequest(
        repository=repo, sort_by=rp.FindAllTagsRequest.SortBy(key=7)))))
    assert_code(e, INVALID, "unsupported sorting key: 7")


def test_find_tag(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    t = stub.FindTag(rp.FindTagRequest(repository=repo, tag_name=b"v1.0")).tag
    assert t.id == big["ann"] and t.name == b"v1.0" and t.target_commit.id == big["commits"][3]
    t = stub.FindTag(rp.FindTagRequest(repository=repo, tag_name=b"lw001")).tag
    assert t.id == big["commits"][1] and t.target_commit.id == big["commits"][1]
    e = rpc_error(stub.FindTag, rp.FindTagRequest(repository=repo, tag_name=b"missing"))
    assert_code(e, NOT_FOUND, "tag does not exist")
    d = detail_of(e, rp.FindTagError)
    assert d.tag_not_found.reference_name == b"refs/tags/missing"
    assert_code(rpc_error(stub.FindTag, rp.FindTagRequest(repository=repo)), INVALID,
                "tag name is empty")


def test_tag_signatures(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    sigs = [s for m in stub.GetTagSignatures(rp.GetTagSignaturesRequest(
        repository=repo, tag_revisions=[big["signed"], big["ann"]])) for s in m.signatures]
    by = {s.tag_id: s for s in sigs}
    assert set(by) == {big["signed"], big["ann"]}
    s = by[big["signed"]]
    raw = git("-C", big["path"], "cat-file", "tag", big["signed"])
    assert s.content + s.signature + b"\n" == raw
    assert s.signature == FAKE_SIG.rstrip(b"\n")
    assert by[big["ann"]].signature == b"" and by[big["ann"]].content == git(
        "-C", big["path"], "cat-file", "tag", big["ann"])
    e = rpc_error(lambda: list(stub.GetTagSignatures(rp.GetTagSignaturesRequest(
        repository=repo, tag_revisions=["-x"]))))
    assert_code(e, INVALID, "invalid revision: revision can't start with '-'")
    e = rpc_error(lambda: list(stub.GetTagSignatures(rp.GetTagSignaturesRequest(repository=repo))))
    assert_code(e, INVALID, "missing revisions")
    e = rpc_error(lambda: list(stub.GetTagSignatures(rp.GetTagSignaturesRequest(
        repository=repo, tag_revisions=["0" * 39 + "1"]))))
    assert_code(e, INTERNAL, contains="rev-list pipeline command: exit status 128")


def test_tag_messages(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    msgs = list(stub.GetTagMessages(rp.GetTagMessagesRequest(
        repository=repo, tag_ids=[big["longtag"], big["ann"]])))
    out, cur = {}, None
    for m in msgs:
        if m.tag_id:
            cur = m.tag_id
            out[cur] = b""
        out[cur] += m.message
    assert out[big["longtag"]] == big["long_msg"]  # whole, untruncated
    assert out[big["ann"]] == b"Release 1.0\n\nnotes\n\n\n"
    assert max(len(m.message) for m in msgs) == 128 * 1024
    e = rpc_error(lambda: list(stub.GetTagMessages(rp.GetTagMessagesRequest(
        repository=repo, tag_ids=[big["base"]]))))
    assert_code(e, INTERNAL, "getting tag: expected tag, got commit")


# ---------------------------------------------------------------- listings

def test_list_refs(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    msgs = list(stub.ListRefs(rp.ListRefsRequest(repository=repo, patterns=[b"refs/"],
                                                 head=True, peel_tags=True), timeout=60))
    refs = [(r.name, r.target, r.peeled_target) for m in msgs for r in m.references]
    head = git("-C", big["path"], "rev-parse", "HEAD").decode().strip()
    assert refs[0] == (b"HEAD", head, "")
    want = [tuple(l.split(b"\0")) for l in fer(
        big["path"], "--format=%(refname)%00%(objectname)%00%(*objectname)", "refs/")]
    assert [(n, t.encode(), p.encode()) for n, t, p in refs[1:]] == want
    assert len(msgs[0].references) == 21 and all(len(m.references) == 20 for m in msgs[1:-1])
    # sorting and points-at
    refs = [r.name for m in stub.ListRefs(rp.ListRefsRequest(
        repository=repo, patterns=[b"refs/heads/b00*"], sort_by=rp.ListRefsRequest.SortBy(
            key=rp.ListRefsRequest.SortBy.COMMITTERDATE, direction=shared_pb2.DESCENDING)))
        for r in m.references]
    assert refs == fer(big["path"], "--format=%(refname)", "--sort=-committerdate", "refs/heads/b00*")
    refs = [r.name for m in stub.ListRefs(rp.ListRefsRequest(
        repository=repo, patterns=[b"refs/"], pointing_at_oids=[big["commits"][3].encode()]))
        for r in m.references]
    assert refs == fer(big["path"], "--format=%(refname)", "--points-at=" + big["commits"][3], "refs/")
    # no match: nothing, not even HEAD
    assert list(stub.ListRefs(rp.ListRefsRequest(repository=repo, patterns=[b"refs/none/"],
                                                 head=True))) == []
    e = rpc_error(lambda: list(stub.ListRefs(rp.ListRefsRequest(repository=repo))))
    assert_code(e, INVALID, "patterns must have at least one entry")
    e = rpc_error(lambda: list(stub.ListRefs(rp.ListRefsRequest(
        repository=repo, patterns=[b"refs/"], sort_by=rp.ListRefsRequest.SortBy(key=9)))))
    assert_code(e, INVALID, 'sorting key "9" is not supported')


def test_find_refs_by_oid(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    oid = big["commits"][3]
    r = stub.FindRefsByOID(rp.FindRefsByOIDRequest(repository=repo, oid=oid))
    assert [x.encode() for x in r.refs] == fer(big["path"], "--format=%(refname)",
                                               "--points-at=" + oid, "refs/tags/", "refs/heads/")
    r = stub.FindRefsByOID(rp.FindRefsByOIDRequest(repository=repo, oid=oid, limit=2,
                                                   ref_patterns=["refs/heads/"],
                                                   sort_field="-refname"))
    assert [x.encode() for x in r.refs] == fer(big["path"], "--format=%(refname)", "--count=2",
                                               "--sort=-refname", "--points-at=" + oid, "refs/heads/")
    assert_code(rpc_error(stub.FindRefsByOID, rp.FindRefsByOIDRequest(repository=repo)),
                INVALID, "empty Oid")
    e = rpc_error(stub.FindRefsByOID, rp.FindRefsByOIDRequest(repository=repo, oid="nonsense"))
    assert_code(e, INVALID, "for-each-ref pipeline command: exit status 129")
    e = rpc_error(stub.FindRefsByOID, rp.FindRefsByOIDRequest(repository=repo, oid=oid,
                                                              sort_field="nonsense"))
    assert_code(e, INTERNAL, "for-each-ref pipeline command: exit status 128")


def test_names_containing_commit(gitaly, stub, big):
    repo = gitaly.repo(big["rel"])
    c = big["commits"][40]
    got = [n for m in stub.ListBranchNamesContainingCommit(
        rp.ListBranchNamesContainingCommitRequest(repository=repo, commit_id=c)) for n in m.branch_names]
    want = [l[len(b"refs/heads/"):] for l in fer(big["path"], "--format=%(refname)",
                                                 "--contains=" + c, "refs/heads")]
    assert got == want and len(got) > 100
    # each one really contains it
    for name in got[:5]:
        git("-C", big["path"], "merge-base", "--is-ancestor", c, b"refs/heads/" + name)
    got = [n for m in stub.ListTagNamesContainingCommit(rp.ListTagNamesContainingCommitRequest(
        repository=repo, commit_id=big["commits"][3], limit=3)) for n in m.tag_names]
    assert got == [l[len(b"refs/tags/"):] for l in fer(
        big["path"], "--format=%(refname)", "--count=3", "--contains=" + big["commits"][3], "refs/tags")]
    e = rpc_error(lambda: list(stub.ListBranchNamesContainingCommit(
        rp.ListBranchNamesContainingCommitRequest(repository=repo, commit_id="abc"))))
    assert_code(e, INVALID, 'invalid object ID: "abc", expected length 40, got 3')
    e = rpc_error(lambda: list(stub.ListTagNamesContainingCommit(
        rp.ListTagNamesContainingCommitRequest(repository=repo, commit_id="-" * 40))))
    assert_code(e, INVALID, 'invalid object ID: "%s", invalid character \'-\'' % ("-" * 40))


# ---------------------------------------------------------------- mutators

def small_repo(gitaly):
    rel = fresh_rel()
    path = gitaly.path(rel)
    make_repo(path)
    a = commit(path, {"f": b"a"}, "a", ref="refs/heads/main")
    b = commit(path, {"f": b"b"}, "b", [a], ref="refs/heads/feature")
    return rel, path, a, b


def refs_of(path):
    return dict(l.split(b" ")[::-1] for l in fer(path, "--format=%(objectname) %(refname)"))


def test_update_references(gitaly, stub):
    rel, path, a, b = small_repo(gitaly)
    U = rp.UpdateReferencesRequest.Update
    reqs = [rp.UpdateReferencesRequest(repository=gitaly.repo(rel), updates=[
        U(reference=b"refs/heads/new", new_object_id=a.encode(), old_object_id=b"0" * 40)]),
        rp.UpdateReferencesRequest(updates=[
            U(reference=b"refs/heads/main", new_object_id=b.encode(), old_object_id=a.encode()),
            U(reference=b"refs/heads/feature", new_object_id=b"0" * 40)])]
    stub.UpdateReferences(iter(reqs))
    assert refs_of(path) == {b"refs/heads/new": a.encode(), b"refs/heads/main": b.encode()}

    # stale old value: Aborted with the mismatch, nothing changed
    before = refs_of(path)
    e = rpc_error(stub.UpdateReferences, iter([rp.UpdateReferencesRequest(
        repository=gitaly.repo(rel), updates=[
            U(reference=b"refs/heads/x", new_object_id=a.encode()),
            U(reference=b"refs/heads/main", new_object_id=a.encode(), old_object_id=a.encode())])]))
    assert_code(e, ABORTED, "reference does not point to expected object")
    d = detail_of(e, rp.UpdateReferencesError).reference_state_mismatch
    assert (d.reference_name, d.expected_object_id, d.actual_object_id) == (
        b"refs/heads/main", a.encode(), b.encode())
    assert refs_of(path) == before

    # invalid reference name
    e = rpc_error(stub.UpdateReferences, iter([rp.UpdateReferencesRequest(
        repository=gitaly.repo(rel), updates=[U(reference=b"refs/heads/a..b",
                                                new_object_id=a.encode())])]))
    assert_code(e, INVALID, "validating reference: reference must not contain double dots")
    assert list(detail_of(e, rp.UpdateReferencesError).invalid_format.refs) == [b"refs/heads/a..b"]

    # locked reference
    open(os.path.join(path, "refs", "heads", "main.lock"), "w").close()
    try:
        e = rpc_error(stub.UpdateReferences, iter([rp.UpdateReferencesRequest(
            repository=gitaly.repo(rel), updates=[U(reference=b"refs/heads/main",
                                                    new_object_id=a.encode())])]))
        assert_code(e, ABORTED, "reference is already locked")
        assert list(detail_of(e, rp.UpdateReferencesError).references_locked.refs) == [b"refs/heads/main"]
    finally:
        os.unlink(os.path.join(path, "refs", "heads", "main.lock"))
    assert refs_of(path) == before

    # missing object, bad oids, no updates, repository repeated
    e = rpc_error(stub.UpdateReferences, iter([rp.UpdateReferencesRequest(
        repository=gitaly.repo(rel), updates=[U(reference=b"refs/heads/m",
                                                new_object_id=b"1" * 40)])]))
    assert_code(e, NOT_FOUND, "target object missing")
    e = rpc_error(stub.UpdateReferences, iter([rp.UpdateReferencesRequest(
        repository=gitaly.repo(rel), updates=[U(reference=b"refs/heads/m", new_object_id=b"xyz")])]))
    assert_code(e, INVALID, 'validating new object ID: invalid object ID: "xyz", expected length 40, got 3')
    e = rpc_error(stub.UpdateReferences, iter([rp.UpdateReferencesRequest(repository=gitaly.repo(rel))]))
    assert_code(e, INVALID, "no updates specified")
    e = rpc_error(stub.UpdateReferences, iter([
        rp.UpdateReferencesRequest(repository=gitaly.repo(rel), updates=[
            U(reference=b"refs/heads/m", new_object_id=a.encode())]),
        rp.UpdateReferencesRequest(repository=gitaly.repo(rel), updates=[
            U(reference=b"refs/heads/n", new_object_id=a.encode())])]))
    assert_code(e, INVALID, "repository set in subsequent request")
    assert refs_of(path) == before


def test_delete_refs(gitaly, stub):
    rel, path, a, b = small_repo(gitaly)
    repo = gitaly.repo(rel)
    git("-C", path, "update-ref", "refs/keep-around/x", a)
    git("-C", path, "update-ref", "refs/merge-requests/1/head", b)
    stub.DeleteRefs(rp.DeleteRefsRequest(repository=repo, refs=[b"refs/heads/feature"]))
    assert set(refs_of(path)) == {b"refs/heads/main", b"refs/keep-around/x",
                                  b"refs/merge-requests/1/head"}
    stub.DeleteRefs(rp.DeleteRefsRequest(repository=repo, except_with_prefix=[b"refs/heads/",
                                                                              b"refs/keep"]))
    assert set(refs_of(path)) == {b"refs/heads/main", b"refs/keep-around/x"}

    e = rpc_error(stub.DeleteRefs, rp.DeleteRefsRequest(repository=repo, refs=[b"refs/heads/main",
                                                                               b"-bad", b"a b"]))
    assert_code(e, INVALID, "invalid references")
    assert list(detail_of(e, rp.DeleteRefsError).invalid_format.refs) == [b"-bad", b"a b"]
    open(os.path.join(path, "refs", "heads", "main.lock"), "w").close()
    try:
        e = rpc_error(stub.DeleteRefs, rp.DeleteRefsRequest(repository=repo, refs=[b"refs/heads/main"]))
        assert_code(e, ABORTED, "cannot lock references")
        assert list(detail_of(e, rp.DeleteRefsError).references_locked.refs) == [b"refs/heads/main"]
    finally:
        os.unlink(os.path.join(path, "refs", "heads", "main.lock"))
    for req, msg in [(rp.DeleteRefsRequest(repository=repo), "empty ExceptWithPrefix and Refs"),
                     (rp.DeleteRefsRequest(repository=repo, refs=[b"x"], except_with_prefix=[b"y"]),
                      "ExceptWithPrefix and Refs are mutually exclusive"),
                     (rp.DeleteRefsRequest(repository=repo, refs=[b""]), "empty ref"),
                     (rp.DeleteRefsRequest(repository=repo, except_with_prefix=[b""]),
                      "empty prefix for exclusion")]:
        assert_code(rpc_error(stub.DeleteRefs, req), INVALID, msg)
    assert set(refs_of(path)) == {b"refs/heads/main", b"refs/keep-around/x"}


def test_repository_validation(gitaly, stub):
    e = rpc_error(lambda: list(stub.FindLocalBranches(rp.FindLocalBranchesRequest())))
    assert_code(e, INVALID, "repository not set")
    e = rpc_error(stub.RefExists, rp.RefExistsRequest(repository=gitaly.repo("nope.git"),
                                                      ref=b"refs/heads/x"))
    assert_code(e, NOT_FOUND)
