"""The public data sets as lists of sessions, and their blocks.

Balabit (training sessions): ``<dir>/<user>/session_<id>``, seconds, RDP client events.
SapiMouse: ``<dir>/user<N>/session_<date>_<3min|1min|5min>.csv``, milliseconds.
A recording set (``recording``): ``<dir>/<user>/*.csv[.gz]`` in the project's own format,
or a single file whose user is given on the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

from agent.blocks import BlockSpec, cut_blocks
from agent.errors import MouseguardError
from agent.recordings import read_recording

DATASETS = ("balabit", "sapimouse", "mauth", "recording")


class DatasetError(MouseguardError, ValueError):
    """A data folder that does not hold the expected data set."""


@dataclasses.dataclass(frozen=True)
class Session:
    dataset: str
    user: str
    session: str
    path: Path
    #: SapiMouse's session length ("3min", "1min", "5min"); "" elsewhere.
    kind: str = ""

    @property
    def key(self) -> str:
        return f"{self.user}/{self.session}"


def _user_sort_key(name: str):
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else 0, name)


def balabit_sessions(data_dir) -> list[Session]:
    data_dir = Path(data_dir)
    sessions = [
        Session("balabit", f.parent.name, f.name, f)
        for f in sorted(data_dir.glob("user*/session_*"))
        if f.is_file()
    ]
    if not sessions:
        raise DatasetError(f"{data_dir}: no Balabit sessions (expected user*/session_* files)")
    return sorted(sessions, key=lambda s: (_user_sort_key(s.user), s.session))


def sapimouse_sessions(data_dir) -> list[Session]:
    data_dir = Path(data_dir)
    sessions = []
    for f in sorted(data_dir.glob("user*/session_*.csv")):
        m = re.search(r"_(\d+min)\.csv$", f.name)
        sessions.append(Session("sapimouse", f.parent.name, f.stem, f, m.group(1) if m else ""))
    if not sessions:
        raise DatasetError(f"{data_dir}: no SapiMouse sessions (expected user*/session_*.csv files)")
    return sorted(sessions, key=lambda s: (_user_sort_key(s.user), s.session))


def mauth_sessions(data_dir) -> list[Session]:
    """The mAuth study's raw pynput logs, ``user_<N>_data.csv``: one 30-minute session per person,
    all at one kind of desk (for evaluation only: the data set states no licence)."""
    data_dir = Path(data_dir)
    sessions = []
    for f in sorted(data_dir.glob("user_*_data.csv")):
        m = re.fullmatch(r"user_(\d+)_data\.csv", f.name)
        if m:
            sessions.append(Session("mauth", f"user{m.group(1)}", "all", f))
    if not sessions:
        raise DatasetError(f"{data_dir}: no mAuth recordings (expected user_<N>_data.csv files)")
    return sorted(sessions, key=lambda s: _user_sort_key(s.user))


def recording_sessions(path, user: str | None = None) -> list[Session]:
    """Recordings: one file (its user named by ``user``) or a folder of ``<user>/*.csv[.gz]``."""
    path = Path(path)
    if path.is_file():
        return [Session("recording", user or "user", path.name, path)]
    files = sorted(p for p in path.glob("*/*") if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise DatasetError(f"{path}: no recordings (expected a file, or <user>/*.csv[.gz] files)")
    return [Session("recording", f.parent.name, f.name, f) for f in files]


def load_sessions(dataset: str, data, user: str | None = None) -> list[Session]:
    if dataset == "balabit":
        return balabit_sessions(data)
    if dataset == "sapimouse":
        return sapimouse_sessions(data)
    if dataset == "mauth":
        return mauth_sessions(data)
    if dataset == "recording":
        return recording_sessions(data, user)
    raise DatasetError(f"unknown data set {dataset!r} (choose from {', '.join(DATASETS)})")


#: Data sets whose files have the project's header but times in another unit (stated, not guessed).
TIME_UNITS = {"sapimouse": "ms"}


@functools.lru_cache(maxsize=None)
def _events(path: Path, time_unit: str | None = None) -> np.ndarray:
    return read_recording(path, time_unit=time_unit)


def session_events(session: Session) -> np.ndarray:
    """The session's events (read once, cached)."""
    return _events(session.path, TIME_UNITS.get(session.dataset))


@functools.lru_cache(maxsize=4096)
def session_blocks(session: Session, spec: BlockSpec) -> np.ndarray:
    """All blocks of one session, in time order, cut by the agent's own cutter."""
    blocks, _ = cut_blocks(session_events(session), spec)
    blocks.setflags(write=False)
    return blocks


def blocks_by_user(sessions, spec: BlockSpec) -> dict[str, np.ndarray]:
    """Every session's blocks, concatenated per user (what pre-training learns from)."""
    out: dict[str, list] = {}
    for s in sessions:
        out.setdefault(s.user, []).append(session_blocks(s, spec))
    return {u: np.concatenate(b) for u, b in out.items()}


def select_users(all_users, wanted: str | None) -> list[str]:
    """``user7,user9``, ``7,9`` or ranges ``1-72``; names keep the data set's spelling."""
    if not wanted:
        return list(all_users)
    chosen = []
    for part in wanted.split(","):
        part = part.strip()
        m = re.fullmatch(r"(?:user)?(\d+)-(?:user)?(\d+)", part)
        names = [f"user{i}" for i in range(int(m.group(1)), int(m.group(2)) + 1)] if m else \
            [part if part.startswith("user") else f"user{part}"]
        chosen += [n for n in names if n in all_users]
        if not m and names[0] not in all_users:
            raise DatasetError(f"unknown user {part!r} (the data has {len(all_users)} users, "
                               f"e.g. {', '.join(list(all_users)[:3])})")
    if not chosen:
        raise DatasetError(f"no users match {wanted!r}")
    return sorted(set(chosen), key=list(all_users).index)
