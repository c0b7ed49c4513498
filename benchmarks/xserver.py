"""A private X server for tests and benchmarks: real Xvfb, real xdotool input.

Input from xdotool goes through XTest into the X server, so a pynput listener sees it exactly
as it would see a hand on a mouse (X11 does not flag XTest input as injected). No mocks: the
tests exercise the same RECORD extension path the agent uses on a desktop.

Xvfb picks a free display number itself and writes it to ``-displayfd`` once it accepts
connections, so parallel test runs never race for ``:99``.

``-noreset`` matters: an X server resets when its last client disconnects, and between tests
the only clients are short-lived xdotool processes. Without it each xdotool call ends with a
reset that re-centres the pointer (and a client connecting mid-reset is refused).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time


class XServerError(RuntimeError):
    """Xvfb or xdotool is missing or misbehaves."""


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise XServerError(
            f"{tool} is not installed; the X11 tests need it (Debian/Ubuntu: apt-get install {package})"
        )
    return path


def relative_move(dx: int, dy: int, sync: bool = True) -> list[str]:
    """xdotool arguments for one relative move; chain several in one xdotool call.

    The ``--`` keeps negative offsets from being read as options. ``--sync`` waits until the
    pointer has moved, so it hangs when the move goes nowhere (a zero offset, or the pointer
    held at a screen edge); the same holds for ``mousemove --sync`` to where the pointer is.
    """
    return ["mousemove_relative", *(["--sync"] if sync else []), "--", str(dx), str(dy)]


class XServer:
    """One Xvfb process; ``display`` is its ``:N`` once started."""

    def __init__(self, width: int = 1280, height: int = 800, depth: int = 24, start_timeout: float = 10.0):
        self.width, self.height, self.depth = width, height, depth
        self.start_timeout = start_timeout
        self.display: str | None = None
        self._process: subprocess.Popen | None = None
        self._log = None  # Xvfb's stderr: a file, so its chatter can never fill a pipe and block it

    def start(self) -> "XServer":
        xvfb = require("Xvfb", "xvfb")
        require("xdotool", "xdotool")
        read_fd, write_fd = os.pipe()
        self._log = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                [xvfb, "-displayfd", str(write_fd), "-screen", "0",
                 f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
            )
        finally:
            os.close(write_fd)
        try:
            self.display = f":{self._read_display_number(read_fd)}"
            # Xvfb writes the number once it listens; one real client round trip proves it.
            self.xdotool("getmouselocation")
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        return self

    def _read_display_number(self, fd: int) -> int:
        deadline = time.monotonic() + self.start_timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise XServerError(f"Xvfb did not report a display within {self.start_timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 64)
            if not chunk:  # Xvfb exited before it was ready
                raise XServerError(f"Xvfb exited before it was ready: {self.log_tail()}")
            data += chunk
        return int(data.strip())

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def env(self) -> dict[str, str]:
        """The environment for a client of this server."""
        if self.display is None:
            raise XServerError("the X server is not running")
        return {**os.environ, "DISPLAY": self.display}

    def xdotool(self, *args, timeout: float = 10.0) -> str:
        """Run the real xdotool against this server; return its stdout."""
        done = subprocess.run(
            ["xdotool", *map(str, args)], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise XServerError(f"xdotool {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def xdotool_background(self, *args) -> subprocess.Popen:
        """Start xdotool without waiting, to produce input while the test consumes it."""
        return subprocess.Popen(
            ["xdotool", *map(str, args)], env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def pointer(self) -> tuple[int, int]:
        """Where the X server has the pointer now."""
        fields = dict(part.split(":", 1) for part in self.xdotool("getmouselocation").split())
        return int(fields["x"]), int(fields["y"])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.display = None

    def log_tail(self, chars: int = 500) -> str:
        """The end of Xvfb's stderr, for error messages."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-chars:]

    def __enter__(self) -> "XServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
