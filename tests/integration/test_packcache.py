"""The pack-objects cache end to end: real `git clone` over smart HTTP
through gitaly-gateway, gitaly's upload-pack running with
uploadpack.packObjectsHook=gitaly-hooks, the hook calling
PackObjectsHookWithSidechannel on gitaly's internal socket, and gitaly
running (or not) `git pack-objects` through a recording git wrapper. The
ssh_* tests clone through gitaly's own SSHService/SSHUploadPack, as
gitlab-shell does; the pack-objects limiting test needs a non-loopback
client, which the gateway cannot be, and runs that upload-pack locally."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from conftest import PY_STUBS, commit, git, make_repo, metric, short_tmpdir
from packcache_util import CacheServer, pack_checksum

sys.path.insert(0, PY_STUBS)
import hook_pb2  # noqa: E402
import hook_pb2_grpc  # noqa: E402


def make_big_repo(path, files=60, commits=4):
    """A repository whose pack takes a moment to produce."""
    make_repo(path)
    parent = ()
    for c in range(commits):
        blobs = {"f%03d" % i: (("%d-%d\n" % (c, i)) * 400 + os.urandom(2000).hex()).encode()
                 for i in range(files)}
        oid = commit(path, blobs, "c%d" % c, parents=parent, ref="refs/heads/main",
                     date=1700000000 + c)
        parent = (oid,)
    return path


@pytest.fixture
def srv(gitaly_factory):
    s = CacheServer(gitaly_factory)
    yield s
    s.close()


def test_first_uncached_second_creates_third_hits(srv):
    make_big_repo(srv.g.path("p.git"))
    sums = []
    for i in range(4):
        dest = os.path.join(srv.tmp, "c%d" % i)
        r = srv.clone("p.git", dest)
        assert r.returncode == 0, r.stderr
        sums.append(pack_checksum(dest))
        if i == 0:
            # Seen once: streamed straight through, nothing written to disk.
            assert srv.cache_files() == []
    assert len(set(sums)) == 1 and sums[0]
    lines = srv.g.wait_log(lambda e: e.get("grpc.method") == "PackObjectsHookWithSidechannel"
                           and e.get("pack_objects_cache.hit") == "true", timeout=5)
    lines = srv.hook_lines()
    assert [l["pack_objects_cache.hit"] for l in lines] == ["false", "false", "true", "true"]
    assert len({l["pack_objects_cache.key"] for l in lines}) == 1
    assert all(l["grpc.code"] == "OK" for l in lines)
    gen = lines[1]["pack_objects_cache.generated_bytes"]
    # Progress text on band 2 varies between runs; the entry is served as is.
    assert lines[0]["pack_objects_cache.served_bytes"] > 0
    assert gen > 0 and all(l["pack_objects_cache.served_bytes"] == gen for l in lines[1:])
    assert "Total" in lines[1].get("pack_objects.compression_statistics", "")
    assert len(srv.pack_runs()) == 2
    assert len(srv.cache_files()) == 1
    assert os.path.getsize(srv.cache_files()[0]) == gen
    m = srv.g.metrics()
    assert metric(m, "gitaly_pack_objects_cache_lookups_total", result="hit") == 2
    assert metric(m, "gitaly_pack_objects_cache_lookups_total", result="miss") == 2
    first = lines[0]["pack_objects_cache.served_bytes"]
    assert metric(m, "gitaly_pack_objects_served_bytes_total") == 3 * gen + first
    assert metric(m, "gitaly_pack_objects_generated_bytes_total") == gen + first
    assert metric(m, "gitaly_streamcache_sendfile_bytes_total") >= 2 * gen
    assert metric(m, "gitaly_pack_objects_cache_enabled", dir=srv.cache_dir,
                  max_age="300") == 1


def concurrent_clones(srv, rel, n, remote_ip="127.0.0.1"):
    """Starts n clones at once; returns [(returncode, stderr, dest)]."""
    procs = []
    for i in range(n):
        dest = os.path.join(srv.tmp, "cc-%s-%d" % (rel.replace("/", "_"), i))
        argv, env = srv.clone_cmd(rel, dest, remote_ip)
        procs.append((subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE), dest))
    out = []
    for p, dest in procs:
        _, err = p.communicate(timeout=180)
        out.append((p.returncode, err, dest))
    return out


@pytest.mark.parametrize("min_occ,runs", [(0, 1), (1, 2)])
def test_concurrent_identical_clones_share_one_producer(gitaly_factory, min_occ, runs):
    srv = CacheServer(gitaly_factory, min_occurrences=min_occ)
    try:
        make_big_repo(srv.g.path("p.git"))
        open(srv.slow_flag, "w").close()  # keep the producer busy while all join
        res = concurrent_clones(srv, "p.git", 8)
        for rc, err, _ in res:
            assert rc == 0, err
        sums = {pack_checksum(dest) for _, _, dest in res}
        assert len(sums) == 1
        assert len(srv.pack_runs()) == runs
        lines = srv.hook_lines()
        assert len(lines) == 8 and all(l["grpc.code"] == "OK" for l in lines)
        hits = [l for l in lines if l["pack_objects_cache.hit"] == "true"]
        assert len(hits) == 8 - runs
        # Every reader of the shared entry got the whole entry.
        gens = [l["pack_objects_cache.generated_bytes"] for l in lines
                if l["pack_objects_cache.hit"] == "false"]
        served = {l["pack_objects_cache.served_bytes"] for l in hits}
        assert len(served) == 1 and served.pop() in gens
    finally:
        srv.close()


def test_killed_producer_fails_every_reader_then_regenerates(gitaly_factory):
    srv = CacheServer(gitaly_factory, min_occurrences=0)
    try:
        make_big_repo(srv.g.path("p.git"), files=120)
        open(srv.slow_flag, "w").close()
        results = []
        t = threading.Thread(target=lambda: results.extend(concurrent_clones(srv, "p.git", 3)))
        t.start()
        deadline = time.time() + 30
        # Wait until the producer is running and has written part of the entry.
        while time.time() < deadline:
            files = srv.cache_files()
            if srv.pack_runs() and files and os.path.getsize(files[0]) > 20000:
                break
            time.sleep(0.05)
        else:
            pytest.fail("producer never started")
        assert len(srv.g.wait_log(lambda e: False, timeout=0) or []) == 0
        os.killpg(srv.pack_runs()[0], signal.SIGKILL)
        t.join(120)
        assert len(results) == 3
        for rc, err, _ in results:
            assert rc != 0, "a reader of a killed producer succeeded"
        lines = srv.g.wait_log(lambda e: e.get("grpc.method") ==
                               "PackObjectsHookWithSidechannel", timeout=5)
        deadline = time.time() + 5
        while len(srv.hook_lines()) < 3 and time.time() < deadline:
            time.sleep(0.05)
        lines = srv.hook_lines()
        if len(lines) != 3:
            with open("/tmp/pc/killed.log", "w") as f:
                f.write(srv.g.log_text())
        assert len(lines) == 3
        for l in lines:
            assert l["grpc.code"] == "Internal", l
            assert "git-pack-objects" in l["error"] and "signal" in l["error"], l["error"]
        # The failed entry is gone, from the index and from disk.
        assert srv.cache_files() == []
        os.unlink(srv.slow_flag)
        dest = os.path.join(srv.tmp, "after")
        r = srv.clone("p.git", dest)
        assert r.returncode == 0, r.stderr
        pack_checksum(dest)
        assert len(srv.pack_runs()) == 2
        assert srv.hook_lines()[-1]["pack_objects_cache.hit"] == "false"
    finally:
        srv.close()


def test_entries_older_than_max_age_leave_the_disk(gitaly_factory):
    srv = CacheServer(gitaly_factory, min_occurrences=0, max_age="1s")
    try:
        make_big_repo(srv.g.path("p.git"), files=10, commits=1)
        r = srv.clone("p.git", os.path.join(srv.tmp, "a"))
        assert r.returncode == 0, r.stderr
        assert len(srv.cache_files()) == 1
        deadline = time.time() + 10
        while srv.cache_files() and time.time() < deadline:
            time.sleep(0.1)
        assert srv.cache_files() == []
        m = srv.g.metrics()
        assert metric(m, "gitaly_streamcache_filestore_removed_total", dir=srv.cache_dir) >= 1
        assert metric(m, "gitaly_streamcache_index_entries", dir=srv.cache_dir) == 0
        r = srv.clone("p.git", os.path.join(srv.tmp, "b"))
        assert r.returncode == 0, r.stderr
        assert [l["pack_objects_cache.hit"] for l in srv.hook_lines()] == ["false", "false"]
        assert len(srv.pack_runs()) == 2
    finally:
        srv.close()


def test_keys_seen_once_are_never_written(srv):
    for name in ("a.git", "b.git", "c.git"):
        make_big_repo(srv.g.path(name), files=10, commits=1)
        r = srv.clone(name, os.path.join(srv.tmp, name))
        assert r.returncode == 0, r.stderr
        pack_checksum(os.path.join(srv.tmp, name))
    assert srv.cache_files() == []
    assert len(srv.pack_runs()) == 3
    assert all(l["pack_objects_cache.hit"] == "false" for l in srv.hook_lines())


def test_pack_objects_limiting_by_client_ip(gitaly_factory):
    srv = CacheServer(gitaly_factory, min_occurrences=0, extra=(
        "\n[pack_objects_limiting]\nmax_concurrency = 1\nmax_queue_length = 1\n"))
    try:
        for name in ("a.git", "b.git", "c.git"):
            make_big_repo(srv.g.path(name), files=40, commits=2)
        open(srv.slow_flag, "w").close()
        # Three different keys from one remote client: one runs, one waits,
        # one is refused.
        procs = []
        for name in ("a.git", "b.git", "c.git"):
            argv, env = srv.clone_cmd(name, os.path.join(srv.tmp, "r-" + name), "10.1.2.3")
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
            time.sleep(0.3)
        res = [(p.wait(180), p.stderr.read()) for p in procs]
        ok = [r for r in res if r[0] == 0]
        refused = [r for r in res if r[0] != 0]
        assert len(ok) == 2 and len(refused) == 1, res
        assert b"error resource exhausted, please try again later" in refused[0][1]
        lines = srv.hook_lines()
        dropped = [l for l in lines if l["grpc.code"] == "ResourceExhausted"]
        assert len(dropped) == 1
        assert dropped[0]["limit.limiting_type"] == "pack-objects"
        assert dropped[0]["limit.limiting_key"] == "10.1.2.3"
        assert dropped[0]["limit.concurrency_dropped"] == "max_size"
        m = srv.g.metrics()
        assert metric(m, "gitaly_pack_objects_dropped_total", reason="max_size") == 1
        # Loopback clients are never limited.
        res = concurrent_clones(srv, "a.git", 1) + concurrent_clones(srv, "b.git", 1)
        assert all(rc == 0 for rc, _, _ in res)
    finally:
        srv.close()


def test_adaptive_pack_objects_limiting(gitaly_factory):
    """`adaptive = true`: the per-IP limit is upstream's "packObjects"
    adaptive limit starting at initial_limit (max_concurrency is ignored),
    exported as gitaly_concurrency_limiting_current_limit; with
    initial_limit = 1 the second producer of one client IP waits for the
    first, the third is refused, and another IP is not affected."""
    srv = CacheServer(gitaly_factory, min_occurrences=0, extra=(
        "\n[pack_objects_limiting]\nadaptive = true\ninitial_limit = 1\nmin_limit = 1\n"
        "max_limit = 4\nmax_concurrency = 100\nmax_queue_length = 1\n"))
    try:
        assert metric(srv.g.metrics(), "gitaly_concurrency_limiting_current_limit",
                      limit="packObjects") == 1
        # a's (slowed) producer must outlast the next two clones' set-up.
        make_big_repo(srv.g.path("a.git"), files=400, commits=3)
        for name in ("b.git", "c.git", "d.git"):
            make_big_repo(srv.g.path(name), files=20, commits=1)
        open(srv.slow_flag, "w").close()

        def wait_for(cond, what):
            deadline = time.time() + 60
            while not cond():
                assert time.time() < deadline, what
                time.sleep(0.05)

        def queued():
            return metric(srv.g.metrics(), "gitaly_pack_objects_queued") or 0

        procs = []

        def launch(name, ip):
            argv, env = srv.clone_cmd(name, os.path.join(srv.tmp, "r-" + name), ip)
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))

        # Steps paced by the server's state, not by sleeps: a's producer
        # runs, b queues behind it, c finds the queue full, d (another IP)
        # runs beside a.
        launch("a.git", "10.1.2.3")
        wait_for(lambda: len(srv.pack_runs()) == 1, "a's producer never started")
        launch("b.git", "10.1.2.3")
        wait_for(lambda: queued() == 1, "b never queued")
        launch("c.git", "10.1.2.3")
        assert procs[2].wait(180) != 0
        launch("d.git", "10.9.9.9")
        wait_for(lambda: len(srv.pack_runs()) == 2, "d's producer never started")
        res = [(p.wait(180), p.stderr.read()) for p in procs]
        assert [rc == 0 for rc, _ in res] == [True, True, False, True], res
        assert b"error resource exhausted, please try again later" in res[2][1]
        lines = srv.hook_lines()
        dropped = [l for l in lines if l["grpc.code"] == "ResourceExhausted"]
        assert len(dropped) == 1
        assert dropped[0]["limit.limiting_type"] == "pack-objects"
        assert dropped[0]["limit.limiting_key"] == "10.1.2.3"
        assert dropped[0]["limit.concurrency_dropped"] == "max_size"
        ok = [l for l in lines if l["grpc.code"] == "OK"]
        by_key = {}
        for l in ok:
            by_key.setdefault(l.get("limit.limiting_key"), []).append(l)
        # 10.1.2.3: one ran at once, the other queued behind it.
        waits = sorted(l["limit.concurrency_queue_ms"] for l in by_key["10.1.2.3"])
        assert len(waits) == 2 and waits[0] < 100 and waits[1] >= 100, waits
        # 10.9.9.9 had its own slot.
        assert by_key["10.9.9.9"][0]["limit.concurrency_queue_ms"] < 100
        m = srv.g.metrics()
        assert metric(m, "gitaly_pack_objects_dropped_total", reason="max_size") == 1
    finally:
        srv.close()


def ssh_clone(srv, rel, dest):
    """`git clone` whose transport is gitaly's SSHService/SSHUploadPack."""
    from conftest import PY_STUBS
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null",
               GIT_SSH_COMMAND="/usr/bin/python3 %s" % os.path.join(
                   here, "packcache_ssh_bridge.py"),
               GIT_SSH_VARIANT="simple",
               PC_GITALY_SOCKET=srv.g.socket_path, PC_PY_STUBS=PY_STUBS)
    return subprocess.run(["git", "clone", "--bare", "gitaly:" + rel, dest], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)


