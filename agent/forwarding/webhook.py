"""Fleet events to an HTTPS collector: one JSON object per POST, queued on disk, retried.

A laptop is often offline exactly when it matters (taken away, on a train), so every event is
first written to a bounded queue folder in the agent's state folder (0700, one 0600 file per
event, written atomically) and deleted only once the collector answered 2xx. A sender thread
works through the queue oldest first; while the collector is unreachable it waits with
exponential back-off (with jitter, so a fleet coming back online does not knock all at once)
and a new event does not cut the wait short. Events survive a restart of the agent.

Delivery is at least once: a response lost after the server stored the event means it is
sent again. Each event carries a unique ``id`` for the receiver to drop duplicates.

TLS is always verified: against the system's CAs, or only against ``webhook_ca`` (a PEM file)
when set, for a company CA or a pinned self-signed certificate. Redirects are not followed
(urllib would turn the POST into a GET, or follow it to http://).

What the server answered decides what happens to an event: 2xx delivered; 400, 413, 415, 422
(the event itself is refused, and would be forever) dropped and logged; anything else,
including 401/403 (a configuration problem an administrator can fix) and network errors, kept
and retried. Failures are logged once per outage, not per event.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from agent import __version__
from agent.fleet_events import Destination, Event, one_line
from agent.files import atomic_write_text, private_dir

log = logging.getLogger("mouseguard.fleet")

TIMEOUT = 10.0  # per request: a hanging collector holds only the sender thread, and only this long
BACKOFF = (2.0, 300.0)  # first wait and longest wait between attempts, in seconds
REFUSED = frozenset({400, 413, 415, 422})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx code: retried, and logged


class Spool:
    """The on-disk queue: one JSON file per event, named so that sorting gives the order."""

    def __init__(self, folder: Path, max_queued: int):
        self.folder = Path(folder)
        self.max_queued = max_queued
        self.dropped = 0
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def add(self, event: Event) -> None:
        with self._lock:
            private_dir(self.folder)
            name = f"{time.time_ns():020d}-{next(self._seq) % 1_000_000:06d}.json"
            atomic_write_text(self.folder / name, json.dumps(event.to_json_dict()) + "\n")
            files = self.pending()
            excess = len(files) - self.max_queued
            for old in files[:max(0, excess)]:  # the oldest go first: the newest matter most
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
                self.dropped += 1
                if self.dropped == 1:
                    log.error("the webhook queue %s is full (%d events): dropping the oldest", self.folder,
                              self.max_queued)

    def pending(self) -> list[Path]:
        try:
            return sorted(self.folder.glob("*.json"))
        except OSError:
            return []


class WebhookDestination(Destination):
    def __init__(self, url: str, queue_dir: Path, *, ca_file: str | None = None, max_queued: int = 1000,
                 authorization: str = "", timeout: float = TIMEOUT, backoff: tuple[float, float] = BACKOFF):
        self.url = url
        self._headers = {"Content-Type": "application/json", "User-Agent": f"mouseguard/{__version__}"}
        if authorization:  # an ingest token: sent, never logged
            self._headers["Authorization"] = authorization
        self.name = f"webhook {url.split('?')[0]}"  # a query may hold a token: not in the log
        self.spool = Spool(queue_dir, max_queued)
        self.timeout = timeout
        self.backoff = backoff
        try:
            context = ssl.create_default_context(cafile=ca_file)  # with a cafile: only that CA
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"webhook CA file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from None
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failing = False
        self.delivered = 0
        self._sender = threading.Thread(target=self._run, name="mouseguard-webhook", daemon=True)
        self._sender.start()

    # On the courier's thread: only the disk, never the network.
    def deliver(self, event: Event) -> None:
        self.spool.add(event)
        self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        """Give the sender up to ``timeout`` to empty the queue (what is left is sent next time)."""
        deadline = time.monotonic() + timeout
        while self.spool.pending() and not self.failing and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        self._sender.join(max(0.0, deadline - time.monotonic()))

    # -- the sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        wait, next_try = 0.0, 0.0
        while not self._stop.is_set():
            if self.spool.pending():
                self._wake.wait(max(0.0, next_try - time.monotonic()))
            else:
                self._wake.wait()
            self._wake.clear()
            if self._stop.is_set() or time.monotonic() < next_try:
                continue  # woken by a new event during a back-off: it waits its turn on disk
            try:
                sent = self._send_pending()
            except Exception as exc:  # the queue folder itself failing (permissions): back off, keep the thread
                if not self.failing:
                    self.failing = True
                    log.error("%s: the queue %s cannot be worked through: %s", self.name, self.spool.folder, exc)
                sent = False
            if sent:
                wait, next_try = 0.0, 0.0
            else:
                wait = min(self.backoff[1], wait * 2 if wait else self.backoff[0])
                next_try = time.monotonic() + wait * random.uniform(0.5, 1.0)

    def _send_pending(self) -> bool:
        """Send the queue oldest first; False at the first event that must be retried."""
        for path in self.spool.pending():
            if self._stop.is_set():
                return True
            try:
                body = path.read_bytes()
                json.loads(body)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                log.error("dropping a damaged webhook queue file %s: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            problem, keep = self._post(body)
            if problem is None or not keep:
                if problem is not None:
                    log.error("the webhook refused an event (%s); dropped it: %s", problem, path.name)
                path.unlink(missing_ok=True)
                if problem is None:
                    self.delivered += 1
                    if self.failing:
                        self.failing = False
                        log.warning("%s works again: sending the %d queued events", self.name,
                                    len(self.spool.pending()) + 1)
                continue
            if not self.failing:
                self.failing = True
                log.error("%s failed: %s; events are queued in %s and retried (not logged again until it works)",
                          self.name, problem, self.spool.folder)
            return False
        return True

    def _post(self, body: bytes) -> tuple[str | None, bool]:
        """(None, _) when delivered, else (what went wrong, whether to keep the event)."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=self._headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return f"HTTP {exc.code} {exc.reason}", exc.code not in REFUSED
        except urllib.error.URLError as exc:
            return one_line(str(exc.reason), 300), True
        except (OSError, ValueError) as exc:  # timeouts, resets, a malformed response
            return one_line(str(exc) or type(exc).__name__, 300), True
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", True
