"""The webhook destination against a real local HTTPS server (http.server + ssl) with a
certificate made by the openssl command for this test run: delivery, TLS verification, the
disk queue while offline, back-off, refusals, and never blocking on a hanging endpoint."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.fleet_events import Reporter, make_event
from agent.forwarding.webhook import WebhookDestination
from tests.waiting import wait_for

FAST = (0.05, 0.2)  # back-off for tests: first and longest wait


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem), made by the openssl CLI:
    the stdlib cannot make one and `cryptography` is not a dependency."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test certificate (Debian: openssl)", pytrace=False)
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


class Collector:
    """A real HTTPS server recording the JSON bodies POSTed to it; ``status`` is its answer."""

    def __init__(self, certificate, port=0, status=200):
        self.bodies: list[dict] = []
        self.status = status
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if collector.status == 200:
                    collector.bodies.append({"json": json.loads(body), "type": self.headers["Content-Type"],
                                             "path": self.path, "auth": self.headers["Authorization"]})
                self.send_response(collector.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, certificate))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}/events"

    def names(self):
        return [b["json"]["event"] for b in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collectors(certificate):
    made = []

    def make(**kwargs):
        made.append(Collector(certificate, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def webhooks():
    made = []

    def make(*args, **kwargs):
        kwargs.setdefault("backoff", FAST)
        made.append(WebhookDestination(*args, **kwargs))
        return made[-1]

    yield make
    for w in made:
        w.close(0.5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_events_are_posted_as_json_over_verified_tls(collectors, webhooks, certificate, tmp_path):
    server = collectors()
    hook = webhooks(server.url, tmp_path / "q", ca_file=str(certificate[0]), authorization="Splunk 1234-abcd")
    reporter = Reporter([hook], user="alice")
    sent = reporter.emit("locked", "locked", "mean P(genuine) of the last 5 blocks 0.210 < 0.500", 0.21, 0.5)
    wait_for(lambda: server.bodies, what="the POST")
    body = server.bodies[0]
    assert body["type"] == "application/json" and body["path"] == "/events" and body["auth"] == "Splunk 1234-abcd"
    assert body["json"] == sent.to_json_dict()
    assert set(body["json"]) == {"schema", "id", "event", "time", "host", "user", "agent_version", "pid", "state",
                                 "severity", "reason", "score", "threshold"}
    wait_for(lambda: not hook.spool.pending(), what="the queue to empty")
    reporter.close(1)


def test_a_certificate_not_signed_by_the_configured_ca_is_refused_and_the_event_kept(
        collectors, webhooks, tmp_path, caplog):
    server = collectors()
    with caplog.at_level(logging.ERROR, logger="mouseguard.fleet"):
        hook = webhooks(server.url, tmp_path / "q")  # the system CAs: the self-signed certificate fails
        for _ in range(3):
            hook.deliver(make_event("locked", "locked", user="alice"))
        wait_for(lambda: hook.failing, what="the failure")
        time.sleep(0.5)  # several retries
    assert server.bodies == []
    assert len(hook.spool.pending()) == 3
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and "CERTIFICATE_VERIFY_FAILED" in failures[0]


def test_a_missing_ca_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"webhook CA file .*nope.pem: No such file"):
        WebhookDestination("https://127.0.0.1:1/x", tmp_path / "q", ca_file=str(tmp_path / "nope.pem"))


def test_offline_events_wait_on_disk_privately_then_arrive_in_order(collectors, webhooks, certificate, tmp_path):
    port = free_port()
    queue_dir = tmp_path / "state" / "fleet-queue"
    hook = webhooks(f"https://127.0.0.1:{port}/events", queue_dir, ca_file=str(certificate[0]))
    names = ["locked", "resumed", "paused"]
    for name in names:
        hook.deliver(make_event(name, "x", user="alice"))
    wait_for(lambda: hook.failing, what="the endpoint to be found down")
    files = hook.spool.pending()
    assert len(files) == 3
    assert stat.S_IMODE(os.stat(queue_dir).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    assert [json.loads(f.read_text())["event"] for f in files] == names
    server = collectors(port=port)  # the collector comes up
    wait_for(lambda: len(server.bodies) == 3, what="the queued events to arrive")
    assert server.names() == names
    wait_for(lambda: not hook.spool.pending(), what="the queue to empty")
    assert not hook.failing


def test_the_queue_survives_a_restart_of_the_agent(collectors, webhooks, certificate, tmp_path):
    port = free_port()
    first = webhooks(f"https://127.0.0.1:{port}/e", tmp_path / "q", ca_file=str(certificate[0]))
    first.deliver(make_event("agent_stopped", "not protecting", user="alice"))
    first.close(0.2)
    assert len(first.spool.pending()) == 1
    server = collectors(port=port)
    webhooks(server.url, tmp_path / "q", ca_file=str(certificate[0]))  # the next agent's
    wait_for(lambda: server.names() == ["agent_stopped"], what="the previous run's event")


def test_the_disk_queue_is_bounded_dropping_the_oldest(webhooks, tmp_path, caplog):
    hook = webhooks(f"https://127.0.0.1:{free_port()}/e", tmp_path / "q", max_queued=3)
    with caplog.at_level(logging.ERROR, logger="mouseguard.fleet"):
        for i in range(6):
            hook.deliver(make_event("locked", "locked", f"n{i}", user="alice"))
    kept = [json.loads(f.read_text())["reason"] for f in hook.spool.pending()]
    assert kept == ["n3", "n4", "n5"] and hook.spool.dropped == 3
    assert len([r for r in caplog.records if "queue" in r.getMessage() and "full" in r.getMessage()]) == 1


def test_an_event_the_server_refuses_is_dropped_but_a_server_error_is_retried(collectors, webhooks, certificate,
                                                                              tmp_path):
    server = collectors(status=500)
    hook = webhooks(server.url, tmp_path / "q", ca_file=str(certificate[0]))
    hook.deliver(make_event("locked", "locked", user="alice"))
    wait_for(lambda: hook.failing, what="the 500")
    assert len(hook.spool.pending()) == 1  # kept for a retry
    server.status = 400
    wait_for(lambda: not hook.spool.pending(), what="the refused event to be dropped")
    server.status = 200
    hook.deliver(make_event("resumed", "protected", user="alice"))
    wait_for(lambda: server.names() == ["resumed"], what="the next event")


def test_a_hanging_endpoint_never_blocks_the_agent(webhooks, certificate, tmp_path):
    # A TCP listener that never answers: connect succeeds, the TLS handshake never completes.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        hook = webhooks(f"https://127.0.0.1:{port}/e", tmp_path / "q", ca_file=str(certificate[0]), timeout=1.0)
        reporter = Reporter([hook], user="alice")
        t0 = time.monotonic()
        for _ in range(50):
            reporter.emit("locked", "locked")
        assert time.monotonic() - t0 < 0.5  # emit only hands the event over
        assert reporter.flush(5)  # all 50 on disk while the sender waits on the silent server
        assert len(hook.spool.pending()) == 50
        wait_for(lambda: hook.failing, timeout=5, what="the timeout to count as a failure")
        t0 = time.monotonic()
        reporter.close(1.0)
        assert time.monotonic() - t0 < 3.0  # stopping the agent is not held up either
    finally:
        silent.close()


def test_redirects_are_not_followed(collectors, webhooks, certificate, tmp_path):
    server = collectors(status=302)
    hook = webhooks(server.url, tmp_path / "q", ca_file=str(certificate[0]))
    hook.deliver(make_event("locked", "locked", user="alice"))
    wait_for(lambda: hook.failing, what="the redirect to count as a failure")
    assert len(hook.spool.pending()) == 1
