"""gitaly-hooks as uploadpack.packObjectsHook against a fake HookService:
the relay of the side-band stream it receives on its sidechannel. Band 1
must reach stdout byte for byte and band 2 stderr, flush packets carry
nothing, whether stdout is a pipe (the splice path upload-pack uses) or a
regular file (the copying path); a malformed stream fails the hook with
its reason. The fake answers the RPC only after the stream, as gitaly does."""

import base64
import json
import os
import socket
import subprocess
import sys
from concurrent import futures

import grpc
import pytest

from conftest import PY_STUBS, short_tmpdir
from packcache_util import HOOKS_BIN

sys.path.insert(0, PY_STUBS)
import hook_pb2  # noqa: E402
import hook_pb2_grpc  # noqa: E402


def pkt(band, data):
    return b"%04x" % (len(data) + 5) + bytes([band]) + data


class FakeHook(hook_pb2_grpc.HookServiceServicer):
    def __init__(self):
        self.stream = b""
        self.stdin = None

    def PackObjectsHookWithSidechannel(self, request, context):
        path = dict(context.invocation_metadata())["gitaly-sidechannel-socket"]
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        got = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            got += b
        self.stdin = got
        c.sendall(self.stream)
        c.close()
        return hook_pb2.PackObjectsHookWithSidechannelResponse()


@pytest.fixture
def fake():
    tmp = short_tmpdir()
    sock = os.path.join(tmp, "intern")
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    f = FakeHook()
    hook_pb2_grpc.add_HookServiceServicer_to_server(f, srv)
    srv.add_insecure_port("unix://" + sock)
    srv.start()
    f.tmp, f.sock = tmp, sock
    yield f
    srv.stop(0)


def run_hook(f, stdout):
    payload = base64.b64encode(json.dumps({
        "requested_hooks": 16,
        "repository": json.dumps({"storageName": "default", "relativePath": "r.git"}),
        "object_format": "sha1", "runtime_dir": f.tmp, "internal_socket": f.sock,
        "internal_socket_token": "", "transaction": None,
        "user_details": {"username": "u", "userid": "user-1", "protocol": "http",
                         "remote_ip": "127.0.0.1"}}).encode()).decode()
    env = dict(os.environ, GITALY_HOOKS_PAYLOAD=payload)
    return subprocess.run([HOOKS_BIN, "git", "pack-objects", "--revs", "--stdout"],
                          input=b"want-list\n--not\n\n", stdout=stdout,
                          stderr=subprocess.PIPE, env=env, timeout=60)


def stream_and_expect(seed):
    """A stream mixing full-size, tiny and empty band-1 packets, band-2
    progress and flush packets; returns (stream, stdout, stderr)."""
    import random
    rnd = random.Random(seed)
    stream, out, err = b"", b"", b""
    for i in range(120):
        kind = rnd.random()
        if kind < 0.6:
            d = rnd.randbytes(65515)
        elif kind < 0.8:
            d = rnd.randbytes(rnd.randrange(0, 300))
        elif kind < 0.9:
            d = b"progress %d\r" % i
            stream += pkt(2, d)
            err += d
            continue
        else:
            stream += b"0000"
            continue
        stream += pkt(1, d)
        out += d
    stream += b"0000"
    return stream, out, err


@pytest.mark.parametrize("to", ["pipe", "file"])
def test_relay_demultiplexes_the_side_band_stream(fake, to, tmp_path):
    fake.stream, want_out, want_err = stream_and_expect(7)
    if to == "pipe":
        r = run_hook(fake, subprocess.PIPE)
        out = r.stdout
    else:
        path = tmp_path / "out"
        with open(path, "wb") as fh:
            r = run_hook(fake, fh)
        out = path.read_bytes()
    assert r.returncode == 0, r.stderr
    assert fake.stdin == b"want-list\n--not\n\n"
    assert len(out) == len(want_out) and out == want_out
    assert r.stderr == want_err


@pytest.mark.parametrize("to", ["pipe", "file"])
@pytest.mark.parametrize("tail,why", [
    (pkt(3, b"x"), b"unexpected side band: 3"),
    (b"0003", b"invalid packet length 3"),
    (pkt(1, b"abcdef")[:8], b"read packet: unexpected EOF"),
    (b"00", b"read packet header: unexpected EOF"),
])
def test_relay_rejects_malformed_streams(fake, to, tail, why, tmp_path):
    fake.stream = pkt(1, b"good") + b"0000" + tail
    if to == "pipe":
        r = run_hook(fake, subprocess.PIPE)
    else:
        with open(tmp_path / "out", "wb") as fh:
            r = run_hook(fake, fh)
    assert r.returncode != 0
    assert b"error executing git hook: " + why in r.stderr, r.stderr
