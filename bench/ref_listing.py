#!/usr/bin/python3
"""ListRefs and FindLocalBranches on a repository with 10k branches, against
the equivalent single `git for-each-ref` run directly in the same run
(issue 4's target: the RPC takes at most the time of the git command).
Prints medians of 5 runs and the ratios; needs a build with RefService
registered. Usage: GITALY_BUILD=build /usr/bin/python3 bench/ref_listing.py

Caveat: this times the Python client too, and grpcio's per-message work
plus protobuf decoding of 10k refs take longer than the server's answer
(for ListRefs, a raw channel without decoding is ~30% faster than the
decoding stub, and the C client bench/call_client.c ~2x faster still).
bench/browse.sh measures the same RPCs with the C client, which reads
every message without decoding it."""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from conftest import Gitaly, commit, git, make_repo, short_tmpdir  # noqa: E402
import ref_pb2 as rp  # noqa: E402
import ref_pb2_grpc  # noqa: E402

N = int(os.environ.get("REFS", "10000"))


def median_ms(fn, runs=5):
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1e3


def main():
    g = Gitaly(short_tmpdir())
    g.start()
    try:
        path = g.path("bench.git")
        make_repo(path)
        prev, commits = None, []
        for i in range(50):
            prev = commit(path, {"f": b"%d" % i}, "c%d" % i, [prev] if prev else [],
                          date=1600000000 + i * 1000)
            commits.append(prev)
        git("-C", path, "update-ref", "--stdin", input="".join(
            "create refs/heads/branch-%05d %s\n" % (i, commits[i % 50]) for i in range(N)).encode())
        git("-C", path, "pack-refs", "--all")
        env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null")

        def fer(*args):
            subprocess.run(["git", "-C", path, "for-each-ref", *args], env=env, check=True,
                           stdout=subprocess.DEVNULL)

        ch = g.channel("unix")
        stub = ref_pb2_grpc.RefServiceStub(ch)
        repo = g.repo("bench.git")
        fields = "--format=%(refname)%00%(objectname)%00%(subject)%00%(authorname)%00%(tree)"
        rows = [
            ("ListRefs refs/heads/",
             lambda: list(stub.ListRefs(rp.ListRefsRequest(repository=repo, patterns=[b"refs/heads/"]))),
             lambda: fer("--format=%(refname)%00%(objectname)", "refs/heads/")),
            ("FindLocalBranches (name)",
             lambda: list(stub.FindLocalBranches(rp.FindLocalBranchesRequest(repository=repo))),
             lambda: fer(fields, "refs/heads/")),
            ("FindLocalBranches (-committerdate)",
             lambda: list(stub.FindLocalBranches(rp.FindLocalBranchesRequest(
                 repository=repo, sort_by=rp.FindLocalBranchesRequest.UPDATED_DESC))),
             lambda: fer("--sort=-committerdate", fields, "refs/heads/")),
        ]
        for name, rpc, cli in rows:
            r, c = median_ms(rpc), median_ms(cli)
            print("%-36s %d refs: rpc %7.1f ms  git %7.1f ms  ratio %.2f" % (name, N, r, c, r / c))
        ch.close()
    finally:
        g.stop()


if __name__ == "__main__":
    main()
