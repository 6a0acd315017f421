#!/usr/bin/env python3
"""Where the CPU of one push goes: pushes the generated 127k-object
repository once through gitaly-gateway (or gitaly's ssh/http flows) and
once with plain git to a local path (gitaly's -c options), with
`perf record -a` sampling every CPU, and prints the sampled CPU of each
process of the server side (gitaly, its git children, the hooks and their
children; the gateway separately), labelled with its command line.

The process tree and command lines come from a /proc poller (every 2 ms);
a process too short-lived to be seen is labelled by its perf comm only.
Samples are cpu-clock at --freq Hz, so one sample is 1/freq s of CPU.

With --switches, the same per process with context switches instead of
CPU samples (perf's sched:sched_switch); with --strace, the count and mean
size of each thread's read/write calls; with --cpu, only gitaly's own and
its reaped children's CPU per push.

Usage: bench/push_profile.py BUILD [--flavour gateway|ssh|http|plain]...
       [--reps N] [--freq 997] [--top N] [--keep DIR] [--switches|--strace|--cpu]
"""

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

STRACE = False
CPU_ONLY = False
SWITCHES = False
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import transport  # noqa: E402


class Tree:
    """Polls /proc for the descendants of the root pids."""

    def __init__(self, roots):
        self.roots = set(roots)
        self.info = {}  # pid -> (ppid, argv)
        self.foreign = set()  # pids seen once and not ours (not read again)
        self.done = set()  # ours, seen after their exec (not read again)
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            known = self.roots | set(self.info)
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                pid = int(d)
                if pid in self.foreign or pid in self.done:
                    continue
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        st = f.read()
                    ppid = int(st[st.rindex(")") + 2:].split()[1])
                    if ppid not in known and pid not in known:
                        self.foreign.add(pid)
                        continue
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
                except (OSError, ValueError):
                    continue
                old = self.info.get(pid)
                # keep the latest argv (after exec), first ppid
                self.info[pid] = (old[0] if old else ppid, argv or (old[1] if old else []))
                known.add(pid)
                # a child still showing its parent's argv has not exec'd yet
                parent = self.info.get(ppid)
                if argv and pid not in self.roots and (not parent or parent[1] != argv):
                    self.done.add(pid)
            time.sleep(0.003)

    def root_of(self, pid):
        seen = 0
        while pid in self.info and pid not in self.roots and seen < 64:
            pid = self.info[pid][0]
            seen += 1
        return pid if pid in self.roots else None

    def depth(self, pid):
        d = 0
        while pid in self.info and pid not in self.roots and d < 64:
            pid = self.info[pid][0]
            d += 1
        return d


def label(argv, comm):
    if not argv:
        return "[%s]" % comm
    out = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "-c":
            skip = True
            continue
        out.append(os.path.basename(a) if a.startswith("/") and len(out) == 0 else a)
    s = " ".join(out)
    return s[:110]


def perf_samples(data):
    """pid -> (comm, samples) from a perf.data file."""
    r = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    counts = collections.Counter()
    comms = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        counts[pid] += 1
        comms[pid] = parts[0].strip()
    return {p: (comms[p], n) for p, n in counts.items()}


