#!/usr/bin/python3
"""A stand-in for GitLab's internal API, enough for Gitaly's hooks without a
GitLab: POST /api/v4/internal/allowed, /pre_receive, /post_receive and
GET /api/v4/internal/check. By default every push is allowed.

Used by `make run` (scripts/run.sh) and by the gateway integration tests,
which plug in their own decision and post-receive messages:

    stub = GitLabStub(allow=lambda req: (False, "GitLab: no pushes today"))
    stub.start(); ... stub.url ...; stub.stop()

Run alone: scripts/gitlab_stub.py [--port N]  (prints the URL, serves until
killed).
"""

import argparse
import http.server
import json
import sys
import threading


class GitLabStub:
    def __init__(self, port=0, allow=None, post_receive_messages=None):
        self.allow = allow or (lambda req: (True, ""))
        self.post_receive_messages = post_receive_messages or []
        self.requests = []  # (path, parsed JSON body)
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/api/v4/internal/check"):
                    self.reply(200, {"api_version": "v4", "gitlab_version": "16.7.0",
                                     "gitlab_rev": "stub", "redis": True})
                else:
                    self.reply(404, {"message": "404 Not Found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    req = json.loads(raw or b"{}")
                except ValueError:
                    req = {"_raw": raw.decode(errors="replace")}
                path = self.path.split("?")[0]
                with stub.lock:
                    stub.requests.append((path, req))
                if path == "/api/v4/internal/allowed":
                    ok, msg = stub.allow(req)
                    if ok:
                        self.reply(200, {"status": True, "message": msg or ""})
                    else:
                        self.reply(403, {"status": False, "message": msg})
                elif path == "/api/v4/internal/pre_receive":
                    self.reply(200, {"reference_counter_increased": True})
                elif path == "/api/v4/internal/post_receive":
                    self.reply(200, {"reference_counter_decreased": True,
                                     "messages": stub.post_receive_messages})
                else:
                    self.reply(404, {"message": "404 Not Found"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def paths(self):
        with self.lock:
            return [p for p, _ in self.requests]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    stub = GitLabStub(port=args.port)
    print(stub.url, flush=True)
    try:
        stub.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
