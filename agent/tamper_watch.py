"""Files that weaken protection when edited under a running agent: seen, and acted on at once.

The agent reads its configuration and its model once, at start. An edit made while it runs
(``action = "log"`` or a lax threshold in config.toml, a manifest with another threshold, a model
folder replaced by ``mouseguard enroll``) would take effect at the next start without anybody
having proven to be the owner. So the heartbeat compares each watched file's (mtime, size,
inode) with what it was at start; any change — including the file appearing or vanishing — makes
the agent lock first (the owner unlocks with the password, then restarts the agent to apply it).
"""

from __future__ import annotations

import os
from pathlib import Path


def fingerprint(path: Path) -> tuple | None:
    """What changes when the file is written, replaced or removed (None: not there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class FileWatch:
    """``changed()`` names the watched files that differ from when the watch began (or was
    last acknowledged with ``accept()``)."""

    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        self.accept()

    def accept(self) -> None:
        self._seen = {p: fingerprint(p) for p in self.paths}

    def changed(self) -> list[Path]:
        return [p for p in self.paths if fingerprint(p) != self._seen[p]]


def model_files(model_dir: Path) -> list[Path]:
    """The model folder's files as they are now, and the folder itself (a file added or
    removed there changes the folder's mtime)."""
    model_dir = Path(model_dir)
    try:
        files = sorted(p for p in model_dir.iterdir() if p.is_file())
    except OSError:
        files = []
    return [model_dir, *files]
