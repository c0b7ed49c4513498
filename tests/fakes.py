"""Test doubles shared by several test files.

Fakes here implement the real interfaces (not mocks of call sequences), so a test that
passes with a fake says something about the contract the real object also honours.
"""

from __future__ import annotations

import threading
from typing import Callable

from agent.responses.result import LockResult
from agent.tray import Tray


class RecordingTray(Tray):
    """A tray that records what the agent showed: ``states`` and ``notifications``.

    ``run`` behaves like the real trays (calls ``on_ready``, blocks until ``stop``), so agent
    start-up and shutdown can be tested without a display.
    """

    def __init__(self):
        self.states: list[tuple[str, str]] = []  # (state, tooltip), in order
        self.notifications: list[tuple[str, str]] = []  # (title, message), in order
        self.ran = threading.Event()
        self.stopped = threading.Event()
        self._lock = threading.Lock()  # the agent calls in from several threads

    @property
    def state(self) -> str | None:
        """The state shown last, or None before the first set_state."""
        with self._lock:
            return self.states[-1][0] if self.states else None

    def set_state(self, state: str, tooltip: str) -> None:
        with self._lock:
            self.states.append((state, tooltip))

    def notify(self, title: str, message: str) -> None:
        assert title, "notify needs a title (macOS shows nothing without one)"
        with self._lock:
            self.notifications.append((title, message))

    def run(self, on_ready: Callable[[], None]) -> None:
        if self.stopped.is_set():
            return
        self.ran.set()
        on_ready()
        self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


class FakeRun:
    """A stand-in for :func:`subprocess.run`: records every command, answers from a script.

    ``answers`` maps a command prefix (tuple of leading words) to a result: an int exit code,
    ``(exit code, stdout)``, an exception instance to raise, or a callable ``(command) -> any
    of those``. The longest matching prefix wins; unmatched commands exit 127 (not found).
    """

    def __init__(self, answers: dict[tuple[str, ...], object] | None = None):
        self.answers = dict(answers or {})
        self.calls: list[list[str]] = []
        self.kwargs: list[dict] = []

    def __call__(self, command, **kwargs):
        import subprocess

        command = list(command)
        self.calls.append(command)
        self.kwargs.append(kwargs)
        answer = self._answer(command)
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer(command)
        if isinstance(answer, BaseException):
            raise answer
        code, stdout = (answer, "") if isinstance(answer, int) else answer
        return subprocess.CompletedProcess(command, code, stdout=stdout, stderr="" if code == 0 else "fake failure")

    def _answer(self, command):
        best, best_len = 127, -1
        for prefix, answer in self.answers.items():
            if tuple(command[: len(prefix)]) == prefix and len(prefix) > best_len:
                best, best_len = answer, len(prefix)
        return best

    def commands_starting(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if tuple(c[: len(prefix)]) == prefix]


class ScriptedScorer:
    """The :class:`agent.scorer.Scorer` interface (``score(blocks)`` -> P(genuine) per block)
    without onnxruntime, answering from a script: ``answer`` is a number given for every block,
    an exception instance to raise, or a callable ``(call number, n blocks) -> either of those or
    an array of scores``. ``answer`` may be changed between calls; ``calls`` counts them."""

    def __init__(self, answer, model=None):
        self.answer = answer
        self.model = model
        self.calls = 0

    def score(self, blocks):
        import numpy as np

        if len(blocks) == 0:
            return np.empty(0, dtype=np.float32)
        self.calls += 1
        answer = self.answer(self.calls, len(blocks)) if callable(self.answer) else self.answer
        if isinstance(answer, BaseException):
            raise answer
        return np.broadcast_to(np.asarray(answer, dtype=np.float32), (len(blocks),)).copy()


def fake_session_bin(folder) -> tuple:
    """A PATH folder whose ``loginctl`` stands in for logind (the OS session lock cannot exist
    on CI): it appends each command line to ``calls``; after ``lock-session`` it reports
    ``LockedHint=yes`` twice (the locker's confirmation, the owner check's) and ``no`` after
    that, as if the owner unlocked at once. A silent ``notify-send`` too (no notification daemon
    here). Returns ``(bin folder, calls file)``; run the agent with ``XDG_SESSION_ID`` set."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    calls, reads = folder / "loginctl.calls", folder / "loginctl.locked"
    (folder / "loginctl").write_text(
        f'#!/bin/sh\necho "$*" >> "{calls}"\n'
        f'case "$*" in\n  lock-session*) echo 2 > "{reads}";;\n'
        f'  *LockedHint*) n=$(cat "{reads}" 2>/dev/null || echo 0)\n'
        f'    if [ "$n" -gt 0 ]; then echo yes; echo $((n - 1)) > "{reads}"; else echo no; fi;;\n'
        'esac\nexit 0\n')
    (folder / "notify-send").write_text("#!/bin/sh\nexit 0\n")
    for name in ("loginctl", "notify-send"):
        (folder / name).chmod(0o755)
    return folder, calls


class FakeLocker:
    """The OS session lock, which cannot exist on CI: counts the calls, answers ``ok``."""

    def __init__(self, ok=True):
        self.calls = 0
        self.ok = ok

    def __call__(self):
        self.calls += 1
        return LockResult(self.ok, "fake lock" if self.ok else "no lock mechanism worked")
