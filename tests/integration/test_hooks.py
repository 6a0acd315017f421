"""Server hooks end to end: build/bin/gitaly-hooks is run the way git runs
it (a symlink named after the hook, GITALY_HOOKS_PAYLOAD in the environment,
ref updates on stdin) against a running gitaly and a fake GitLab internal
API. Checks GitLab's verdicts and messages, custom hooks, exit codes, and a
real `git push` into a repository whose core.hooksPath points at the
symlinks (the way receive-pack runs them).
"""

import base64
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import grpc
import pytest

from conftest import BUILD, Gitaly, git, short_tmpdir

import hook_pb2  # noqa: E402
import hook_pb2_grpc  # noqa: E402

HOOKS_BIN = os.path.join(BUILD, "bin", "gitaly-hooks")
TOKEN = "hook-token"
ZERO = "0" * 40


class _Api(http.server.BaseHTTPRequestHandler):
    """Fake /api/v4/internal: replies from `replies`, records requests."""
    replies = {}
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null")
        type(self).seen.append((self.path, body, dict(self.headers)))
        status, reply = type(self).replies.get(self.path, (404, {"message": "no route"}))
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def api():
    _Api.seen = []
    _Api.replies = {
        "/api/v4/internal/allowed": (200, {"status": True, "message": ""}),
        "/api/v4/internal/pre_receive": (200, {"reference_counter_increased": True}),
        "/api/v4/internal/post_receive": (200, {"reference_counter_decreased": True,
                                                 "messages": []}),
    }
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    _Api.server_port = srv.server_address[1]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield _Api
    srv.shutdown()
    srv.server_close()


class Env:
    pass


@pytest.fixture
def env(api):
    e = Env()
    e.base = short_tmpdir()
    e.global_hooks = os.path.join(e.base, "global-hooks")
    os.makedirs(e.global_hooks)
    g = Gitaly(os.path.join(e.base, "g"), token=TOKEN,
               extra_toml='[hooks]\ncustom_hooks_dir = "%s"\n' % e.global_hooks)
    g.write_config()
    e.g = g
    e.api = api
    yield e
    g.stop()
    shutil.rmtree(e.base, ignore_errors=True)


def start(e, api_port):
    toml = e.g.toml().replace('url = "http://127.0.0.1:1"',
                              'url = "http://127.0.0.1:%d"' % api_port)
    with open(e.g.config_path, "w") as f:
        f.write(toml)
    e.g.start()
    with e.g.channel("unix") as ch:
        try:
            hook_pb2_grpc.HookServiceStub(ch).UpdateHook(
                hook_pb2.UpdateHookRequest(), timeout=5, metadata=e.g.md()).next()
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                pytest.skip("HookService is not registered in services_all yet")
    e.intern = os.path.join(e.g.runtime_dir, "gitaly-%d" % e.g.proc.pid, "sock.d", "intern")
    assert os.path.exists(e.intern)
    e.rel = "hooks/repo.git"
    e.repo = os.path.join(e.g.storages["default"], e.rel)
    git("init", "--bare", "-q", e.repo)
    e.hooks_dir = os.path.join(e.base, "hooks-bin")
    os.makedirs(e.hooks_dir)
    for name in ("pre-receive", "post-receive", "update", "reference-transaction"):
        os.symlink(HOOKS_BIN, os.path.join(e.hooks_dir, name))