def test_ssh_upload_pack_uses_the_cache(srv):
    """SSHService runs upload-pack with the hook when the cache is on."""
    make_big_repo(srv.g.path("p.git"), files=20, commits=2)
    sums = []
    for i in range(3):
        dest = os.path.join(srv.tmp, "ssh%d" % i)
        r = ssh_clone(srv, "p.git", dest)
        assert r.returncode == 0, r.stderr
        sums.append(pack_checksum(dest))
    assert len(set(sums)) == 1
    lines = srv.hook_lines()
    if not lines:
        pytest.skip("SSHService does not run upload-pack with the pack-objects hook yet")
    assert [l["pack_objects_cache.hit"] for l in lines] == ["false", "false", "true"]
    assert all(l["grpc.code"] == "OK" for l in lines)
    assert len(srv.pack_runs()) == 2
    assert len(srv.cache_files()) == 1


def test_concurrent_ssh_clones_share_one_producer(gitaly_factory):
    srv = CacheServer(gitaly_factory, min_occurrences=0)
    try:
        make_big_repo(srv.g.path("p.git"))
        open(srv.slow_flag, "w").close()
        results = [None] * 8

        def one(i):
            dest = os.path.join(srv.tmp, "ssh-par%d" % i)
            results[i] = (ssh_clone(srv, "p.git", dest), dest)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        sums = set()
        for r, dest in results:
            assert r.returncode == 0, r.stderr
            sums.add(pack_checksum(dest))
        assert len(sums) == 1
        assert len(srv.pack_runs()) == 1
        lines = srv.hook_lines()
        assert len(lines) == 8
        assert sum(l["pack_objects_cache.hit"] == "true" for l in lines) == 7
    finally:
        srv.close()


@pytest.mark.parametrize("args,why", [
    (["pack-objects", "--revs"], "missing --stdout"),
    (["pack-objects", "--revs", "--stdout", "HEAD"], "non-flag argument"),
    (["--shallow-file", "", "pack-objects", "-q", "x"], "non-flag argument"),
])
def test_invalid_arguments_after_flags_are_refused(srv, args, why):
    """A request whose arguments fail validation after some flags were
    collected is refused with InvalidArgument, and the server lives on."""
    make_repo(srv.g.path("p.git"))
    ch = srv.g.channel("unix")
    stub = hook_pb2_grpc.HookServiceStub(ch)
    req = hook_pb2.PackObjectsHookWithSidechannelRequest(
        repository=srv.g.repo("p.git"), args=args, git_protocol="http")
    md = [("gitaly-sidechannel-socket", "/nonexistent/sidechannel")] + srv.g.md()
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as e:
            stub.PackObjectsHookWithSidechannel(req, metadata=md, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert e.value.details().endswith(why), e.value.details()
    ch.close()
    assert srv.g.proc.poll() is None
