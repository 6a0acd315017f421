#!/usr/bin/env python3
"""Transport benchmark: clones and pushes of a 127k-object repository
through our stack (git -> gitlab-shell stand-in or Workhorse stand-in ->
tests/interop/gitaly_client.go -> gitaly -> git) against plain
`git clone --no-local` / `git push` to a local path on the same machine,
plus sidechannel throughput for a pack of ~512 MiB of incompressible blobs.

Reported per flavour (median of --reps runs):
- wall: seconds of the whole `git clone`/`git push`;
- server CPU: for our stack, gitaly's own CPU plus that of the git
  processes it ran and reaped (utime+stime+cutime+cstime from
  /proc/<gitaly>/stat, before and after); for plain git, the CPU of the
  upload-pack/receive-pack side and its children (bash `times` in a
  --upload-pack/--receive-pack wrapper run by GNU time);
- the gateway's own CPU, for the gateway flavours, in a column of its
  own: it is not part of the server CPU above;
- ratios ours/plain. Plain git is run twice: with git's defaults, and with
  the `-c` options gitaly put on its own git command line in this run
  (captured from /proc), which separates transport cost from config cost
  (gitaly sets pack.threads=1, receive.fsckObjects=true, fsync...).

With a gitaly-gateway binary (BUILD/bin/gitaly-gateway or
$GITALY_GATEWAY_BIN), clones and pushes through it are measured too.

Usage: bench/transport.py BUILD [--reps N] [--skip-throughput] [--work DIR]
The generated repositories are cached under BUILD/bench/transport.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def setup_imports(build):
    os.environ["GITALY_BUILD"] = build
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def proc_cpu(pid):
    """(own, reaped children) CPU seconds of pid."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    ut, stime, cut, cst = (int(x) for x in fields[11:15])
    return (ut + stime) / TICK, (cut + cst) / TICK


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class GitArgvCatcher:
    """Polls gitaly's children and keeps the first command line of each git
    subcommand it sees (to rerun plain git with gitaly's -c options)."""

    def __init__(self, pid):
        self.pid = pid
        self.seen = {}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                    if int(st[st.rindex(")") + 2:].split()[1]) != self.pid:
                        continue
                    with open("/proc/%s/cmdline" % d, "rb") as f:
                        argv = [a.decode() for a in f.read().split(b"\0") if a]
                except (OSError, ValueError):
                    continue
                for sub in ("upload-pack", "receive-pack"):
                    if sub in argv and sub not in self.seen:
                        self.seen[sub] = argv
            time.sleep(0.01)

    def config(self, sub):
        """The -c NAME=VALUE options gitaly passed to git SUB."""
        argv = self.seen.get(sub, [])
        out = []
        for i, a in enumerate(argv[:-1]):
            # not gitaly's hooks: they need the payload only gitaly provides
            if a == "-c" and not argv[i + 1].startswith("core.hooksPath="):
                out.append(argv[i + 1])
        return out


def write_timed(path, sub, out, config=()):
    """A --upload-pack/--receive-pack wrapper that runs git SUB under GNU
    time, which appends the CPU seconds of git and of every process git
    waited for (pack-objects, index-pack, hooks) to out."""
    cfg = " ".join("-c '%s'" % c.replace("'", "'\\''") for c in config)
    with open(path, "w") as f:
        f.write("""#!/bin/sh
exec /usr/bin/time -a -o '%s' -f '%%U %%S' git %s %s "$@"
""" % (out, cfg, sub))
    os.chmod(path, 0o755)


def times_seconds(line):
    """user + system seconds of one GNU time line "U S"."""
    try:
        return sum(float(x) for x in line.split())
    except ValueError:  # "Command exited with non-zero status N"
        return 0.0


