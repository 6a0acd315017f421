#!/usr/bin/python3
"""A GIT_SSH_COMMAND for the cache tests: instead of ssh, it carries git's
upload-pack conversation over gitaly's SSHService/SSHUploadPack bidi stream
(what gitlab-shell does), so `git clone host:<relative path>` reaches
gitaly's own upload-pack. Env: PC_GITALY_SOCKET, PC_STORAGE, PC_REMOTE_IP."""

import os
import re
import sys
import threading

sys.path.insert(0, os.environ["PC_PY_STUBS"])

import grpc  # noqa: E402
import shared_pb2  # noqa: E402
import ssh_pb2  # noqa: E402
import ssh_pb2_grpc  # noqa: E402


def main():
    cmd = sys.argv[-1]
    m = re.match(r"^git-upload-pack '(.*)'$", cmd)
    if not m:
        sys.stderr.write("bridge: unsupported command %r\n" % cmd)
        return 1
    rel = m.group(1).lstrip("/")
    repo = shared_pb2.Repository(storage_name=os.environ.get("PC_STORAGE", "default"),
                                 relative_path=rel)

    def requests():
        yield ssh_pb2.SSHUploadPackRequest(repository=repo,
                                           git_protocol=os.environ.get("GIT_PROTOCOL", ""))
        while True:
            data = os.read(0, 65536)
            if not data:
                return
            yield ssh_pb2.SSHUploadPackRequest(stdin=data)

    md = [("remote_ip", os.environ.get("PC_REMOTE_IP", "127.0.0.1")),
          ("user_id", "user-1"), ("username", "jane")]
    code = 0  # as gitlab-shell: no exit_status on success
    with grpc.insecure_channel("unix:" + os.environ["PC_GITALY_SOCKET"]) as ch:
        for r in ssh_pb2_grpc.SSHServiceStub(ch).SSHUploadPack(requests(), metadata=md):
            if r.stdout:
                os.write(1, r.stdout)
            if r.stderr:
                os.write(2, r.stderr)
            if r.HasField("exit_status"):
                code = r.exit_status.value
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        sys.stderr.write("bridge: %s: %s\n" % (e.code(), e.details()))
        sys.exit(1)