def strace_counts(name, roots, push, keep):
    """Attaches strace to the roots (threads and children followed) and
    prints, per thread, the count and mean size of its I/O system calls."""
    out = os.path.join(keep, "strace-%s" % name)
    procs = [subprocess.Popen(["strace", "-f", "-qq", "-e",
                               "trace=read,write,recvmsg,sendmsg,readv,writev,recvfrom,sendto",
                               "-e", "signal=none", "-s", "0", "-o", "%s.%d" % (out, pid),
                               "-p", str(pid)], stderr=subprocess.DEVNULL) for pid in roots]
    time.sleep(1.0)
    push()
    time.sleep(0.5)
    for p in procs:
        p.send_signal(signal.SIGINT)
        p.wait()
    for pid, nm in roots.items():
        stats = collections.defaultdict(lambda: [0, 0])
        pending = {}  # tid -> (syscall, fd) of an unfinished call
        with open("%s.%d" % (out, pid), errors="replace") as f:
            for line in f:
                m = re.match(r"(\d+)\s+(\w+)\((\d+),", line)
                r = re.match(r"(\d+)\s+<\.\.\. (\w+) resumed>", line)
                if m and "<unfinished" in line:
                    pending[m.group(1)] = (m.group(2), m.group(3))
                    continue
                if m:
                    k = (m.group(1), m.group(2), m.group(3))
                elif r and r.group(1) in pending:
                    k = (r.group(1),) + pending.pop(r.group(1))
                else:
                    continue
                res = re.search(r"\)\s+=\s+(-?\d+)", line)
                if not res:
                    continue
                stats[k][0] += 1
                stats[k][1] += max(0, int(res.group(1)))
        print("\n== %s %s: per thread, syscall(fd): calls, bytes, mean" % (name, nm))
        for k, (n, b) in sorted(stats.items(), key=lambda kv: -kv[1][0])[:25]:
            print("   %7s %-9s fd %-4s %7d calls %11d bytes %8.0f mean" % (k[0], k[1], k[2], n, b,
                                                                      b / n))


def cpu_only(name, roots, push):
    """gitaly's own CPU and that of its reaped children, for one push."""
    pid = [p for p, n in roots.items() if n == "gitaly"][0]
    c0 = transport.proc_cpu(pid)
    t0 = time.time()
    push()
    wall = time.time() - t0
    time.sleep(0.3)
    c1 = transport.proc_cpu(pid)
    print("%-12s wall %.2fs gitaly itself %.3fs children %.3fs (load %s)" % (
        name, wall, c1[0] - c0[0], c1[1] - c0[1], transport.loadavg()), flush=True)