def run(argv, env=None, cwd=None, stdin=None, stdout=subprocess.DEVNULL):
    e = dict(os.environ)
    e.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null",
              "GIT_TERMINAL_PROMPT": "0"})
    if env:
        e.update(env)
    r = subprocess.run(argv, env=e, cwd=cwd, stdin=stdin, stdout=stdout,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                    r.stderr.decode(errors="replace")[-2000:]))
    return r


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        setup_imports(self.build)
        import goclient_util as gu
        import repogen
        from conftest import Gitaly
        self.gu, self.repogen = gu, repogen
        self.work = args.work or os.path.join(self.build, "bench", "transport")
        os.makedirs(self.work, exist_ok=True)
        self.scratch = os.path.join(self.work, "scratch")
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.makedirs(self.scratch)
        gu.build_client()
        t = time.time()
        self.large = repogen.large_repo(self.work)
        self.large_build = repogen.build_seconds(self.large)
        self.objects = repogen.object_count(self.large)
        print("large repository: %s, %d objects (built in %.1fs, ready in %.1fs)" % (
            self.large, self.objects, self.large_build, time.time() - t), flush=True)
        self.api = gu.FakeGitLab()
        import tempfile
        self.g = Gitaly(tempfile.mkdtemp(prefix="gtb", dir="/tmp"))
        os.symlink(os.path.join(self.build, "bin", "gitaly-hooks"),
                   os.path.join(self.g.bin_dir, "gitaly-hooks"))
        gu.with_gitlab(self.g, self.api)
        self.g.start()
        self.pid = self.g.proc.pid
        self.catcher = GitArgvCatcher(self.pid)
        subprocess.run(["cp", "-al", self.large, self.g.path("large.git")], check=True)
        self.client = gu.Client(self.g)
        self.wrapper = gu.ssh_wrapper(os.path.join(self.scratch, "gitlab-shell"), self.client)
        self.workhorse = gu.Workhorse(self.client)
        self.gateway = None
        if os.access(gu.GATEWAY_BIN, os.X_OK):
            self.gateway = gu.GatewayProc(os.path.join(self.scratch, "gw"), self.g)
        else:
            print("no %s: gateway flavours skipped" % gu.GATEWAY_BIN, flush=True)
        self.results = []

    def close(self):
        self.catcher.stop.set()
        self.workhorse.close()
        if self.gateway:
            self.gateway.close()
        try:
            self.g.stop()
        finally:
            self.api.close()
            shutil.rmtree(self.g.base, ignore_errors=True)
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- one measured command
    def measure_ours(self, argv, env=None, cwd=None):
        """wall, server CPU (gitaly + reaped children), gitaly itself; the
        gateway's own CPU over the same command goes to self.last_gateway
        (None without a gateway): it is a separate process, reported in its
        own column and not part of the server CPU compared with plain git."""
        gw = self.gateway.proc.pid if self.gateway else None
        g0 = proc_cpu(gw) if gw else None
        c0 = proc_cpu(self.pid)
        t0 = time.time()
        run(argv, env=env, cwd=cwd)
        wall = time.time() - t0
        # the last git child may be reaped just after the client is done
        time.sleep(0.2)
        c1 = proc_cpu(self.pid)
        self.last_gateway = (proc_cpu(gw)[0] - g0[0]) if gw else None
        return wall, (c1[0] - c0[0]) + (c1[1] - c0[1]), c1[0] - c0[0]

    def measure_plain(self, argv, cpu_file, env=None, cwd=None):
        if os.path.exists(cpu_file):
            os.unlink(cpu_file)
        t0 = time.time()
        run(argv, env=env, cwd=cwd)
        wall = time.time() - t0
        with open(cpu_file) as f:
            cpu = sum(times_seconds(line) for line in f if line.strip())
        return wall, cpu, None

    def series(self, op, flavour, fn, reps):
        walls, cpus, owns, gws = [], [], [], []
        for i in range(reps):
            self.last_gateway = None
            wall, cpu, own = fn(i)
            walls.append(wall)
            cpus.append(cpu)
            if own is not None:
                owns.append(own)
            gw = self.last_gateway if flavour.startswith("gitaly-gateway") else None
            if gw is not None:
                gws.append(gw)
            print("  %-6s %-22s run %d: wall %.2fs server CPU %.2fs%s%s  (load %s)" % (
                op, flavour, i + 1, wall, cpu,
                "" if own is None else " (gitaly itself %.2fs)" % own,
                "" if gw is None else " (gateway, not counted: %.2fs)" % gw,
                loadavg()), flush=True)
        res = {"op": op, "flavour": flavour, "wall": statistics.median(walls),
               "cpu": statistics.median(cpus),
               "own": statistics.median(owns) if owns else None,
               "gw": statistics.median(gws) if gws else None}
        self.results.append(res)
        return res

    def gateway_series(self, op, fn, reps):
        """The gateway belongs to another branch: a failure there is
        reported with its log, and the benchmark goes on."""
        try:
            self.series(op, "gitaly-gateway http", fn, reps)
        except RuntimeError as e:
            print("  %s through gitaly-gateway failed: %s" % (op, e), flush=True)
            with open(self.gateway.log, errors="replace") as f:
                print("  gateway log tail:\n" + "".join(f.readlines()[-10:]), flush=True)

    # -- clone
    def clone_all(self, reps):
        dest = os.path.join(self.scratch, "clone.git")
        cpu_file = os.path.join(self.scratch, "cpu.txt")

        def fresh():
            shutil.rmtree(dest, ignore_errors=True)

        def ours_ssh(i):
            fresh()
            return self.measure_ours(["git", "clone", "--mirror", "-q",
                                      "ssh://gitaly/default/large.git", dest],
                                     env=self.gu.ssh_env(self.wrapper))

        def ours_http(i):
            fresh()
            return self.measure_ours(["git", "clone", "--mirror", "-q",
                                      self.workhorse.url("default", "large.git"), dest])

        # ours first, so gitaly's git -c options are known for the baseline
        self.series("clone", "gitaly ssh (sidechannel)", ours_ssh, reps)
        self.series("clone", "gitaly http (sidechannel)", ours_http, reps)
        if self.gateway:
            def gateway_http(i):
                fresh()
                return self.measure_ours(["git", "clone", "--mirror", "-q",
                                          self.gateway.url("default", "large.git"), dest])
            self.gateway_series("clone", gateway_http, reps)
        for name, config in (("plain git defaults", ()),
                             ("plain git, gitaly's -c", self.catcher.config("upload-pack"))):
            up = os.path.join(self.scratch, "timed-upload-pack")
            write_timed(up, "upload-pack", cpu_file, config)

            def plain(i, up=up):
                fresh()
                return self.measure_plain(["git", "clone", "--no-local", "--mirror", "-q",
                                           "--upload-pack=" + up, self.large, dest], cpu_file)
            self.series("clone", name, plain, reps)
        fresh()

    # -- push
    def push_all(self, reps):
        cpu_file = os.path.join(self.scratch, "cpu.txt")
        refspecs = ["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"]
        counter = [0]

        def target():
            counter[0] += 1
            rel = "push-%d.git" % counter[0]
            run(["git", "init", "-q", "--bare", self.g.path(rel)])
            return rel

        def ours_ssh(i):
            rel = target()
            return self.measure_ours(
                ["git", "--git-dir", self.large, "push", "-q",
                 "ssh://gitaly/default/" + rel] + refspecs,
                env=self.gu.ssh_env(self.wrapper,
                                    {"GITALY_CLIENT_EXTRA": "-gl-repository project-1"}))

        def ours_http(i):
            rel = target()
            return self.measure_ours(["git", "--git-dir", self.large, "push", "-q",
                                      self.workhorse.url("default", rel)] + refspecs)

        self.series("push", "gitaly ssh", ours_ssh, reps)
        self.series("push", "gitaly http", ours_http, reps)
        if self.gateway:
            def gateway_http(i):
                rel = target()
                return self.measure_ours(["git", "--git-dir", self.large, "push", "-q",
                                          self.gateway.url("default", rel)] + refspecs)
            self.gateway_series("push", gateway_http, reps)
        for name, config in (("plain git defaults", ()),
                             ("plain git, gitaly's -c", self.catcher.config("receive-pack"))):
            rp = os.path.join(self.scratch, "timed-receive-pack")
            write_timed(rp, "receive-pack", cpu_file, config)

            def plain(i, rp=rp):
                d = os.path.join(self.scratch, "plain-push.git")
                shutil.rmtree(d, ignore_errors=True)
                run(["git", "init", "-q", "--bare", d])
                return self.measure_plain(["git", "--git-dir", self.large, "push", "-q",
                                           "--receive-pack=" + rp, d] + refspecs, cpu_file)
            self.series("push", name, plain, reps)

    # -- sidechannel throughput
    def throughput(self, reps, mib):
        blobs = self.repogen.blob_repo(self.work, total_mib=mib)
        subprocess.run(["cp", "-al", blobs, self.g.path("blobs.git")], check=True)
        main = run(["git", "--git-dir", blobs, "rev-parse", "main"],
                   stdout=subprocess.PIPE).stdout.decode().strip()

        def pkt(s):
            return b"%04x" % (len(s) + 4) + s
        req = pkt(b"want %s side-band-64k ofs-delta no-progress\n" % main.encode()) + \
            b"0000" + pkt(b"done\n")
        req_file = os.path.join(self.scratch, "req.bin")
        with open(req_file, "wb") as f:
            f.write(req)
        out_file = os.path.join(self.scratch, "out.bin")

        def ours(mode):
            def fn(i):
                hwm0 = vm_hwm(self.pid)
                with open(req_file, "rb") as rf, open(out_file, "wb") as of:
                    c0 = proc_cpu(self.pid)
                    t0 = time.time()
                    run(self.client.argv(mode, "-repo", "default:blobs.git"), stdin=rf,
                        stdout=of)
                    wall = time.time() - t0
                time.sleep(0.2)
                c1 = proc_cpu(self.pid)
                size = os.path.getsize(out_file)
                self.sizes[mode] = size
                self.hwm.append((hwm0, vm_hwm(self.pid)))
                return wall, (c1[0] - c0[0]) + (c1[1] - c0[1]), c1[0] - c0[0]
            return fn

        def plain(i):
            cpu_file = os.path.join(self.scratch, "cpu.txt")
            up = os.path.join(self.scratch, "timed-upload-pack")
            write_timed(up, "upload-pack", cpu_file, self.catcher.config("upload-pack"))
            if os.path.exists(cpu_file):
                os.unlink(cpu_file)
            with open(req_file, "rb") as rf, open(out_file, "wb") as of:
                t0 = time.time()
                run([up, "--stateless-rpc", blobs], stdin=rf, stdout=of)
                wall = time.time() - t0
            self.sizes["plain"] = os.path.getsize(out_file)
            with open(cpu_file) as f:
                return wall, sum(times_seconds(line) for line in f if line.strip()), None

        self.sizes, self.hwm = {}, []
        print("  blob repository: %s (%d MiB of random blobs)" % (blobs, mib), flush=True)
        self.series("stream", "gitaly ssh-upload-pack", ours("ssh-upload-pack"), reps)
        self.series("stream", "gitaly http-upload-pack", ours("http-upload-pack"), reps)
        self.series("stream", "plain upload-pack", plain, reps)
        # reference for "no extra copies": a process that only relays the
        # same bytes from a pipe to a pipe (one read and one write per
        # chunk, as a relay must do), timed the same way
        t_file = os.path.join(self.scratch, "relay-cpu.txt")
        costs = []
        for _ in range(reps):
            if os.path.exists(t_file):
                os.unlink(t_file)
            run(["sh", "-c", "cat '%s' | /usr/bin/time -o '%s' -f '%%U %%S' cat | cat >/dev/null"
                 % (out_file, t_file)])
            with open(t_file) as f:
                costs.append(sum(times_seconds(line) for line in f if line.strip()))
        self.relay_per_gib = statistics.median(costs) / (os.path.getsize(out_file) / (1 << 30))
        os.unlink(out_file)

    def report(self):
        print()
        print("load average at the end: %s; %d CPUs" % (loadavg(), os.cpu_count()))
        base = {}
        for r in self.results:
            if r["flavour"].startswith("plain"):
                base.setdefault(r["op"], {})[r["flavour"]] = r
        print("%-6s %-28s %8s %9s %9s %10s %12s %12s" % (
            "op", "flavour", "wall s", "srv CPU s", "gitaly s", "gateway s", "wall ratio",
            "CPU ratio"))
        for r in self.results:
            ref = base.get(r["op"], {}).get("plain git, gitaly's -c") or \
                base.get(r["op"], {}).get("plain upload-pack")
            wr = cr = ""
            if ref and not r["flavour"].startswith("plain"):
                wr = "%.2f" % (r["wall"] / ref["wall"])
                cr = "%.2f" % (r["cpu"] / ref["cpu"]) if ref["cpu"] else "-"
            print("%-6s %-28s %8.2f %9.2f %9s %10s %12s %12s" % (
                r["op"], r["flavour"], r["wall"], r["cpu"],
                "" if r["own"] is None else "%.2f" % r["own"],
                "" if r.get("gw") is None else "%.2f" % r["gw"], wr, cr))
        if getattr(self, "sizes", None):
            print("stream sizes (bytes): %s" % self.sizes)
            for r in self.results:
                if r["op"] == "stream" and r["wall"]:
                    size = self.sizes.get(r["flavour"].split()[-1],
                                          self.sizes.get("plain", 0))
                    line = "  %-28s %.0f MiB/s" % (r["flavour"], size / r["wall"] / (1 << 20))
                    if r["own"] is not None:
                        line += ", gitaly itself %.2f CPU s per GiB" % (
                            r["own"] / (size / (1 << 30)))
                    print(line)
            print("reference: `cat` relaying the same bytes pipe to pipe: %.2f CPU s per GiB"
                  % self.relay_per_gib)
            print("gitaly VmHWM before/after each stream (KiB): %s" % self.hwm)
        print("ratios are ours / plain git with gitaly's -c options; server CPU is gitaly "
              "and the git processes it reaped; the gateway's own CPU (a separate process, "
              "user+system) is the 'gateway s' column and is not in the server CPU")
        print("gitaly's upload-pack -c: %s" % " ".join(self.catcher.config("upload-pack")))
        print("gitaly's receive-pack -c: %s" % " ".join(self.catcher.config("receive-pack")))


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-push", action="store_true")
    ap.add_argument("--skip-clone", action="store_true")
    ap.add_argument("--push-reps", type=int, help="default: --reps")
    ap.add_argument("--stream-mib", type=int, default=512)
    args = ap.parse_args()
    # cleanup (the server, scratch repositories) also on TERM, and on INT
    # even when started in the background by a shell that ignores it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print("load average at start: %s; %d CPUs" % (loadavg(), os.cpu_count()), flush=True)
    b = Bench(args)
    try:
        if not args.skip_clone:
            b.clone_all(args.reps)
        if not args.skip_push:
            b.push_all(args.push_reps or args.reps)
        if not args.skip_throughput:
            b.throughput(args.reps, args.stream_mib)
        b.report()
    finally:
        b.close()


if __name__ == "__main__":
    main()
