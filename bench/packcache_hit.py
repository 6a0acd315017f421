#!/usr/bin/python3
"""CPU of one cached clone (issue 5, the per-clone part of the 16-clone
ratio), for comparing gitaly-hooks builds interleaved in one run.

One gitaly with [pack_objects_cache] enabled (default min_occurrences = 1)
serves bench/packcache.py's large repository; two warm-up clones create the
cache entry, then K clones per variant run one after the other, variants
alternating, each a `git clone --bare --no-local` whose upload-pack runs
`uploadpack.packObjectsHook=<variant gitaly-hooks>` (so every clone is a
cache hit). Per clone: CPU of the upload-pack process tree (wrapper with
RUSAGE_CHILDREN: upload-pack + the hook), the hook's own task-clock
(`perf stat`, whose own start-up is in the tree figure; with PERF=rusage
the user+system time, page faults and context switches from wait4(2) of a
small C wrapper, bench/rusage_wrap.c, whose own cost is negligible), and
gitaly's task-clock over the clone (`perf stat -p`). Prints medians per
variant.

Usage: GITALY_BUILD=build HOOKS=/path/a:/path/b K=9 /usr/bin/python3 bench/packcache_hit.py
Env: HOOKS (default <build>/bin/gitaly-hooks), K (5), BENCH_WORK as for
bench/packcache.py, PERF=record to `perf record -g` each hook instead
(files <BENCH_WORK>/hooklog.perf.<pid>), PERF=rusage for the wait4 figures.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import packcache as pc  # noqa: E402
from conftest import Gitaly, short_tmpdir  # noqa: E402
from packcache_util import HOOKS_BIN  # noqa: E402

K = int(os.environ.get("K", "5"))
PERF = os.environ.get("PERF", "stat")
VARIANTS = os.environ.get("HOOKS", HOOKS_BIN).split(":")
WORK = pc.WORK


def rusage_wrap():
    """Compiles bench/rusage_wrap.c into <build>/bench once."""
    out = os.path.join(pc.BUILD, "bench", "rusage_wrap")
    src = os.path.join(HERE, "rusage_wrap.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", out, src], check=True)
    return out


def hook_wrapper(path, variant):
    log = os.path.join(WORK, "hooklog")
    if PERF == "rusage":
        cmd = "%s %s.$$ %s" % (rusage_wrap(), log, variant)
    elif PERF == "record":
        cmd = "perf record -F 20000 -g -o %s.perf.$$ %s" % (log, variant)
    else:
        cmd = "perf stat -x, -e task-clock -o %s.$$ %s" % (log, variant)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s \"$@\"\n" % cmd)
    os.chmod(path, 0o755)


def hook_logs():
    return [os.path.join(WORK, f) for f in os.listdir(WORK)
            if f.startswith("hooklog.") and f[8:].isdigit()]


def task_clock(path):
    for line in open(path):
        if "task-clock" in line:
            return float(line.split(",")[0]) / 1000
    return 0.0


def rusage_cpu(path):
    user, system = open(path).read().split()[:2]
    return float(user) + float(system)


def main():
    src = pc.load_repogen().large_repo(WORK)
    base = short_tmpdir()
    g = Gitaly(base, extra_toml="[pack_objects_cache]\nenabled = true\n")
    rel = "bench/large.git"
    os.makedirs(os.path.dirname(g.path(rel)), exist_ok=True)
    shutil.copytree(src, g.path(rel), symlinks=True)
    g.start()
    wrap = os.path.join(WORK, "hookwrap")
    gperf = os.path.join(WORK, "gitaly.perf")
    try:
        runtime = os.path.join(g.runtime_dir, "gitaly-%d" % g.proc.pid)
        payload = base64.b64encode(json.dumps({
            "requested_hooks": 16,
            "repository": json.dumps({"storageName": "default", "relativePath": rel}),
            "object_format": "sha1", "runtime_dir": runtime,
            "internal_socket": os.path.join(runtime, "sock.d", "intern"),
            "internal_socket_token": "", "transaction": None,
            "user_details": {"username": "bench", "userid": "user-1", "protocol": "http",
                             "remote_ip": "127.0.0.1"}}).encode()).decode()
        pc.CLONES = 1
        for _ in range(2):  # uncached, then the one that creates the entry
            pc.run_clones(g, payload, rel, HOOKS_BIN, "warm")
        res = {v: ([], [], []) for v in VARIANTS}
        extra = {}
        for i in range(K * len(VARIANTS)):
            v = VARIANTS[i % len(VARIANTS)]
            hook_wrapper(wrap, v)
            for f in hook_logs():
                os.unlink(f)
            gp = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock", "-p",
                                   str(g.proc.pid), "-o", gperf])
            time.sleep(0.3)
            _, wall, up_cpu, _ = pc.run_clones(g, payload, rel, wrap, "hit")
            gp.send_signal(signal.SIGINT)
            gp.wait()
            logs = hook_logs()
            h = sum(rusage_cpu(f) if PERF == "rusage" else task_clock(f) for f in logs)
            if PERF == "rusage":
                extra.setdefault(v, []).extend(open(f).read().split() for f in logs)
            g_cpu = task_clock(gperf)
            for lst, x in zip(res[v], (up_cpu, h, g_cpu)):
                lst.append(x)
            print("%s: wall %.2fs, upload-pack tree %.3fs (hook %.3fs), gitaly %.3fs" % (
                v, wall, up_cpu, h, g_cpu), flush=True)

        def med(x):
            return sorted(x)[len(x) // 2]
        for v in VARIANTS:
            up, h, gc = res[v]
            print("%s median of %d: upload-pack tree %.3fs (hook %.3fs), gitaly %.3fs, "
                  "total %.3fs" % (v, len(up), med(up), med(h), med(gc), med(up) + med(gc)))
            if v in extra:
                ex = extra[v]
                print("%s hook medians: user %.4fs, system %.4fs, %d page faults, %d voluntary "
                      "and %d involuntary context switches" % (
                          v, med([float(x[0]) for x in ex]), med([float(x[1]) for x in ex]),
                          med([int(x[2]) for x in ex]), med([int(x[3]) for x in ex]),
                          med([int(x[4]) for x in ex])))
        print("load average: %s" % open("/proc/loadavg").read().strip())
    finally:
        g.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
