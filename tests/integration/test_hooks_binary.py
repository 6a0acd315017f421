"""Which gitaly-hooks a server installs for git: <bin_dir>/gitaly-hooks, else
the one beside the gitaly binary; with neither, the server refuses to start,
because git would silently skip the missing hooks and let pushes past
every check."""

import os
import shutil
import subprocess

import smarthttp_pb2
import smarthttp_pb2_grpc
from conftest import BUILD, GITALY_BIN, Gitaly, commit, make_repo, short_tmpdir
from svc_util import demux_sideband, parse_pkts, push_request, refs


def test_bin_dir_without_hooks_falls_back_to_own_directory(tmp_path):
    """conftest's bin_dir is an empty directory and its GitLab URL points
    at a closed port: the pre-receive hook must still run (through the
    gitaly-hooks beside build/bin/gitaly) and refuse the push, where a
    skipped hook would have let it through."""
    base = short_tmpdir()
    g = Gitaly(os.path.join(base, "g"))
    assert not os.path.exists(os.path.join(g.bin_dir, "gitaly-hooks"))
    g.start()
    try:
        target = g.path("t.git")
        make_repo(target)
        src = str(tmp_path / "src.git")
        make_repo(src)
        head = commit(src, {"a": b"a\n"}, "a")
        ch = g.channel("unix")
        stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(ch)
        repo = g.repo("t.git")
        repo.gl_repository = "project-1"  # the hooks refuse a push without it
        hdr = smarthttp_pb2.PostReceivePackRequest(repository=repo, gl_id="user-1")
        body = push_request(src, head, "refs/heads/main", caps="report-status side-band-64k")

        def reqs():
            yield hdr
            yield smarthttp_pb2.PostReceivePackRequest(data=body)
        out = b"".join(m.data for m in stub.PostReceivePack(reqs(), timeout=60))
        ch.close()
        band1, band2 = demux_sideband(out)
        assert b"GitLab: Internal API unreachable" in band2, out
        assert parse_pkts(band1)[0][1] == b"ng refs/heads/main pre-receive hook declined\n"
        assert refs(target) == ""
        assert g.wait_log(lambda e: "no gitaly-hooks in bin_dir" in e.get("msg", ""))
    finally:
        g.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_no_hooks_binary_anywhere_refuses_to_start():
    base = short_tmpdir()
    try:
        lone = os.path.join(base, "lone")
        os.makedirs(lone)
        shutil.copy(GITALY_BIN, os.path.join(lone, "gitaly"))
        g = Gitaly(os.path.join(base, "g"))
        g.write_config()
        r = subprocess.run([os.path.join(lone, "gitaly"), g.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode != 0
        assert b"gitaly-hooks not found in bin_dir" in r.stderr, r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
