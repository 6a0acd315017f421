#!/usr/bin/python3
"""Pack-objects cache benchmark (issue 5), in one run:

1. Through the front door (the target): 16 concurrent identical
   `git clone` over smart HTTP through gitaly-gateway, against a gitaly
   without and then one with [pack_objects_cache] enabled (default
   min_occurrences = 1; with the cache on, PostUploadPackWithSidechannel
   runs upload-pack with the pack-objects hook, as upstream). Server CPU =
   gitaly's own CPU plus everything it reaped (upload-pack and, below it,
   pack-objects or gitaly-hooks; the cache's producers), from
   /proc/<gitaly>/stat before and after, plus the gateway's own CPU.
   Ratios are printed with and without the gateway.
1b. The same clones with upload-pack run directly by `git clone --no-local`
   (no gitaly transport, only the hook's call into gitaly): the cache's
   effect on git's side alone.
   16 concurrent identical `git clone --no-local` of a >=100k-object
   repository whose upload-pack runs without the hook (cache disabled:
   every clone runs its own pack-objects), then the same 16 clones with
   uploadpack.packObjectsHook=gitaly-hooks against a gitaly with
   [pack_objects_cache] enabled (default min_occurrences = 1). Server CPU =
   user+system time of every upload-pack process tree (measured by a
   wrapper with RUSAGE_CHILDREN: upload-pack, pack-objects, gitaly-hooks)
   plus gitaly's own CPU and its reaped children (pack-objects producers).
   Prints both totals and enabled/disabled (target <= 0.2). Every clone
   must hold exactly the source's objects.
2. Cache-hit serving throughput: PackObjectsHookWithSidechannel called
   directly (Python client, its own unix sidechannel, reading into a
   reused buffer) until it hits, against `cat <entry file> > /dev/null`
   and `cat <entry file> |` the same reading loop (target: within 10%).

The repository comes from tests/integration/repogen.py (the goclient
branch's generator; taken from that branch when not merged yet).
Usage: GITALY_BUILD=build /usr/bin/python3 bench/packcache.py
Env: CLONES (16), BENCH_WORK (scratch dir kept between runs, default
/tmp/packcache-bench), COMMITS (repogen commits, default its own).
"""

import hashlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ["GITALY_BUILD"] = os.path.abspath(os.environ.get("GITALY_BUILD", "build"))

from conftest import BUILD, Gitaly, git, short_tmpdir  # noqa: E402
from gateway_util import Gateway, GitLabStub, StubbedGitaly  # noqa: E402
from packcache_util import HOOKS_BIN  # noqa: E402

WORK = os.environ.get("BENCH_WORK", "/tmp/packcache-bench")
CLONES = int(os.environ.get("CLONES", "16"))
os.makedirs(WORK, exist_ok=True)


def load_repogen():
    try:
        import repogen  # noqa: F401
        return repogen
    except ImportError:
        pass
    path = os.path.join(WORK, "repogen.py")
    src = subprocess.run(["git", "-C", ROOT, "show", "goclient:tests/integration/repogen.py"],
                         stdout=subprocess.PIPE, check=True).stdout
    with open(path, "wb") as f:
        f.write(src)
    sys.path.insert(0, WORK)
    import repogen
    return repogen


# Runs upload-pack and appends the CPU seconds of its whole process tree.
UPLOAD_PACK_WRAPPER = r'''#!/usr/bin/python3
import resource, subprocess, sys
hook = sys.argv[1]
cfg = ["-c", "uploadpack.packObjectsHook=" + hook] if hook else []
rc = subprocess.call(["git"] + cfg + ["upload-pack"] + sys.argv[3:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[2], "a") as f:
    f.write("%f\n" % (ru.ru_utime + ru.ru_stime))
sys.exit(rc)
'''


