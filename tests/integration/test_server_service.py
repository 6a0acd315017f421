"""ServerService and grpc.health.v1.Health compared with what the machine
says: git version, .gitaly-metadata, statvfs, a fake NTP server."""

import json
import os
import socket
import struct
import threading
import time

import grpc
import pytest
from google.protobuf import duration_pb2

import health_pb2
import health_pb2_grpc
import server_pb2
from conftest import assert_code, git_version, rpc_error

NTP_EPOCH = 2208988800


def test_server_info(gitaly, unix_channel):
    r = gitaly.server_stub(unix_channel).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "VERSION")) as f:
        assert r.server_version == f.read().strip()
    assert r.git_version == git_version()
    assert [s.storage_name for s in r.storage_statuses] == ["default", "other"]
    for s in r.storage_statuses:
        path = gitaly.storages[s.storage_name]
        with open(os.path.join(path, ".gitaly-metadata")) as f:
            meta = json.load(f)
        assert s.filesystem_id == meta["gitaly_filesystem_id"]
        assert len(s.filesystem_id) == 36 and s.filesystem_id[14] == "4"  # uuid v4
        assert s.readable and s.writeable
        assert s.replication_factor == 1
        assert s.fs_type
        assert not os.path.exists(os.path.join(path, "+testWrite"))
    ids = {s.filesystem_id for s in r.storage_statuses}
    assert len(ids) == 2


def test_filesystem_id_is_stable_across_restarts(gitaly_factory):
    g = gitaly_factory()
    with open(os.path.join(g.storages["default"], ".gitaly-metadata")) as f:
        first = f.read()
    g.stop()
    g.start()
    with open(os.path.join(g.storages["default"], ".gitaly-metadata")) as f:
        assert f.read() == first
    with g.channel() as ch:
        r = g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
    assert r.storage_statuses[0].filesystem_id == json.loads(first)["gitaly_filesystem_id"]


def test_unwritable_storage(gitaly_factory):
    if os.geteuid() == 0:
        # root writes through modes; use a read-only bind of nothing else
        pytest.skip("root ignores directory permissions")
    g = gitaly_factory()
    os.chmod(g.storages["other"], 0o555)
    try:
        with g.channel() as ch:
            r = g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
        st = {s.storage_name: s for s in r.storage_statuses}
        assert st["other"].readable and not st["other"].writeable
        assert st["default"].writeable
    finally:
        os.chmod(g.storages["other"], 0o755)


def test_missing_storage_dir_is_not_readable(gitaly_factory):
    g = gitaly_factory()
    os.rename(g.storages["other"], g.storages["other"] + ".gone")
    try:
        with g.channel() as ch:
            r = g.server_stub(ch).ServerInfo(server_pb2.ServerInfoRequest(), timeout=10)
        st = {s.storage_name: s for s in r.storage_statuses}
        assert not st["other"].readable and not st["other"].writeable
        assert st["default"].readable
    finally:
        os.rename(g.storages["other"] + ".gone", g.storages["other"])


def test_disk_statistics(gitaly, unix_channel):
    r = gitaly.server_stub(unix_channel).DiskStatistics(server_pb2.DiskStatisticsRequest(),
                                                        timeout=10)
    assert [s.storage_name for s in r.storage_statuses] == ["default", "other"]
    for s in r.storage_statuses:
        v = os.statvfs(gitaly.storages[s.storage_name])
        avail = v.f_bavail * v.f_bsize
        used = (v.f_blocks - v.f_bfree) * v.f_bsize
        tol = 64 * 1024 * 1024
        assert abs(s.available - avail) < tol, (s.available, avail)
        assert abs(s.used - used) < tol, (s.used, used)
        assert s.available > 0 and s.used > 0


def test_readiness_check(gitaly, unix_channel):
    r = gitaly.server_stub(unix_channel).ReadinessCheck(
        server_pb2.ReadinessCheckRequest(timeout=duration_pb2.Duration(seconds=5)), timeout=10)
    assert r.WhichOneof("Result") == "ok_response"


def test_health_check_and_watch(gitaly, unix_channel):
    stub = health_pb2_grpc.HealthStub(unix_channel)
    r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    e = rpc_error(stub.Check, health_pb2.HealthCheckRequest(service="no.such.Service"),
                  timeout=5)
    assert_code(e, grpc.StatusCode.NOT_FOUND)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
    first = next(stream)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()


