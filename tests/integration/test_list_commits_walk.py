"""ListCommits' in-process walk (plain positive revisions, no option) against
git rev-list on histories where the order is easy to get wrong: merges and
criss-cross merges, many commits with the same committer date, a child
dated before its parent (clock skew), several start revisions in either
order, an annotated tag as a start, revision suffixes, pagination. Also
that what the walk must not answer still comes from rev-list (shallow
repositories, exclusions, ranges, options) and that replace refs are
ignored by both, as gitaly's git is configured."""

import pytest

import commit_pb2 as cp
import commit_pb2_grpc
import shared_pb2
from conftest import commit, git, git_supports_sha256, make_repo

T = 1600000000


@pytest.fixture(scope="module")
def stub(gitaly):
    ch = gitaly.channel("unix")
    yield commit_pb2_grpc.CommitServiceStub(ch)
    ch.close()


def sh(path, *args, **kw):
    return git("-C", path, *args, **kw)


@pytest.fixture(scope="module", params=["sha1", "sha256"])
def dag(gitaly, request):
    """main and side with merges both ways, equal dates and clock skew. In
    a SHA-1 repository (libgit2) the walk answers; a SHA-256 one (cat-file
    reader) leaves every request to rev-list, with the same answers."""
    fmt = request.param
    if fmt == "sha256" and not git_supports_sha256():
        pytest.skip("git without sha256")
    rel = "walk.git" if fmt == "sha1" else "walk-sha256.git"
    path = gitaly.path(rel)
    make_repo(path, object_format=fmt)
    n = [0]

    def c(parents, date):
        n[0] += 1
        return commit(path, {"f": b"%d\n" % n[0]}, "c%d" % n[0], parents, date=T + date)

    root = c([], 1000)
    a = [root]
    b = [root]
    for i in range(12):
        # same date on both lines, every third commit older than its parent
        d = 2000 + (i // 3) * 10 - (5 if i % 3 == 2 else 0)
        a.append(c([a[-1]], d))
        b.append(c([b[-1]], d))
        if i % 4 == 3:
            a.append(c([a[-1], b[-1]], d))   # merge side into main
            b.append(c([b[-1], a[-2]], d))   # criss-cross
    octo = c([a[-1], b[-1], a[3]], 2100)
    sh(path, "update-ref", "refs/heads/main", octo)
    sh(path, "update-ref", "refs/heads/side", b[-1])
    sh(path, "update-ref", "refs/heads/old", a[4])
    sh(path, "tag", "-a", "-m", "v1", "v1", a[6])
    return shared_pb2.Repository(storage_name="default", relative_path=rel), path


def ids(stub, repo, revs, **kw):
    return [c.id for r in stub.ListCommits(cp.ListCommitsRequest(repository=repo, revisions=revs, **kw))
            for c in r.commits]


@pytest.mark.parametrize("revs", [
    ["main"], ["side"], ["main", "side"], ["side", "main"], ["old", "main"], ["v1"],
    ["main~2"], ["main^2"], ["main^3", "side~1"], ["HEAD"],
])
def test_walk_order_matches_rev_list(stub, dag, revs):
    repo, path = dag
    want = sh(path, "rev-list", *revs).decode().split()
    assert len(want) > 1
    assert ids(stub, repo, revs) == want


def test_walk_commit_fields(stub, dag):
    repo, path = dag
    resp = list(stub.ListCommits(cp.ListCommitsRequest(repository=repo, revisions=["main"])))
    first = resp[0].commits[0]
    assert first.id == sh(path, "rev-parse", "main").decode().strip()
    assert list(first.parent_ids) == sh(path, "log", "-1", "--format=%P", "main").decode().split()
    assert first.subject == sh(path, "log", "-1", "--format=%s", "main").strip()


def test_walk_pagination(stub, dag):
    repo, path = dag
    every = sh(path, "rev-list", "main", "side").decode().split()
    page = ids(stub, repo, ["main", "side"],
               pagination_params=shared_pb2.PaginationParameter(limit=4, page_token=every[5]))
    assert page == every[6:10]
    assert ids(stub, repo, ["main"], pagination_params=shared_pb2.PaginationParameter(limit=3)) == \
        sh(path, "rev-list", "main").decode().split()[:3]


def test_options_and_exclusions_still_use_rev_list(stub, dag):
    repo, path = dag
    assert ids(stub, repo, ["main", "^side"]) == sh(path, "rev-list", "main", "^side").decode().split()
    assert ids(stub, repo, ["side..main"]) == sh(path, "rev-list", "side..main").decode().split()
    assert ids(stub, repo, ["main"], first_parent=True) == \
        sh(path, "rev-list", "--first-parent", "main").decode().split()


def test_replace_refs_ignored_as_by_gitalys_git(stub, gitaly):
    """Gitaly runs git with core.useReplaceRefs=false (as upstream): the
    walk ignores replace refs as its rev-list does."""
    path = gitaly.path("walk-replace.git")
    make_repo(path)
    one = commit(path, {"f": b"1"}, "one", [], date=T + 1000)
    two = commit(path, {"f": b"2"}, "two", [one], date=T + 2000)
    other = commit(path, {"f": b"x"}, "other", [], date=T + 1500)
    three = commit(path, {"f": b"3"}, "three", [two], date=T + 3000)
    sh(path, "update-ref", "refs/heads/main", three)
    repl = commit(path, {"f": b"2"}, "two", [other], date=T + 2000)
    sh(path, "replace", two, repl)
    repo = shared_pb2.Repository(storage_name="default", relative_path="walk-replace.git")
    want = sh(path, "-c", "core.useReplaceRefs=false", "rev-list", "main").decode().split()
    assert want == [three, two, one]
    assert ids(stub, repo, ["main"]) == want
    # first_parent makes gitaly use rev-list: the same answer
    assert ids(stub, repo, ["main"], first_parent=True) == want


def test_shallow_repository_uses_rev_list(stub, gitaly):
    path = gitaly.path("walk-shallow.git")
    make_repo(path)
    one = commit(path, {"f": b"1"}, "one", [], date=T + 1000)
    two = commit(path, {"f": b"2"}, "two", [one], date=T + 2000)
    three = commit(path, {"f": b"3"}, "three", [two], date=T + 3000)
    sh(path, "update-ref", "refs/heads/main", three)
    with open(path + "/shallow", "w") as f:
        f.write(two + "\n")
    repo = shared_pb2.Repository(storage_name="default", relative_path="walk-shallow.git")
    want = sh(path, "rev-list", "main").decode().split()
    assert want == [three, two]
    assert ids(stub, repo, ["main"]) == want