def proc_cpu(pid):
    """utime+stime+cutime+cstime of pid in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def object_list(bare):
    out = git("-C", bare, "cat-file", "--batch-all-objects", "--batch-check")
    return hashlib.sha256(out).hexdigest(), out.count(b"\n")


def run_clones(g, payload, rel, hook, tag):
    wrapper = os.path.join(WORK, "upload-pack-wrapper")
    with open(wrapper, "w") as f:
        f.write(UPLOAD_PACK_WRAPPER)
    os.chmod(wrapper, 0o755)
    cpu_log = os.path.join(WORK, "cpu-%s.log" % tag)
    if os.path.exists(cpu_log):
        os.unlink(cpu_log)
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null",
               GITALY_HOOKS_PAYLOAD=payload)
    dests = [os.path.join(WORK, "clone-%s-%d" % (tag, i)) for i in range(CLONES)]
    for d in dests:
        shutil.rmtree(d, ignore_errors=True)
    up = "%s '%s' %s" % (wrapper, hook or "", cpu_log)
    g_before = proc_cpu(g.proc.pid)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["git", "clone", "-q", "--bare", "--no-local", "-u", up,
                               g.path(rel), d], env=env, stderr=subprocess.PIPE)
             for d in dests]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    g_cpu = proc_cpu(g.proc.pid) - g_before
    for p, e in zip(procs, errs):
        if p.returncode != 0:
            raise SystemExit("clone failed (%s): %s" % (tag, e.decode(errors="replace")))
    with open(cpu_log) as f:
        up_cpu = sum(float(x) for x in f.read().split())
    return dests, wall, up_cpu, g_cpu


def gateway_clones(src, rel, enabled, tag, want):
    """16 concurrent clones through gitaly-gateway; returns
    (wall, gitaly+reaped CPU, gateway CPU)."""
    stub = GitLabStub().start()
    toml = "[pack_objects_cache]\nenabled = true\n" if enabled else ""
    g = StubbedGitaly(short_tmpdir(), stub.url, extra_toml=toml)
    os.makedirs(os.path.dirname(g.path(rel)), exist_ok=True)
    shutil.copytree(src, g.path(rel), symlinks=True)
    g.start()
    gw = Gateway(short_tmpdir(), g).start()
    dests = [os.path.join(WORK, "gw-%s-%d" % (tag, i)) for i in range(CLONES)]
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null")
    try:
        for d in dests:
            shutil.rmtree(d, ignore_errors=True)
        g0, gw0 = proc_cpu(g.proc.pid), proc_cpu(gw.proc.pid)
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["git", "clone", "-q", "--bare", gw.url(rel), d], env=env,
                                  stderr=subprocess.PIPE) for d in dests]
        errs = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - t0
        g_cpu, gw_cpu = proc_cpu(g.proc.pid) - g0, proc_cpu(gw.proc.pid) - gw0
        for p, e in zip(procs, errs):
            if p.returncode != 0:
                raise SystemExit("clone failed (%s): %s" % (tag, e.decode(errors="replace")))
        for d in dests:
            if object_list(d) != want:
                raise SystemExit("clone %s does not hold the source's objects" % d)
        if enabled:
            hits = [e.get("pack_objects_cache.hit") for e in g.log_entries()
                    if e.get("grpc.method") == "PackObjectsHookWithSidechannel"]
            if len(hits) != CLONES:
                raise SystemExit("expected %d pack-objects hook calls, saw %d" % (CLONES, len(hits)))
    finally:
        for d in dests:
            shutil.rmtree(d, ignore_errors=True)
        gw.stop()
        g.stop()
        stub.stop()
        shutil.rmtree(g.base, ignore_errors=True)
        shutil.rmtree(gw.base, ignore_errors=True)
    return wall, g_cpu, gw_cpu


def consume(sock_or_fd, buf):
    """Reads until EOF into a reused buffer; returns the byte count."""
    n = 0
    view = memoryview(buf)
    if isinstance(sock_or_fd, socket.socket):
        while True:
            k = sock_or_fd.recv_into(view)
            if not k:
                return n
            n += k
    while True:
        k = os.readv(sock_or_fd, [view])
        if not k:
            return n
        n += k


def hook_call(g, stub, hook_pb2, repo, stdin, buf):
    """One PackObjectsHookWithSidechannel call; (seconds, bytes)."""
    d = tempfile.mkdtemp(dir=WORK)
    path = os.path.join(d, "sidechannel")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)
    got = {}

    def serve():
        c, _ = lsock.accept()
        c.sendall(stdin)
        c.shutdown(socket.SHUT_WR)
        got["n"] = consume(c, buf)
        got["t"] = time.perf_counter()
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    t0 = time.perf_counter()
    stub.PackObjectsHookWithSidechannel(hook_pb2.PackObjectsHookWithSidechannelRequest(
        repository=repo, args=["pack-objects", "--revs", "--thin", "--stdout",
                               "--delta-base-offset", "-q"],
        git_protocol="http"), metadata=[("gitaly-sidechannel-socket", path)] + g.md(),
        timeout=600)
    t.join()
    lsock.close()
    shutil.rmtree(d, ignore_errors=True)
    return got["t"] - t0, got["n"]


def best_of(fn, runs=5):
    return min(fn() for _ in range(runs))


def main():
    repogen = load_repogen()
    commits = int(os.environ.get("COMMITS", str(repogen.COMMITS)))
    t = time.time()
    src = repogen.large_repo(WORK, commits=commits)
    print("repository %s (%s objects, ready in %.1fs)" % (
        src, repogen.object_count(src), time.time() - t))
    print("load average before: %s" % open("/proc/loadavg").read().strip())

    rel = "bench/large.git"
    want = object_list(src)
    front = {}
    for tag, enabled in (("disabled", False), ("enabled", True)):
        wall, g_cpu, gw_cpu = gateway_clones(src, rel, enabled, tag, want)
        front[tag] = (g_cpu, gw_cpu)
        print("gateway  %-8s %d clones: wall %.2fs, gitaly+reaped CPU %.2fs, gateway CPU %.2fs,"
              " all %d objects intact" % (tag, CLONES, wall, g_cpu, gw_cpu, want[1]))
    on, off = front["enabled"], front["disabled"]
    print("CPU ratio enabled/disabled through the gateway: %.3f with the gateway's CPU, "
          "%.3f gitaly and its children only (target <= 0.2)" % (
              sum(on) / sum(off), on[0] / off[0]))
    print("load average after gateway clones: %s" % open("/proc/loadavg").read().strip())

    base = short_tmpdir()
    g = Gitaly(base, extra_toml="[pack_objects_cache]\nenabled = true\n")
    os.makedirs(os.path.dirname(g.path(rel)), exist_ok=True)
    shutil.copytree(src, g.path(rel), symlinks=True)
    g.start()
    try:
        sys.path.insert(0, os.path.join(BUILD, "py"))
        import hook_pb2
        import hook_pb2_grpc
        import json
        import base64
        runtime = os.path.join(g.runtime_dir, "gitaly-%d" % g.proc.pid)
        payload = base64.b64encode(json.dumps({
            "requested_hooks": 16,
            "repository": json.dumps({"storageName": "default", "relativePath": rel}),
            "object_format": "sha1", "runtime_dir": runtime,
            "internal_socket": os.path.join(runtime, "sock.d", "intern"),
            "internal_socket_token": "", "transaction": None,
            "user_details": {"username": "bench", "userid": "user-1", "protocol": "http",
                             "remote_ip": "127.0.0.1"},
        }).encode()).decode()

        results = {}
        for tag, hook in (("disabled", None), ("enabled", HOOKS_BIN)):
            dests, wall, up_cpu, g_cpu = run_clones(g, payload, rel, hook, tag)
            for d in dests:
                if object_list(d) != want:
                    raise SystemExit("clone %s does not hold the source's objects" % d)
                shutil.rmtree(d, ignore_errors=True)
            results[tag] = up_cpu + g_cpu
            print("direct   %-8s %d clones: wall %.2fs, server CPU %.2fs (upload-pack trees %.2fs, "
                  "gitaly+producers %.2fs), all %d objects intact" % (
                      tag, CLONES, wall, up_cpu + g_cpu, up_cpu, g_cpu, want[1]))
        print("CPU ratio enabled/disabled, upload-pack run directly: %.3f" % (
            results["enabled"] / results["disabled"]))
        print("load average after clones: %s" % open("/proc/loadavg").read().strip())

        # Hit serving throughput.
        refs = git("-C", g.path(rel), "for-each-ref", "--format=%(objectname)")
        stdin = refs + b"\n"
        buf = bytearray(4 << 20)
        ch = g.channel("unix")
        stub = hook_pb2_grpc.HookServiceStub(ch)
        repo = g.repo(rel)
        for _ in range(2):  # first uncached, second creates the entry
            hook_call(g, stub, hook_pb2, repo, stdin, buf)
        cache_dir = os.path.join(g.storages["default"], "+gitaly", "PackObjectsCache")
        files = sorted((os.path.getmtime(os.path.join(d, f)), os.path.join(d, f))
                       for d, _, fs in os.walk(cache_dir) for f in fs)
        entry = files[-1][1]
        size = os.path.getsize(entry)
        hit = best_of(lambda: hook_call(g, stub, hook_pb2, repo, stdin, buf)[0])
        n = hook_call(g, stub, hook_pb2, repo, stdin, buf)[1]
        assert n == size, (n, size)

        def cat_null():
            t0 = time.perf_counter()
            with open(os.devnull, "wb") as null:
                subprocess.run(["cat", entry], stdout=null, check=True)
            return time.perf_counter() - t0

        def cat_pipe():
            t0 = time.perf_counter()
            p = subprocess.Popen(["cat", entry], stdout=subprocess.PIPE)
            consume(p.stdout.fileno(), buf)
            p.wait()
            return time.perf_counter() - t0

        cn = best_of(cat_null)
        cp = best_of(cat_pipe)
        mib = size / (1 << 20)
        print("cache entry %.1f MiB: hit served in %.1f ms (%.0f MiB/s); "
              "cat > /dev/null %.1f ms (%.0f MiB/s); cat | reader %.1f ms (%.0f MiB/s)" % (
                  mib, hit * 1e3, mib / hit, cn * 1e3, mib / cn, cp * 1e3, mib / cp))
        print("hit time / cat>/dev/null time: %.2f; hit / cat|reader: %.2f (target <= 1.1)" % (
            hit / cn, hit / cp))
        ch.close()
        print("load average after: %s" % open("/proc/loadavg").read().strip())
    finally:
        g.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