def test_unknown_methods_are_unimplemented(gitaly, unix_channel):
    for method in ("/gitaly.ServerService/NoSuchMethod", "/gitaly.NoSuchService/Foo",
                   "/grpc.health.v1.Health/Nope"):
        call = unix_channel.unary_unary(method, request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
        e = rpc_error(call, b"", timeout=5)
        assert_code(e, grpc.StatusCode.UNIMPLEMENTED)
    # and the server is fine afterwards
    assert gitaly.server_stub(unix_channel).ServerInfo(server_pb2.ServerInfoRequest(),
                                                       timeout=5)


class FakeNTP:
    """A one-socket SNTP server on 127.0.0.1 whose clock is off by offset s."""

    def __init__(self, offset=0.0, stratum=2):
        self.offset = offset
        self.stratum = stratum
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    @staticmethod
    def ts(t):
        t += NTP_EPOCH
        sec = int(t)
        return struct.pack("!II", sec, int((t - sec) * (1 << 32)))

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 48:
                continue
            self.queries += 1
            now = time.time() + self.offset
            vn = (data[0] >> 3) & 7 or 4
            pkt = bytes([(0 << 6) | (vn << 3) | 4, self.stratum, 4, 0xEC])
            pkt += struct.pack("!II", 0, 1 << 10)  # root delay, root dispersion
            pkt += b"LOCL"
            pkt += self.ts(now - 10)          # reference time
            pkt += data[40:48]                # origin = client's transmit time
            pkt += self.ts(now)               # receive
            pkt += self.ts(now)               # transmit
            self.sock.sendto(pkt, addr)

    def close(self):
        self.stop = True
        self.t.join(1)
        self.sock.close()


@pytest.fixture
def ntp():
    servers = []

    def make(**kw):
        s = FakeNTP(**kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def clock_synced(g, ch, host, threshold_ms):
    req = server_pb2.ClockSyncedRequest(
        ntp_host=host, drift_threshold=duration_pb2.Duration(
            seconds=threshold_ms // 1000, nanos=(threshold_ms % 1000) * 1000000))
    return g.server_stub(ch).ClockSynced(req, timeout=30)


def test_clock_synced_true(gitaly, unix_channel, ntp):
    s = ntp(offset=0.0)
    r = clock_synced(gitaly, unix_channel, "127.0.0.1:%d" % s.port, 2000)
    assert s.queries >= 1
    assert r.synced is True


def test_clock_synced_false_when_drifting(gitaly, unix_channel, ntp):
    s = ntp(offset=30.0)
    r = clock_synced(gitaly, unix_channel, "127.0.0.1:%d" % s.port, 2000)
    assert s.queries >= 1
    assert r.synced is False
    s2 = ntp(offset=-30.0)
    assert clock_synced(gitaly, unix_channel, "127.0.0.1:%d" % s2.port, 2000).synced is False
    # a generous threshold accepts the same drift
    assert clock_synced(gitaly, unix_channel, "127.0.0.1:%d" % s.port, 60000).synced is True


def test_clock_synced_unreachable_host(gitaly, unix_channel):
    # nothing listens on this UDP port: the query fails -> Internal
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    e = rpc_error(clock_synced, gitaly, unix_channel, "127.0.0.1:%d" % port, 1000)
    assert_code(e, grpc.StatusCode.INTERNAL)
    assert "127.0.0.1:%d" % port in e.details()
    assert time.time() - t0 < 15


def test_clock_synced_kiss_of_death(gitaly, unix_channel, ntp):
    s = ntp(stratum=0)
    e = rpc_error(clock_synced, gitaly, unix_channel, "127.0.0.1:%d" % s.port, 1000)
    assert_code(e, grpc.StatusCode.INTERNAL)


def test_clock_synced_bad_duration(gitaly, unix_channel):
    req = server_pb2.ClockSyncedRequest(
        ntp_host="127.0.0.1:1", drift_threshold=duration_pb2.Duration(seconds=1, nanos=-5))
    e = rpc_error(gitaly.server_stub(unix_channel).ClockSynced, req, timeout=10)
    assert_code(e, grpc.StatusCode.INVALID_ARGUMENT)
