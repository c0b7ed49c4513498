"""The private channel from ``mouseguard pause [MIN] | resume | stop`` to the running agent.

A Unix socket (``paths.control_socket()``: 0600, in a 0700 folder the user owns) carrying one
JSON request line and one JSON reply line per connection. Three locks keep other accounts out,
because pausing or stopping protection is exactly what someone else at the desk would want:
the folder's mode and owner are checked (and a folder that is not the user's is refused rather
than used), the socket is private, and the peer's uid is checked on every connection
(``SO_PEERCRED``) so a socket made reachable by mistake still answers only its owner.

On Windows there is no such channel yet (a named pipe with an owner-only ACL would be the
equivalent): the commands say so and the tray menu is the way there.

The server only carries requests: what a request may do (the pause caps, and later the
password issue 19 adds) is decided by the agent, in one function (``Agent.control``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from agent.errors import MouseguardError

log = logging.getLogger("mouseguard.control")

COMMANDS = ("pause", "resume", "stop", "status")
#: A request or reply is one short JSON line; anything longer is not ours.
MAX_MESSAGE = 4096
#: How long one connection may take to send its request: a client that connects and says
#: nothing must not hold up the next one.
REQUEST_TIMEOUT_S = 2.0
#: sockaddr_un.sun_path holds 108 bytes on Linux (104 on macOS), with the final NUL.
MAX_PATH_BYTES = 103

#: Reply to a request the agent handled: (ok, message for the user).
Handler = Callable[[dict], "tuple[bool, str]"]


class ControlError(MouseguardError):
    """The channel cannot be opened or used; the message says why in one line."""


class NotRunning(ControlError):
    """No agent answers on the channel."""


def _unsupported() -> bool:
    return sys.platform == "win32" or not hasattr(socket, "AF_UNIX")


def available() -> bool:
    """Whether this platform has the channel (not Windows yet)."""
    return not _unsupported()


def _check_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ControlError(f"the control socket path {path} is longer than a Unix socket allows "
                           f"({MAX_PATH_BYTES} bytes); use a shorter MOUSEGUARD_HOME")


def private_folder(folder: Path) -> None:
    """Make sure ``folder`` exists, is ours and is 0700; refuse one that belongs to someone else."""
    from agent.paths import ensure

    ensure(folder)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ControlError(f"{folder}: not a folder (a link or a file is in the way of the control socket)")
    if info.st_uid != os.getuid():
        raise ControlError(f"{folder}: belongs to uid {info.st_uid}, not to you; no control socket there")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)


def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end; None where the OS does not say (not Linux)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class ControlServer(threading.Thread):
    """Accepts requests on ``path`` and answers each with ``handle(request)``.

    ``bind()`` (called by ``start``) raises ControlError when the socket cannot be made; the
    caller holds the instance lock, so a socket file already there is a dead agent's and goes.
    """

    def __init__(self, path: str | os.PathLike, handle: Handler):
        super().__init__(name="mouseguard-control", daemon=True)
        self.path = Path(path)
        self.handle = handle
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()

    def bind(self) -> None:
        if _unsupported():
            raise ControlError("no control channel on this platform yet")
        _check_path(self.path)
        private_folder(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ControlError(f"{self.path}: something that is not a socket is in the way")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600, not briefly open until the chmod below
        try:
            sock.bind(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot make the control socket {self.path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.settimeout(0.5)  # so stop() is noticed
        self._sock = sock

    def start(self) -> None:
        if self._sock is None:
            self.bind()
        super().start()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            with conn:
                try:
                    self._serve(conn)
                except Exception:  # one bad client must not end the channel
                    log.exception("control request failed")

    def _serve(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        if uid is not None and uid != os.getuid():
            log.warning("control request from uid %d refused (only uid %d may control this agent)", uid, os.getuid())
            _send(conn, {"ok": False, "message": "refused: not your agent"})
            return
        conn.settimeout(REQUEST_TIMEOUT_S)
        request = _receive(conn)
        if not isinstance(request, dict) or request.get("command") not in COMMANDS:
            _send(conn, {"ok": False, "message": f"unknown request (expected one of {', '.join(COMMANDS)})"})
            return
        ok, message = self.handle(request)
        _send(conn, {"ok": bool(ok), "message": str(message)})

    def stop(self) -> None:
        self._stopping.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(2.0)


def _receive(conn: socket.socket) -> object:
    data = b""
    while not data.endswith(b"\n") and len(data) <= MAX_MESSAGE:
        chunk = conn.recv(MAX_MESSAGE)
        if not chunk:
            break
        data += chunk
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode("utf-8") + b"\n")


def request(command: str, path: str | os.PathLike | None = None, timeout: float = 15.0, **fields) -> tuple[bool, str]:
    """Send one request to the running agent; ``(ok, message)`` from its reply.

    Raises NotRunning when no agent answers, ControlError when the channel is unusable.
    """
    if _unsupported():
        raise ControlError("'mouseguard pause/resume/stop' do not work on Windows yet: use the tray icon's menu")
    if path is None:
        from agent.paths import control_socket

        path = control_socket()
    path = Path(path)
    _check_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    with sock:
        try:
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"not running (no agent answers at {path})") from None
        except PermissionError:
            raise ControlError(f"{path}: permission denied (the agent there is not yours)") from None
        except TimeoutError:
            raise ControlError(f"the agent at {path} does not answer") from None
        try:
            try:
                _send(sock, {"command": command, **fields})
            except BrokenPipeError:
                pass  # refused before the request was read: the refusal is waiting to be read
            reply = _receive(sock)
        except TimeoutError:
            raise ControlError(f"the agent at {path} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"the agent at {path} closed the channel: {exc.strerror or exc}") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ControlError(f"the agent at {path} gave no answer")
    return bool(reply["ok"]), str(reply.get("message", ""))
