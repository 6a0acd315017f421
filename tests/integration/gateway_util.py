"""Helpers for the gitaly-gateway end-to-end tests: a gitaly whose [gitlab]
url points at a GitLab internal API stub (scripts/gitlab_stub.py), the
gateway process itself (HTTP), a real OpenSSH sshd whose authorized_keys
runs the gateway's forced command, raw HTTP requests for malformed input,
and repository comparison helpers.
"""

import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import BUILD, ROOT, Gitaly, free_port, git, short_tmpdir

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from gitlab_stub import GitLabStub  # noqa: E402

GATEWAY_BIN = os.environ.get("GITALY_GATEWAY_BIN") or os.path.join(BUILD, "bin", "gitaly-gateway")
SSHD = "/usr/sbin/sshd"


class StubbedGitaly(Gitaly):
    """A gitaly whose GitLab internal API is the stub at gitlab_url."""

    def __init__(self, base, gitlab_url, **kw):
        self.gitlab_url = gitlab_url
        super().__init__(base, **kw)
        # git runs the hooks through bin_dir/gitaly-hooks; a missing one
        # would silently skip every hook
        os.symlink(os.path.join(BUILD, "bin", "gitaly-hooks"),
                   os.path.join(self.bin_dir, "gitaly-hooks"))

    def toml(self):
        return super().toml().replace('url = "http://127.0.0.1:1"',
                                      'url = "%s"' % self.gitlab_url)