def profile(name, roots, push, freq, keep, top_syms):
    if CPU_ONLY and "gitaly" in roots.values():
        return cpu_only(name, roots, push)
    if STRACE:
        return strace_counts(name, roots, push, keep)
    data = os.path.join(keep, "perf-%s.data" % name)
    tree = Tree(roots)
    time.sleep(0.05)
    ev = ["-e", "sched:sched_switch"] if SWITCHES else ["-g", "-F", str(freq), "-e", "cpu-clock"]
    perf = subprocess.Popen(["perf", "record", "-a"] + ev +
                            ["-o", data, "--", "sleep", "600"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    t0 = time.time()
    push()
    wall = time.time() - t0
    time.sleep(0.3)
    perf.send_signal(signal.SIGINT)
    perf.wait()
    tree.stop.set()
    tree.t.join()
    samples = perf_samples(data)
    rows = []
    for pid, (comm, n) in samples.items():
        root = pid if pid in roots else tree.root_of(pid)
        if root is None:
            continue
        argv = tree.info.get(pid, (None, []))[1]
        rows.append((pid, tree.depth(pid), label(argv, comm), n / freq, root))
    if SWITCHES:  # counts of context switches, not seconds
        rows = [(r[0], r[1], r[2], r[3] * freq, r[4]) for r in rows]
    total = sum(r[3] for r in rows)
    print("\n== %s: wall %.2fs, sampled server CPU %.2fs (load %s)" % (
        name, wall, total, transport.loadavg()))
    byroot = collections.defaultdict(float)
    for r in rows:
        byroot[roots[r[4]]] += r[3]
    for k, v in sorted(byroot.items()):
        print("   tree %-20s %.3fs" % (k, v))
    for pid, depth, lab, cpu, root in sorted(rows, key=lambda r: (roots[r[4]], r[0])):
        print("   %7d %s%-*s %.3fs" % (pid, "  " * depth, 80 - 2 * depth, lab, cpu))
    if top_syms and not SWITCHES:
        # leaf symbols of the busiest processes (perf script, first frame)
        r = subprocess.run(["perf", "script", "-i", data, "-F", "pid,ip,sym,dso", "-G"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        per = collections.defaultdict(collections.Counter)
        for line in r.stdout.decode(errors="replace").splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0].isdigit():
                per[int(parts[0])][parts[2].strip()] += 1
        for pid, _, lab, cpu, _ in sorted(rows, key=lambda r: -r[3])[:4]:
            print("   top leaf symbols of %d (%s):" % (pid, lab[:50]))
            n = sum(per[pid].values()) or 1
            for sym, c in per[pid].most_common(top_syms):
                print("     %5.1f%% %s" % (100.0 * c / n, sym))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--flavour", action="append")
    ap.add_argument("--freq", type=int, default=997)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--keep")
    ap.add_argument("--strace", action="store_true",
                    help="count I/O system calls per thread instead of perf")
    ap.add_argument("--cpu", action="store_true",
                    help="only gitaly's own and its children's CPU per push")
    ap.add_argument("--switches", action="store_true",
                    help="count context switches per process instead of CPU")
    args = ap.parse_args()
    global STRACE, CPU_ONLY, SWITCHES
    SWITCHES = args.switches
    STRACE = args.strace
    CPU_ONLY = args.cpu
    flavours = args.flavour or ["gateway", "plain"]
    keep = args.keep or tempfile.mkdtemp(prefix="pushprof")
    os.makedirs(keep, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ns = argparse.Namespace(build=args.build, work=None)
    b = transport.Bench(ns)
    refspecs = ["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"]
    counter = [0]
    try:
        def target():
            counter[0] += 1
            rel = "prof-%d.git" % counter[0]
            transport.run(["git", "init", "-q", "--bare", b.g.path(rel)])
            return rel

        def push_to(url, env=None):
            return lambda: transport.run(["git", "--git-dir", b.large, "push", "-q", url] +
                                         refspecs, env=env)
        # a first push through gitaly so that its receive-pack -c is known
        transport.run(["git", "--git-dir", b.large, "push", "-q",
                       b.workhorse.url("default", target()), "refs/heads/main:refs/heads/main"])
        time.sleep(0.3)
        for rep in range(args.reps):
            for fl in flavours:
                roots = {b.pid: "gitaly"}
                if fl == "gateway":
                    roots[b.gateway.proc.pid] = "gateway"
                    fn = push_to(b.gateway.url("default", target()))
                elif fl == "http":
                    fn = push_to(b.workhorse.url("default", target()))
                elif fl == "ssh":
                    fn = push_to("ssh://gitaly/default/" + target(),
                                 env=b.gu.ssh_env(b.wrapper, {"GITALY_CLIENT_EXTRA":
                                                              "-gl-repository project-1"}))
                else:
                    d = os.path.join(b.scratch, "plain-prof.git")
                    subprocess.run(["rm", "-rf", d])
                    transport.run(["git", "init", "-q", "--bare", d])
                    rp = os.path.join(b.scratch, "prof-receive-pack")
                    cfg = b.catcher.config("receive-pack")
                    with open(rp, "w") as f:
                        f.write("#!/bin/sh\nexec git %s receive-pack \"$@\"\n" % " ".join(
                            "-c '%s'" % c for c in cfg))
                    os.chmod(rp, 0o755)

                    def fn(rp=rp, d=d):
                        transport.run(["git", "--git-dir", b.large, "push", "-q",
                                       "--receive-pack=" + rp, d] + refspecs)
                    # plain: the root is the receive-pack wrapper; found by
                    # watching the pusher's children (root = this process)
                    roots = {os.getpid(): "plain (push+rp)"}
                profile("%s-%d" % (fl, rep), roots, fn, args.freq, keep, args.top)
    finally:
        b.close()
    print("\nperf data kept in %s" % keep)


if __name__ == "__main__":
    main()
