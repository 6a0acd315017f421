#!/usr/bin/python3
"""Builds the browsing benchmark's repository and request bodies (used by
bench/browse.sh). Everything is generated, deterministically, with one
`git fast-import` stream (fixed names, dates and contents: the same object
ids on every run); nothing is downloaded.

The repository (bare, at <repo-path>):
  - refs/heads/main: COMMITS (default 100,000) commits in a line, each
    rewriting `history.txt`; the first one also adds `README.md` (a small
    blob) and `big/`, a tree of TREE_FILES (default 50,000) distinct blobs
    in 50 directories, kept by every later commit;
  - REFS (default 10,000) branches refs/heads/branch-NNNNN pointing at
    commits spread over the history, plus main; refs packed.

Request bodies (serialized protobuf, one file per RPC) go to <out-dir>:
  find_commit.bin, tree_entry.bin, ref_exists.bin, list_refs.bin,
  find_local_branches.bin, get_tree_entries.bin, list_commits.bin.

Usage: browse_setup.py <repo-path> <storage> <relative-path> <out-dir>
(needs GITALY_BUILD or build/ for the Python stubs in <build>/py)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("GITALY_BUILD") or os.path.join(HERE, "..", "build")
sys.path.insert(0, os.path.join(BUILD, "py"))

import commit_pb2 as cp  # noqa: E402
import ref_pb2 as rp  # noqa: E402
import shared_pb2 as sp  # noqa: E402

COMMITS = int(os.environ.get("COMMITS", "100000"))
TREE_FILES = int(os.environ.get("TREE_FILES", "50000"))
REFS = int(os.environ.get("REFS", "10000"))
DIRS = 50
EPOCH = 1600000000


def data(b):
    return b"data %d\n%s\n" % (len(b), b)


def stream(out):
    w = out.write
    # big/: blobs first, then the first commit references them by mark
    mark = 0
    for i in range(TREE_FILES):
        mark += 1
        w(b"blob\nmark :%d\n" % mark + data(b"file %d\n" % i))
    files = mark
    per_dir = (TREE_FILES + DIRS - 1) // DIRS
    for c in range(COMMITS):
        mark += 1
        t = EPOCH + c * 60
        w(b"commit refs/heads/main\nmark :%d\n" % mark)
        w(b"author Bench Author <author@example.com> %d +0000\n" % t)
        w(b"committer Bench Committer <committer@example.com> %d +0000\n" % t)
        w(data(b"commit %d\n\nA deterministic commit of the browsing benchmark.\n" % c))
        if c == 0:
            w(b"M 100644 inline README.md\n" + data(b"# bench\n\nA small blob.\n"))
            for i in range(files):
                w(b"M 100644 :%d big/d%02d/f%05d.txt\n" % (i + 1, i // per_dir, i))
        w(b"M 100644 inline history.txt\n" + data(b"%d\n" % c))
        w(b"\n")
    first_commit = files + 1
    for b in range(REFS):
        target = first_commit + (b * COMMITS) // REFS
        w(b"reset refs/heads/branch-%05d\nfrom :%d\n\n" % (b, target))
    w(b"done\n")


def git(repo, *args, **kw):
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null")
    return subprocess.run(["git", "-C", repo, *args], env=env, check=True, **kw)


def main():
    repo_path, storage, rel, out_dir = sys.argv[1:5]
    if not os.path.exists(os.path.join(repo_path, "HEAD")):
        git(".", "init", "-q", "--bare", "-b", "main", repo_path)
        p = subprocess.Popen(["git", "-C", repo_path, "fast-import", "--quiet", "--done"],
                             stdin=subprocess.PIPE,
                             env=dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null",
                                      GIT_CONFIG_SYSTEM="/dev/null"))
        stream(p.stdin)
        p.stdin.close()
        if p.wait() != 0:
            sys.exit("fast-import failed")
        git(repo_path, "pack-refs", "--all")
    os.makedirs(out_dir, exist_ok=True)
    repo = sp.Repository(storage_name=storage, relative_path=rel)
    reqs = {
        "find_commit": cp.FindCommitRequest(repository=repo, revision=b"main"),
        "tree_entry": cp.TreeEntryRequest(repository=repo, revision=b"main", path=b"README.md"),
        "ref_exists": rp.RefExistsRequest(repository=repo, ref=b"refs/heads/main"),
        "list_refs": rp.ListRefsRequest(repository=repo, patterns=[b"refs/heads/"]),
        "find_local_branches": rp.FindLocalBranchesRequest(repository=repo),
        "get_tree_entries": cp.GetTreeEntriesRequest(repository=repo, revision=b"main",
                                                      path=b".", recursive=True),
        "list_commits": cp.ListCommitsRequest(repository=repo, revisions=["main"]),
    }
    for name, msg in reqs.items():
        with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
            f.write(msg.SerializeToString())


if __name__ == "__main__":
    main()
