"""The pack-objects cache end to end: real `git clone` through upload-pack
with uploadpack.packObjectsHook=gitaly-hooks, the hook calling
PackObjectsHookWithSidechannel on gitaly's internal socket, and gitaly
running (or not) `git pack-objects` through a recording git wrapper."""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import commit, git, make_repo, metric, short_tmpdir
from packcache_util import CacheServer, pack_checksum


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
    shutil.rmtree(s.tmp, ignore_errors=True)


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
    assert gen > 0 and all(l["pack_objects_cache.served_bytes"] == gen for l in lines)
    assert "Total" in lines[1].get("pack_objects.compression_statistics", "")
    assert len(srv.pack_runs()) == 2
    assert len(srv.cache_files()) == 1
    assert os.path.getsize(srv.cache_files()[0]) == gen
    m = srv.g.metrics()
    assert metric(m, "gitaly_pack_objects_cache_lookups_total", result="hit") == 2
    assert metric(m, "gitaly_pack_objects_cache_lookups_total", result="miss") == 2
    assert metric(m, "gitaly_pack_objects_served_bytes_total") == 4 * gen
    assert metric(m, "gitaly_pack_objects_generated_bytes_total") == 2 * gen
    assert metric(m, "gitaly_streamcache_sendfile_bytes_total") >= 2 * gen
    assert metric(m, "gitaly_pack_objects_cache_enabled", dir=srv.cache_dir,
                  max_age="300") == 1
