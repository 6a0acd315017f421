"""The gitaly command line: --version, argument errors, `configuration
validate` (stdin TOML, JSON problems on stdout, exit codes) and `check`
against a fake GitLab internal API."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import GITALY_BIN, ROOT, Gitaly, short_tmpdir


def run(args, stdin=b"", timeout=20):
    return subprocess.run([GITALY_BIN, *args], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


@pytest.fixture
def cfgdir():
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_version():
    r = run(["--version"])
    assert r.returncode == 0
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    assert r.stdout.decode() == "Gitaly, version %s\n" % version


def test_wrong_argument_count_exits_2():
    r = run(["a.toml", "b.toml"])
    assert r.returncode == 2, (r.stdout, r.stderr)


def test_check_without_config_exits_2():
    r = run(["check"])
    assert r.returncode == 2, (r.stdout, r.stderr)


def test_missing_config_file_fails():
    r = run(["/nonexistent/config.toml"])
    assert r.returncode != 0
    assert r.returncode != 2 or r.stderr  # it must say something


def test_validate_good_config(cfgdir):
    g = Gitaly(cfgdir)
    r = run(["configuration", "validate"], g.toml().encode())
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout == b""
    assert r.stderr == b""


def test_validate_reports_every_problem(cfgdir):
    g = Gitaly(cfgdir)
    toml = g.toml()
    toml = toml.replace('bin_dir = "%s"' % g.bin_dir, 'bin_dir = "/nonexistent/bin"')
    toml = toml.replace('name = "default"', 'name = ""')
    toml = toml.replace('path = "%s"' % g.storages["other"], 'path = "/nonexistent/st"')
    r = run(["configuration", "validate"], toml.encode())
    assert r.returncode == 2, (r.stdout, r.stderr)
    expected = {"errors": [
        {"key": ["bin_dir"], "message": 'doesn\'t exist: "/nonexistent/bin"'},
        {"key": ["storage", "[0]", "name"], "message": "not set"},
        {"key": ["storage", "[1]", "path"], "message": 'doesn\'t exist: "/nonexistent/st"'},
    ]}
    assert json.loads(r.stdout) == expected
    # upstream's encoder: two-space indentation, trailing newline
    assert r.stdout.decode() == json.dumps(expected, indent=2) + "\n"


def test_validate_no_listener(cfgdir):
    g = Gitaly(cfgdir)
    toml = "\n".join(l for l in g.toml().splitlines()
                     if not l.startswith(("socket_path", "listen_addr")))
    r = run(["configuration", "validate"], toml.encode())
    assert r.returncode == 2
    errs = json.loads(r.stdout)["errors"]
    assert {"message": 'none of "socket_path", "listen_addr" or "tls_listen_addr" is set'} in errs


def test_validate_toml_syntax_error():
    r = run(["configuration", "validate"], b'bin_dir = "/tmp"\nsocket_path = = "x"\n')
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert len(out["errors"]) == 1
    assert out["errors"][0]["message"].startswith("line 2 column "), out


def test_validate_bad_duration():
    r = run(["configuration", "validate"], b'graceful_restart_timeout = "bad value"\n')
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    msg = out["errors"][0]["message"]
    assert msg.startswith("line 1 column "), msg
    assert "bad value" in msg


class _FakeGitlab(http.server.BaseHTTPRequestHandler):
    status = 200
    seen = []

    def do_GET(self):
        type(self).seen.append((self.path, dict(self.headers)))
        body = json.dumps({"gitlab_version": "16.7.0-ee", "gitlab_revision": "abc123",
                           "api_version": "v4", "redis": True}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_gitlab():
    _FakeGitlab.seen = []
    _FakeGitlab.status = 200
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGitlab)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def _check_config(cfgdir, port):
    g = Gitaly(cfgdir)
    toml = g.toml().replace('url = "http://127.0.0.1:1"', 'url = "http://127.0.0.1:%d"' % port)
    with open(g.config_path, "w") as f:
        f.write(toml)
    return g


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_check_ok(cfgdir, fake_gitlab):
    g = _check_config(cfgdir, fake_gitlab.server_address[1])
    r = run(["check", g.config_path])
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.decode() == (
        "Checking GitLab API access: OK\n"
        "GitLab version: 16.7.0-ee\n"
        "GitLab revision: abc123\n"
        "GitLab Api version: v4\n"
        "Redis reachable for GitLab: true\n"
        "OK\n")
    assert _FakeGitlab.seen, "no request reached the fake GitLab"
    path, headers = _FakeGitlab.seen[0]
    assert path == "/api/v4/internal/check"
    jwt = {k.lower(): v for k, v in headers.items()}["gitlab-shell-api-request"]
    h, p, s = jwt.split(".")
    want = hmac.new(b"gitlabsecret", ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    assert _b64url_decode(s) == want, "JWT not signed with the [gitlab] secret"
    claims = json.loads(_b64url_decode(p))
    assert claims["iss"] == "gitlab-shell"
    assert abs(claims["iat"] - time.time()) < 60


def test_check_failure(cfgdir, fake_gitlab):
    _FakeGitlab.status = 500
    g = _check_config(cfgdir, fake_gitlab.server_address[1])
    r = run(["check", g.config_path])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout.decode().startswith("Checking GitLab API access: FAILED\n")


def test_serve_subcommand_and_bad_config(cfgdir):
    g = Gitaly(cfgdir)
    # An invalid config (missing bin_dir) must stop startup with an error.
    toml = g.toml().replace('bin_dir = "%s"' % g.bin_dir, 'bin_dir = "/nonexistent/bin"')
    bad = os.path.join(cfgdir, "bad.toml")
    with open(bad, "w") as f:
        f.write(toml)
    r = run(["serve", bad])
    assert r.returncode != 0
    assert not os.path.exists(g.socket_path)


def test_validate_garbage_input():
    r = run(["configuration", "validate"], b"\x00\xff\xfe garbage [[[ = \n" * 100)
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["errors"] and out["errors"][0]["message"].startswith("line 1 column ")


def test_validate_empty_input():
    # nothing configured: no listener, no storage, no bin_dir
    r = run(["configuration", "validate"], b"")
    assert r.returncode == 2, (r.stdout, r.stderr)
    errs = json.loads(r.stdout)["errors"]
    assert {"message": 'none of "socket_path", "listen_addr" or "tls_listen_addr" is set'} \
        in errs
    assert {"key": ["bin_dir"], "message": 'doesn\'t exist: ""'} in errs


def test_adaptive_pack_objects_limiting_validation(cfgdir):
    """adaptive = true is accepted; the limits are range-checked as upstream
    (min_limit >= 0, max_limit >= initial_limit, initial_limit >= min_limit)."""
    g = Gitaly(cfgdir)
    good = g.toml() + ("\n[pack_objects_limiting]\nadaptive = true\ninitial_limit = 2\n"
                       "min_limit = 1\nmax_limit = 4\n")
    r = run(["configuration", "validate"], good.encode())
    assert r.returncode == 0, (r.stdout, r.stderr)
    bad = g.toml() + ("\n[pack_objects_limiting]\nadaptive = true\ninitial_limit = 2\n"
                      "min_limit = 3\nmax_limit = 1\n")
    r = run(["configuration", "validate"], bad.encode())
    assert r.returncode == 2
    errs = json.loads(r.stdout)["errors"]
    assert {"key": ["pack_objects_limiting", "max_limit"],
            "message": "not in range: 1 is not greater than or equal to 2"} in errs
    assert {"key": ["pack_objects_limiting", "initial_limit"],
            "message": "not in range: 2 is not greater than or equal to 3"} in errs
    neg = g.toml() + "\n[pack_objects_limiting]\nadaptive = true\nmin_limit = -1\n"
    r = run(["configuration", "validate"], neg.encode())
    assert r.returncode == 2
    errs = json.loads(r.stdout)["errors"]
    assert {"key": ["pack_objects_limiting", "min_limit"],
            "message": "not in range: -1 is not greater than or equal to 0"} in errs
