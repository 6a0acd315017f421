"""Helpers for the SmartHTTPService and SSHService tests: a fake GitLab
internal API that allows every push, a server with gitaly-hooks installed
and that API configured, pkt-line building and parsing, push requests
(commands + pack from `git pack-objects`) and side-band demultiplexing.
"""

import http.server
import json
import os
import shutil
import subprocess
import threading
import time

from conftest import BUILD, Gitaly, git, short_tmpdir

HOOKS_BIN = os.path.join(BUILD, "bin", "gitaly-hooks")
ZERO = "0" * 40


class Api(http.server.BaseHTTPRequestHandler):
    """Fake /api/v4/internal that allows everything and records requests."""
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null")
        type(self).seen.append((self.path, body))
        replies = {
            "/api/v4/internal/allowed": {"status": True, "message": ""},
            "/api/v4/internal/pre_receive": {"reference_counter_increased": True},
            "/api/v4/internal/post_receive": {"reference_counter_decreased": True,
                                              "messages": []},
        }
        data = json.dumps(replies.get(self.path, {"message": "no route"})).encode()
        self.send_response(200 if self.path in replies else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


class Server:
    """A gitaly with gitaly-hooks in its bin_dir, the fake API as GitLab,
    and a global custom hooks directory."""

    def __init__(self, extra_toml=""):
        self.api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.base = short_tmpdir()
        self.custom_hooks = os.path.join(self.base, "custom-hooks")
        os.makedirs(self.custom_hooks)
        toml = '[hooks]\ncustom_hooks_dir = "%s"\n' % self.custom_hooks + extra_toml
        self.g = Gitaly(os.path.join(self.base, "g"), extra_toml=toml)
        os.symlink(HOOKS_BIN, os.path.join(self.g.bin_dir, "gitaly-hooks"))
        text = self.g.toml().replace('url = "http://127.0.0.1:1"',
                                     'url = "http://127.0.0.1:%d"' % self.api.server_address[1])
        with open(self.g.config_path, "w") as f:
            f.write(text)
        self.g.start()

    def close(self):
        try:
            self.g.stop()
        finally:
            self.api.shutdown()
            self.api.server_close()
            shutil.rmtree(self.base, ignore_errors=True)


def pkt(data):
    if isinstance(data, str):
        data = data.encode()
    return b"%04x" % (len(data) + 4) + data


FLUSH = b"0000"


def parse_pkts(buf):
    """Splits buf into pkt-lines up to and including the first flush;
    returns (payloads, rest). A flush is None."""
    out, i = [], 0
    while i + 4 <= len(buf):
        n = int(buf[i:i + 4], 16)
        if n == 0:
            out.append(None)
            return out, buf[i + 4:]
        out.append(buf[i + 4:i + n])
        i += n
    raise AssertionError("no flush in %r" % buf[:200])


def demux_sideband(buf):
    """(band1 bytes, band2 bytes) of a side-band-64k stream ending with a flush."""
    out = {1: b"", 2: b"", 3: b""}
    i = 0
    while i + 4 <= len(buf):
        n = int(buf[i:i + 4], 16)
        if n == 0:
            break
        out[buf[i + 4]] += buf[i + 5:i + n]
        i += n
    return out[1], out[2]


def push_request(src, new, ref, old=ZERO, caps="report-status", exclude=()):
    """The body of a push: one command (with capabilities), a flush and a
    pack of everything reachable from new (minus exclude)."""
    cmd = pkt("%s %s %s\0%s\n" % (old, new, ref, caps)) + FLUSH
    revs = "%s\n" % new + "".join("^%s\n" % e for e in exclude)
    pack = git("-C", src, "pack-objects", "--stdout", "--revs", "-q", input=revs.encode())
    return cmd + pack


def refs(repo):
    return git("-C", repo, "for-each-ref", "--format=%(refname) %(objectname)").decode()


def has_object(repo, oid):
    r = subprocess.run(["git", "-C", repo, "cat-file", "-e", oid], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    return r.returncode == 0


def git_processes(marker):
    """Pids of git processes whose command line contains marker."""
    r = subprocess.run(["pgrep", "-f", "git.*" + marker], stdout=subprocess.PIPE)
    return [int(p) for p in r.stdout.split()]


def wait_no_git(marker, timeout=5):
    deadline = time.time() + timeout
    left = git_processes(marker)
    while left and time.time() < deadline:
        time.sleep(0.05)
        left = git_processes(marker)
    return left


def check_pack(pack):
    """Indexes pack into a fresh repository and fscks it; returns the
    repository path (the caller removes it)."""
    d = short_tmpdir()
    git("init", "--bare", "-q", d)
    git("-C", d, "index-pack", "--stdin", "--strict", input=pack)
    return d