class Gateway:
    """One `gitaly-gateway serve` process in front of a gitaly."""

    def __init__(self, base, gitaly, users=(), auth_required=False, anonymous_gl_id="user-1",
                 extra_toml="", storages=None, address=None, ca_file=None):
        self.base = base
        self.gitaly = gitaly
        self.port = free_port()
        self.config_path = os.path.join(base, "gateway.toml")
        self.log_path = os.path.join(base, "gateway.log")
        lines = ['listen_addr = "127.0.0.1:%d"' % self.port, 'default_storage = "default"',
                 'log_level = "info"', extra_toml, "", "[auth]",
                 "required = %s" % ("true" if auth_required else "false"),
                 'anonymous_gl_id = "%s"' % anonymous_gl_id, ""]
        for name, password, gl_id in users:
            lines += ["[[auth.user]]", 'name = "%s"' % name, 'password = "%s"' % password]
            if gl_id:
                lines.append('gl_id = "%s"' % gl_id)
            lines.append("")
        for name in (storages or gitaly.storages):
            lines += ["[[storage]]", 'name = "%s"' % name,
                      'address = "%s"' % (address or "unix:" + gitaly.socket_path),
                      'token = "%s"' % (gitaly.token or "")]
            if ca_file:
                lines.append('ca_file = "%s"' % ca_file)
            lines.append("")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self._log = None

    def start(self, timeout=10):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([GATEWAY_BIN, "--config", self.config_path, "serve"],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited with %d:\n%s" % (self.proc.returncode,
                                                                      self.log_text()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("gateway not listening:\n" + self.log_text())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("gateway did not stop on SIGTERM")
            assert rc == 0, "gateway exit status %d:\n%s" % (rc, self.log_text())
        if self._log:
            self._log.close()
            self._log = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def url(self, path, user=None, password=None):
        auth = ""
        if user:
            auth = "%s:%s@" % (user, password)
        return "http://%s127.0.0.1:%d/%s" % (auth, self.port, path)

    def create(self, path):
        r = subprocess.run([GATEWAY_BIN, "--config", self.config_path, "create-repository",
                            path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert r.returncode == 0, r.stderr.decode(errors="replace")

    def request(self, method, path, body=None, headers=None, user=None, password=None):
        """A raw HTTP request; returns (status, headers dict, body bytes)."""
        h = dict(headers or {})
        if user is not None:
            h["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (user, password)).encode()).decode()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            try:
                data = r.read()
            except http.client.IncompleteRead as e:
                data = e.partial  # the answer broke off after the status line
                r.truncated = True
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()


class SSHServer:
    """A real sshd on a loopback port; the test key's authorized_keys line
    forces `gitaly-gateway ssh-command <user>`."""

    def __init__(self, base, gateway_config, user="alice"):
        self.base = base
        self.port = free_port()
        self.user = user
        self.host_key = os.path.join(base, "ssh_host_ed25519_key")
        self.user_key = os.path.join(base, "id_ed25519")
        self.authorized_keys = os.path.join(base, "authorized_keys")
        self.config = os.path.join(base, "sshd_config")
        self.log_path = os.path.join(base, "sshd.log")
        for k in (self.host_key, self.user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k],
                           check=True, stdout=subprocess.DEVNULL)
        with open(self.user_key + ".pub") as f:
            pub = f.read().strip()
        cmd = "%s --config %s ssh-command %s" % (GATEWAY_BIN, gateway_config, user)
        with open(self.authorized_keys, "w") as f:
            # SHLVL=1 keeps bash (root's shell, which runs the forced
            # command) from sourcing ~/.bashrc as it does under sshd
            f.write('environment="SHLVL=1",command="%s",no-port-forwarding,'
                    'no-X11-forwarding,no-agent-forwarding,no-pty %s\n' % (cmd, pub))
        with open(self.config, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.host_key,
                "AuthorizedKeysFile %s" % self.authorized_keys,
                "PermitRootLogin yes",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "AcceptEnv GIT_PROTOCOL",
                "PermitUserEnvironment SHLVL",
                "PidFile %s" % os.path.join(base, "sshd.pid"),
                "LogLevel ERROR",
                "UseDNS no",
                # cheap key exchange: the machine running the tests is busy
                "KexAlgorithms curve25519-sha256",
                "",
            ]))
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = None
        self._log = None

    def start(self, timeout=10):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, "rb") as f:
                    raise AssertionError("sshd exited: %s" % f.read().decode(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sshd not listening")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None

    def ssh_command(self):
        return ("ssh -p %d -i %s -o IdentitiesOnly=yes -o BatchMode=yes "
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                "-o LogLevel=ERROR -o KexAlgorithms=curve25519-sha256 -F /dev/null"
                % (self.port, self.user_key))

    def env(self):
        return {"GIT_SSH_COMMAND": self.ssh_command()}

    def url(self, path):
        return "ssh://root@127.0.0.1:%d/%s" % (self.port, path)

    def scp_url(self, path):
        return "root@127.0.0.1:%s" % path

    def run(self, command, input=b"", env=None):
        """Runs ssh with command as SSH_ORIGINAL_COMMAND."""
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(self.ssh_command().split() + ["root@127.0.0.1", command],
                              input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=e, timeout=60)


def run_git(*args, cwd=None, env=None, input=None):
    """git with the test identity; returns the CompletedProcess (no check)."""
    e = dict(os.environ)
    e.update({
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
    })
    if env:
        e.update(env)
    return subprocess.run(["git", *args], cwd=cwd, env=e, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


def git_ok(*args, **kw):
    r = run_git(*args, **kw)
    assert r.returncode == 0, "git %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                         r.stderr.decode(errors="replace"))
    return r


def refs(repo):
    """{refname: oid} of a repository (bare or not), HEAD excluded."""
    out = git("-C", repo, "for-each-ref", "--format=%(refname) %(objectname)").decode()
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def ls_remote_refs(out):
    """Parses `git ls-remote` output into {refname: oid} (no HEAD, no peeled)."""
    m = {}
    for line in out.decode().splitlines():
        oid, name = line.split("\t", 1)
        if name == "HEAD" or name.endswith("^{}"):
            continue
        m[name] = oid
    return m


def make_source(path, n_branches=3):
    """A work tree with a few branches, annotated and lightweight tags and a
    binary file, enough for a realistic pack."""
    git_ok("init", "-q", "-b", "main", path)
    for i in range(4):
        with open(os.path.join(path, "file%d.txt" % i), "w") as f:
            f.write(("line %d\n" % i) * (200 + i))
        with open(os.path.join(path, "bin.dat"), "wb") as f:
            f.write(os.urandom(30000))
        git_ok("add", "-A", cwd=path)
        git_ok("commit", "-q", "-m", "commit %d" % i, cwd=path)
    git_ok("tag", "-a", "-m", "release", "v1.0", cwd=path)
    git_ok("tag", "light", "HEAD~1", cwd=path)
    for b in range(n_branches):
        git_ok("checkout", "-q", "-b", "topic%d" % b, "main~%d" % (b % 3), cwd=path)
        with open(os.path.join(path, "topic.txt"), "w") as f:
            f.write("topic %d\n" % b)
        git_ok("add", "-A", cwd=path)
        git_ok("commit", "-q", "-m", "topic %d" % b, cwd=path)
    git_ok("checkout", "-q", "main", cwd=path)
    return path


def add_commit(path, name, content, message=None):
    with open(os.path.join(path, name), "w") as f:
        f.write(content)
    git_ok("add", "-A", cwd=path)
    git_ok("commit", "-q", "-m", message or ("change " + name), cwd=path)
    return git("-C", path, "rev-parse", "HEAD").decode().strip()


def git_processes_under(base):
    """git processes whose cwd or arguments mention base."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink("/proc/%s/cwd" % pid)
        except OSError:
            continue
        if cmd.startswith("git") and (base in cmd or cwd.startswith(base)):
            found.append((int(pid), cmd))
    return found


def wait_no_git(base, timeout=10):
    deadline = time.time() + timeout
    left = []
    while time.time() < deadline:
        left = git_processes_under(base)
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError("git processes left: %r" % left)


class Env:
    """gitaly + GitLab stub + gateway (+ optional sshd) for one test module."""

    def __init__(self, token="gwtoken", tls=None, address=None, **gw_kw):
        self.stub = GitLabStub().start()
        self.gitaly = StubbedGitaly(short_tmpdir(), self.stub.url, token=token, tls=tls)
        self.gitaly.start()
        self.gw_base = short_tmpdir()
        if callable(address):
            address = address(self.gitaly)
        self.gateway = Gateway(self.gw_base, self.gitaly, address=address, **gw_kw).start()
        self.sshd = None
        self.work = short_tmpdir()

    def with_sshd(self, user="alice"):
        if not self.sshd:
            self.sshd = SSHServer(short_tmpdir(), self.gateway.config_path, user).start()
        return self.sshd

    def close(self):
        errors = []
        for f in (lambda: self.sshd and self.sshd.stop(), self.gateway.stop, self.gitaly.stop,
                  self.stub.stop):
            try:
                f()
            except AssertionError as e:
                errors.append(str(e))
        for d in (self.gitaly.base, self.gw_base, self.work,
                  self.sshd.base if self.sshd else None):
            if d:
                shutil.rmtree(d, ignore_errors=True)
        assert not errors, errors


@pytest.fixture(scope="module")
def gwenv():
    e = Env()
    yield e
    e.close()
