"""Helpers for the pack-objects cache tests: a server with the cache on, a
git wrapper that records every `git pack-objects` the server runs, and
`git clone` over smart HTTP through gitaly-gateway in front of it (the
SmartHTTP service runs upload-pack with uploadpack.packObjectsHook pointing
at gitaly-hooks when the cache is on). Clones on behalf of a non-loopback
client (pack-objects limiting by IP; the gateway is a loopback client) run
that upload-pack locally with the same hook and payload instead.
"""

import base64
import json
import os
import stat
import subprocess

import shutil

from conftest import BUILD, Gitaly, git, short_tmpdir
import gateway_util

HOOKS_BIN = os.path.join(BUILD, "bin", "gitaly-hooks")

WRAPPER = r"""#!/bin/sh
# Records each pack-objects run (pid = its process group) and can slow it.
for a in "$@"; do
  if [ "$a" = pack-objects ]; then
    echo $$ >> "%(log)s"
    if [ -e "%(slow)s" ]; then
      "%(git)s" "$@" | python3 -c '
import sys, time
while True:
    b = sys.stdin.buffer.read(16384)
    if not b:
        break
    sys.stdout.buffer.write(b); sys.stdout.buffer.flush(); time.sleep(0.05)
'
      exit $?
    fi
    break
  fi
done
exec "%(git)s" "$@"
"""


def make_git_wrapper(tmp):
    """Writes the recording git wrapper into tmp; returns (path, pack_log,
    slow_flag)."""
    pack_log = os.path.join(tmp, "pack-objects.log")
    slow_flag = os.path.join(tmp, "slow")
    real_git = subprocess.check_output(["sh", "-c", "command -v git"]).decode().strip()
    wrapper = os.path.join(tmp, "git-wrapper")
    with open(wrapper, "w") as f:
        f.write(WRAPPER % {"log": pack_log, "slow": slow_flag, "git": real_git})
    os.chmod(wrapper, stat.S_IRWXU)
    return wrapper, pack_log, slow_flag


def cache_toml(wrapper, min_occurrences=1, max_age="5m", enabled=True):
    return ('[git]\nbin_path = "%s"\n\n' % wrapper +
            "[pack_objects_cache]\nenabled = %s\nmax_age = \"%s\"\nmin_occurrences = %d\n" % (
                "true" if enabled else "false", max_age, min_occurrences))


def read_pack_runs(pack_log):
    try:
        with open(pack_log) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


class CacheServer:
    """A gitaly with [pack_objects_cache] on and a recording git wrapper."""

    def __init__(self, factory, min_occurrences=1, max_age="5m", enabled=True, extra=""):
        self.tmp = short_tmpdir()
        self.wrapper, self.pack_log, self.slow_flag = make_git_wrapper(self.tmp)
        toml = cache_toml(self.wrapper, min_occurrences, max_age, enabled) + extra
        self.g = factory(extra_toml=toml)
        # The services run upload-pack with <bin_dir>/gitaly-hooks as the hook.
        link = os.path.join(self.g.bin_dir, "gitaly-hooks")
        if not os.path.exists(link):
            os.symlink(HOOKS_BIN, link)
        self.runtime = os.path.join(self.g.runtime_dir, "gitaly-%d" % self.g.proc.pid)
        self.intern = os.path.join(self.runtime, "sock.d", "intern")
        self.cache_dir = os.path.join(self.g.storages["default"], "+gitaly", "PackObjectsCache")
        self.gw_base = short_tmpdir()
        self.gw = gateway_util.Gateway(self.gw_base, self.g).start()

    def close(self):
        try:
            self.gw.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            shutil.rmtree(self.gw_base, ignore_errors=True)

    def pack_runs(self):
        return read_pack_runs(self.pack_log)

    def payload(self, rel, remote_ip="127.0.0.1", protocol="http"):
        repo = json.dumps({"storageName": "default", "relativePath": rel,
                           "glRepository": "project-1", "glProjectPath": "group/p"})
        doc = {
            "requested_hooks": 16,
            "repository": repo,
            "object_format": "sha1",
            "runtime_dir": self.runtime,
            "internal_socket": self.intern,
            "internal_socket_token": self.g.token or "",
            "transaction": None,
            "user_details": {"username": "jane", "userid": "user-1", "protocol": protocol,
                             "remote_ip": remote_ip},
        }
        return base64.b64encode(json.dumps(doc).encode()).decode()

    def clone_cmd(self, rel, dest, remote_ip="127.0.0.1"):
        """argv and env of a clone whose upload-pack uses the hook: through
        the gateway for a loopback client, else a local upload-pack given
        the payload of a client at remote_ip."""
        env = dict(os.environ)
        env.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"})
        if remote_ip == "127.0.0.1":
            return ["git", "clone", "--progress", "--bare", self.gw.url(rel), dest], env
        env["GITALY_HOOKS_PAYLOAD"] = self.payload(rel, remote_ip)
        up = "git -c uploadpack.packObjectsHook=%s upload-pack" % HOOKS_BIN
        argv = ["git", "clone", "--progress", "--bare", "--no-local", "-u", up,
                self.g.path(rel), dest]
        return argv, env

    def clone(self, rel, dest, remote_ip="127.0.0.1", timeout=120):
        argv, env = self.clone_cmd(rel, dest, remote_ip)
        return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)

    def hook_lines(self):
        return [e for e in self.g.log_entries()
                if e.get("grpc.method") == "PackObjectsHookWithSidechannel"]

    def cache_files(self):
        out = []
        for d, _, files in os.walk(self.cache_dir):
            out += [os.path.join(d, f) for f in files]
        return sorted(out)


def pack_checksum(bare):
    """What a clone received: every object id, sorted, and fsck clean."""
    git("-C", bare, "fsck", "--strict", "--no-dangling")
    return git("-C", bare, "cat-file", "--batch-all-objects", "--batch-check")
