#!/usr/bin/env python3
"""Clones through two builds, alternated: for deciding whether a change to
the transport path removes work on a busy machine.

Usage: bench/transport_ab.py BUILD_A BUILD_B [--reps N] [--flavour F]
F is gateway (default; BUILD/bin/gitaly-gateway of each build), http (the
Workhorse stand-in and the Go client) or ssh. Each build gets its own
gitaly (and gateway), set up by bench/transport.py's Bench in a worker
process; the clones alternate A B B A A B ... so a burst of load from
elsewhere hits both sides alike. Per clone: wall, server CPU (gitaly and
the git processes it reaped), gitaly itself, and the gateway's own CPU
(not part of the server CPU). The repository is the one bench/transport.py
caches under BUILD_A/bench/transport.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(build, work):
    sys.path.insert(0, HERE)
    import transport as T
    b = T.Bench(argparse.Namespace(build=build, work=work))
    dest = os.path.join(b.scratch, "clone.git")
    print("READY", flush=True)
    try:
        for line in sys.stdin:
            flavour = line.strip()
            shutil.rmtree(dest, ignore_errors=True)
            env = None
            if flavour == "ssh":
                url, env = "ssh://gitaly/default/large.git", b.gu.ssh_env(b.wrapper)
            elif flavour == "http":
                url = b.workhorse.url("default", "large.git")
            else:
                url = b.gateway.url("default", "large.git")
            b.last_gateway = None
            wall, cpu, own = b.measure_ours(["git", "clone", "--mirror", "-q", url, dest], env=env)
            gw = b.last_gateway if flavour == "gateway" else None
            print("RES %.3f %.3f %.3f %.3f" % (wall, cpu, own, gw or 0.0), flush=True)
    finally:
        b.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="*")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--flavour", default="gateway", choices=("gateway", "http", "ssh"))
    ap.add_argument("--work")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.work)
    if len(a.builds) != 2:
        ap.error("two builds")
    builds = [os.path.abspath(x) for x in a.builds]
    work = a.work or os.path.join(builds[0], "bench", "transport")
    procs = []
    for bd in builds:
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", bd,
                              "--work", work], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        for line in p.stdout:
            if line.startswith("READY"):
                break
        else:
            raise SystemExit("worker for %s failed" % bd)
        procs.append(p)
    res = {bd: [] for bd in builds}
    print("load average at start: %s" % open("/proc/loadavg").read().strip(), flush=True)
    try:
        for i in range(a.reps):
            order = list(zip(builds, procs))
            if i % 2:
                order.reverse()
            for bd, p in order:
                p.stdin.write(a.flavour + "\n")
                p.stdin.flush()
                r = [float(x) for x in p.stdout.readline().split()[1:]]
                res[bd].append(r)
                print("%-32s wall %.2f server CPU %.2f gitaly itself %.3f gateway %.3f "
                      "(load %s)" % (bd, r[0], r[1], r[2], r[3],
                                     open("/proc/loadavg").read().split()[0]), flush=True)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()
    print("medians (means) over %d clones each, flavour %s:" % (a.reps, a.flavour))
    for bd in builds:
        v = res[bd]
        med = [statistics.median(x[k] for x in v) for k in range(4)]
        mean = [statistics.mean(x[k] for x in v) for k in range(4)]
        print("%-32s wall %.2f (%.2f) server CPU %.3f (%.3f) gitaly itself %.3f (%.3f) "
              "gateway %.3f (%.3f)" % (bd, med[0], mean[0], med[1], mean[1], med[2], mean[2],
                                       med[3], mean[3]))


if __name__ == "__main__":
    main()
