"""gitaly-gateway after an idle period. gitaly pings an idle connection
(HTTP/2 keepalive, every 5 minutes upstream) and closes the transport when
the ping is not answered within 20 s. The gateway's connections are grpc
channels made from a descriptor, which grpc core reads only while a call
polls, so without the idle poller the ping went unanswered and the first
request after ~5.5 minutes failed with 500 "gitaly unavailable". Here the
ping period is shortened to 1 s (GITALY_TESTING_KEEPALIVE_TIME_MS), so 23 s
of silence cover a whole ping + timeout cycle.
"""

import os
import shutil
import time

from conftest import short_tmpdir
from gateway_util import Gateway, GitLabStub, StubbedGitaly


def test_first_request_after_keepalive_cycle():
    stub = GitLabStub().start()
    gitaly = StubbedGitaly(short_tmpdir(), stub.url, token="gwtoken",
                           env={"GITALY_TESTING_KEEPALIVE_TIME_MS": "1000"})
    gitaly.start()
    gw = Gateway(short_tmpdir(), gitaly).start()
    try:
        gw.create("idle.git")
        path = "/idle.git/info/refs?service=git-upload-pack"
        st, _, body = gw.request("GET", path)
        assert st == 200, body
        # ping at 1 s, the 20 s watchdog at 21 s: both passed
        time.sleep(23)
        st, _, body = gw.request("GET", path)
        assert st == 200, (st, body, gw.log_text())
        log = gw.log_text()
        assert "gitaly unavailable" not in log and "Socket closed" not in log, log
    finally:
        gw.stop()
        gitaly.stop()
        stub.stop()
        for d in (gw.base, gitaly.base):
            shutil.rmtree(d, ignore_errors=True)
