"""What every benchmark shares: the shipped demo model, the real input, a private X server."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import models
from agent.errors import MouseguardError
from agent.recordings import read_recording

ROOT = Path(__file__).resolve().parent.parent


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Context:
    def __init__(self, args):
        self.quick = bool(args.quick)
        self.data = Path(args.data) if args.data else None
        self.tmp = Path(tempfile.mkdtemp(prefix="mouseguard-bench-"))
        self.model_path = models.DEMO_MODEL
        from agent.model_dir import load_model_dir

        self.model = load_model_dir(self.model_path)
        self.spec = self.model.spec
        self._recordings = None
        self.xserver = None

    def balabit_user7(self) -> list[tuple[str, np.ndarray]]:
        folder = self.data / "balabit-training" / "user7" if self.data else None
        if folder is None or not folder.is_dir():
            raise MouseguardError(f"no Balabit user7 sessions under {self.data}/balabit-training/user7 "
                                  f"(the full run needs --data; use --quick without it)")
        return [(str(p), read_recording(p)) for p in sorted(folder.iterdir()) if p.is_file()]

    def recordings(self) -> list[np.ndarray]:
        """Real input for the agent benchmarks: shipped demo recordings (quick) or Balabit user7."""
        if self._recordings is None:
            if self.quick:
                self._recordings = [read_recording(models.DEMO_GENUINE), read_recording(models.DEMO_IMPOSTOR)]
            else:
                self._recordings = [ev for _, ev in self.balabit_user7()]
        return self._recordings

    def x(self):
        """One private Xvfb for the hook and start-up benchmarks."""
        if self.xserver is None:
            from benchmarks.xserver import XServer

            self.xserver = XServer().start()
        return self.xserver

    def close(self) -> None:
        if self.xserver is not None:
            self.xserver.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
