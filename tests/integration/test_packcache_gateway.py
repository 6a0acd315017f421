"""The pack-objects cache behind the real front door: `git clone` over
smart HTTP through gitaly-gateway, PostUploadPackWithSidechannel running
upload-pack with uploadpack.packObjectsHook=gitaly-hooks (the SmartHTTP
service does so when [pack_objects_cache] is on). Skipped until the gateway
and the SmartHTTP service are both in the build."""

import os
import shutil
import subprocess

import pytest

from conftest import short_tmpdir
from packcache_util import cache_toml, make_git_wrapper, pack_checksum, read_pack_runs
from test_packcache import make_big_repo

gateway_util = pytest.importorskip("gateway_util")


@pytest.fixture
def front():
    if not os.access(gateway_util.GATEWAY_BIN, os.X_OK):
        pytest.skip("no gitaly-gateway in this build")
    tmp = short_tmpdir()
    wrapper, pack_log, _ = make_git_wrapper(tmp)
    stub = gateway_util.GitLabStub().start()
    g = gateway_util.StubbedGitaly(short_tmpdir(), stub.url, token="gwtoken",
                                   extra_toml=cache_toml(wrapper))
    g.start()
    gw = gateway_util.Gateway(short_tmpdir(), g).start()
    yield g, gw, tmp, pack_log
    errors = []
    for f in (gw.stop, g.stop, stub.stop):
        try:
            f()
        except AssertionError as e:
            errors.append(str(e))
    for d in (tmp, g.base, gw.base):
        shutil.rmtree(d, ignore_errors=True)
    assert not errors, errors


def hook_lines(g):
    return [e for e in g.log_entries() if e.get("grpc.method") == "PackObjectsHookWithSidechannel"]


def clone(url, dest):
    return subprocess.run(["git", "-c", "protocol.version=2", "clone", "--bare", url, dest],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                          env=dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null",
                                   GIT_CONFIG_SYSTEM="/dev/null"))


def hook_active(g):
    if not hook_lines(g):
        pytest.skip("SmartHTTP does not run upload-pack with the pack-objects hook yet")


def test_http_clones_through_gateway_use_the_cache(front):
    g, gw, tmp, pack_log = front
    make_big_repo(g.path("group/p.git"))
    url = gw.url("group/p.git")
    sums = []
    for i in range(4):
        dest = os.path.join(tmp, "seq%d" % i)
        r = clone(url, dest)
        assert r.returncode == 0, r.stderr
        sums.append(pack_checksum(dest))
    hook_active(g)
    assert len(set(sums)) == 1
    lines = hook_lines(g)
    assert [l["pack_objects_cache.hit"] for l in lines] == ["false", "false", "true", "true"]
    assert all(l["grpc.code"] == "OK" for l in lines)
    assert len(read_pack_runs(pack_log)) == 2
    files = [f for d, _, fs in os.walk(os.path.join(g.storages["default"], "+gitaly",
                                                    "PackObjectsCache")) for f in fs]
    assert len(files) == 1


def test_concurrent_http_clones_through_gateway(front):
    g, gw, tmp, pack_log = front
    make_big_repo(g.path("group/p.git"))
    url = gw.url("group/p.git")
    procs = []
    for i in range(8):
        dest = os.path.join(tmp, "par%d" % i)
        procs.append((subprocess.Popen(["git", "clone", "-q", "--bare", url, dest],
                                       stderr=subprocess.PIPE), dest))
    sums = set()
    for p, dest in procs:
        _, err = p.communicate(timeout=300)
        if p.returncode != 0:
            errors = [l for l in (gw.log_text() + g.log_text()).splitlines()
                      if "error" in l and "level=info" not in l]
            pytest.fail("clone failed: %r; server errors: %s" % (err, "\n".join(errors[-6:])))
        sums.add(pack_checksum(dest))
    hook_active(g)
    assert len(sums) == 1
    # min_occurrences = 1: the first is streamed, the second creates the
    # entry, the six others share it.
    assert len(read_pack_runs(pack_log)) == 2
    lines = hook_lines(g)
    assert len(lines) == 8
    assert sum(l["pack_objects_cache.hit"] == "true" for l in lines) == 6