def payload(e, requested=15, userid="user-42", token=TOKEN, transaction=None):
    repo = json.dumps({"storageName": "default", "relativePath": e.rel,
                       "glRepository": "project-7", "glProjectPath": "group/proj"})
    doc = {
        "requested_hooks": requested,
        "feature_flags_with_value": [{"flag": {"name": "hooks_test_flag",
                                               "on_by_default": False}, "enabled": True}],
        "repository": repo,
        "object_format": "sha1",
        "runtime_dir": e.g.runtime_dir,
        "internal_socket": e.intern,
        "internal_socket_token": token,
        "transaction": transaction,
        "user_details": {"username": "jane", "userid": userid, "protocol": "web",
                         "remote_ip": "10.0.0.1"},
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


def run_hook(e, name, stdin=b"", args=(), **pl):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": e.base,
           "GITALY_HOOKS_PAYLOAD": payload(e, **pl)}
    return subprocess.run([os.path.join(e.hooks_dir, name), *args], input=stdin, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


def custom_hook(e, rel, script):
    path = os.path.join(e.repo, "custom_hooks", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)


CHANGE = ("%s %s refs/heads/main\n" % (ZERO, "1" * 40)).encode()


@pytest.fixture
def h(env, api):
    start(env, api.server_port)
    return env


def test_pre_receive_rejected_by_gitlab(h):
    h.api.replies["/api/v4/internal/allowed"] = (
        200, {"status": False, "message": "You are not allowed to push code to this project."})
    r = run_hook(h, "pre-receive", CHANGE)
    assert r.returncode == 1, r
    assert r.stderr == b"GitLab: You are not allowed to push code to this project.", r.stderr
    paths = [p for p, _, _ in h.api.seen]
    assert paths == ["/api/v4/internal/allowed"], paths
    body = h.api.seen[0][1]
    assert body["action"] == "git-receive-pack"
    assert body["user_id"] == "42"
    assert body["gl_repository"] == "project-7"
    assert body["protocol"] == "web"
    assert body["changes"] == CHANGE.decode()
    assert body["project"] == h.repo
    assert h.api.seen[0][2]["Gitlab-Shell-Api-Request"].count(".") == 2
    # The call reached gitaly as gitaly-hooks, with the pusher's identity.
    deadline = time.time() + 5
    while time.time() < deadline:
        lines = [json.loads(x) for x in h.g.log_text().splitlines() if "PreReceiveHook" in x]
        if lines:
            break
        time.sleep(0.05)
    assert lines, "no access log line for PreReceiveHook"
    assert lines[-1]["grpc.meta.client_name"] == "gitaly-hooks"
    assert lines[-1]["user_id"] == "user-42"
    assert lines[-1]["grpc.code"] == "OK"


def test_pre_receive_api_error_message(h):
    h.api.replies["/api/v4/internal/allowed"] = (401, {"message": "Access denied"})
    r = run_hook(h, "pre-receive", CHANGE)
    assert r.returncode == 1
    assert r.stderr == b"GitLab: Access denied"


def test_pre_receive_accepted_runs_custom_hooks_then_pre_receive(h):
    custom_hook(h, "pre-receive", 'echo "repo hook $GL_ID $GL_REPOSITORY $(cat)"\n'
                                  'echo "payload:${GITALY_HOOKS_PAYLOAD:-absent}" >&2\n')
    g = os.path.join(h.global_hooks, "pre-receive.d")
    os.makedirs(g)
    with open(os.path.join(g, "10-global"), "w") as f:
        f.write("#!/bin/sh\necho global hook in $(pwd)\n")
    os.chmod(os.path.join(g, "10-global"), 0o755)
    r = run_hook(h, "pre-receive", CHANGE)
    assert r.returncode == 0, r
    assert r.stdout.decode() == "repo hook user-42 project-7 %s\nglobal hook in %s\n" % (
        CHANGE.decode().strip(), h.repo)
    assert r.stderr == b"payload:absent\n"
    assert [p for p, _, _ in h.api.seen] == ["/api/v4/internal/allowed",
                                              "/api/v4/internal/pre_receive"]
    assert h.api.seen[1][1] == {"gl_repository": "project-7"}


def test_pre_receive_custom_hook_failure_exit_code(h):
    custom_hook(h, "pre-receive.d/a", "echo denied by policy >&2\nexit 5\n")
    custom_hook(h, "pre-receive.d/b", "echo must not run\n")
    r = run_hook(h, "pre-receive", CHANGE)
    assert r.returncode == 5, r
    assert r.stderr == b"denied by policy\n"
    assert r.stdout == b""
    # The reference counter is only increased once every hook passed.
    assert [p for p, _, _ in h.api.seen] == ["/api/v4/internal/allowed"]


def test_pre_receive_counter_not_increased(h):
    h.api.replies["/api/v4/internal/pre_receive"] = (200, {"reference_counter_increased": False})
    r = run_hook(h, "pre-receive", CHANGE)
    assert r.returncode == 1
    assert r.stderr == b""


def test_hook_not_requested_exits_zero_without_calls(h):
    r = run_hook(h, "pre-receive", CHANGE, requested=8)
    assert r.returncode == 0
    assert h.api.seen == []


def test_post_receive_messages(h):
    h.api.replies["/api/v4/internal/post_receive"] = (200, {
        "reference_counter_decreased": True,
        "messages": [{"message": "To create a merge request, visit: http://x/mr", "type": "basic"},
                     {"message": "Project moved", "type": "alert"}]})
    r = run_hook(h, "post-receive", CHANGE)
    assert r.returncode == 0, r
    box = "=" * 72
    alert = " " * ((72 - len("Project moved")) // 2) + "Project moved"
    assert r.stdout.decode() == (
        "\nTo create a merge request, visit: http://x/mr\n\n"
        "\n%s\n\n%s\n\n%s\n\n" % (box, alert, box))
    body = h.api.seen[0][1]
    assert h.api.seen[0][0] == "/api/v4/internal/post_receive"
    assert body == {"gl_repository": "project-7", "identifier": "user-42",
                    "changes": CHANGE.decode(), "push_options": None}


def test_post_receive_counter_not_decreased_fails(h):
    h.api.replies["/api/v4/internal/post_receive"] = (200, {"reference_counter_decreased": False,
                                                            "messages": []})
    r = run_hook(h, "post-receive", CHANGE)
    assert r.returncode == 1


def test_update_hook_args_and_validation(h):
    custom_hook(h, "update", 'echo "update $1 $2 $3"\n')
    r = run_hook(h, "update", args=("refs/heads/main", ZERO, "1" * 40))
    assert r.returncode == 0, r
    assert r.stdout.decode() == "update refs/heads/main %s %s\n" % (ZERO, "1" * 40)
    r = run_hook(h, "update", args=("refs/heads/main", "xyz", "1" * 40))
    assert r.returncode == 1
    assert r.stderr.startswith(b"hook got invalid old value")


def test_reference_transaction_without_praefect_succeeds(h):
    r = run_hook(h, "reference-transaction", CHANGE, args=("prepared",))
    assert r.returncode == 0, r
    # without a transaction there is nothing to vote on: no call is made
    assert not [e for e in h.g.log_entries()
                if e.get("grpc.method") == "ReferenceTransactionHook"]
    r = run_hook(h, "reference-transaction", CHANGE, args=("bogus",))
    assert r.returncode == 1
    assert b"unknown reference-transaction state bogus" in r.stderr


def test_reference_transaction_with_a_transaction_calls_gitaly(h):
    tx = {"id": 7, "node": "gitaly-1", "primary": True}
    r = run_hook(h, "reference-transaction", CHANGE, args=("prepared",), transaction=tx)
    # voting needs Praefect, which this server does not have: a clear failure
    assert r.returncode == 1, r
    assert h.g.wait_log(lambda e: e.get("grpc.method") == "ReferenceTransactionHook" and
                        e.get("grpc.code") == "Unimplemented")


def test_bad_token_is_an_error(h):
    r = run_hook(h, "pre-receive", CHANGE, token="wrong")
    assert r.returncode == 1
    assert r.stderr.endswith(b"error executing git hook\n"), r.stderr
    assert h.api.seen == []


def test_git_push_runs_hooks(h):
    """receive-pack runs the symlinked hooks with the payload it inherits."""
    git("config", "core.hooksPath", h.hooks_dir, cwd=h.repo)
    work = os.path.join(h.base, "work")
    git("init", "-q", "-b", "main", work)
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=work)
    custom_hook(h, "post-receive", "echo post-receive saw $(cat | cut -d' ' -f3)\n")
    penv = {"GITALY_HOOKS_PAYLOAD": payload(h)}

    h.api.replies["/api/v4/internal/allowed"] = (200, {"status": False, "message": "Frozen"})
    r = subprocess.run(["git", "push", h.repo, "main"], cwd=work, capture_output=True,
                       env=dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", **penv))
    assert r.returncode != 0
    assert b"remote: GitLab: Frozen" in r.stderr, r.stderr
    assert git("for-each-ref", cwd=h.repo) == b""

    h.api.replies["/api/v4/internal/allowed"] = (200, {"status": True})
    h.api.seen.clear()
    r = subprocess.run(["git", "push", h.repo, "main"], cwd=work, capture_output=True,
                       env=dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", **penv))
    assert r.returncode == 0, r.stderr
    assert b"remote: post-receive saw refs/heads/main" in r.stderr, r.stderr
    assert git("rev-parse", "main", cwd=h.repo) == git("rev-parse", "main", cwd=work)
    assert [p for p, _, _ in h.api.seen] == ["/api/v4/internal/allowed",
                                              "/api/v4/internal/pre_receive",
                                              "/api/v4/internal/post_receive"]
    env_doc = json.loads(h.api.seen[0][1]["env"])
    # git's quarantine directory, relative to the repository.
    qdir = env_doc["GIT_OBJECT_DIRECTORY_RELATIVE"]
    assert qdir.startswith("objects/") and "incoming-" in qdir, qdir
    assert env_doc["GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE"] == ["objects"]
