"""The enrolment blocks: what a later refit needs of an enrolment, kept instead of its recordings.

A raw recording (time, button, state, x, y of every event) is a replay kit: whoever copies it
can play the owner's movement back through xdotool. After a successful enrolment mouseguard
deletes the recordings it was made from (unless the user keeps them, ``enrolment.keep_recordings``)
and keeps only the model inputs cut from them, so the cohort refit and the template update can
retrain without them:

* the blocks of each recording as the agent cuts them, with each block's end time counted from
  the recording's first event (what splits a recording into its trained and held-out part), and
  the active seconds of each recording (the seconds of movement per block the summary states);
* the blocks of the extra tilings (the same movement cut from later starts) with their end times;
* the owner's set-up: a sample of the intervals between movement events (what the background
  pool is re-cast to, training/data/recast.py);
* the sampled position fingerprints that leave the owner's own recordings out of the background
  pool (training/data/pool.py) — hashes, not positions.

No absolute position, no click position, no event timestamps. They are not nothing: the
velocity and time-step channels can be integrated back into relative movement (recast.py does
exactly that), docs/threat-model.md says what that gives an attacker.

One private file (0600, written atomically) per user in the data folder, ``enrolment-blocks/<user>.npz``:
not in the model folder, which is swapped whole, hashed and watched for tampering while the agent
runs. ``mouseguard forget`` erases it. stdlib + numpy only: the agent looks it up without torch.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from agent import sealing
from agent.blocks import BlockSpec, BlockSpecError
from agent.errors import MouseguardError
from agent.files import atomic_open

FORMAT = "mouseguard-enrolment-blocks"
FORMAT_VERSION = 1
SUFFIX = ".npz"
_FIELDS = ("format", "version", "user", "spec", "blocks", "run_lengths", "ends", "active_seconds", "tilings",
           "extra", "extra_lengths", "extra_ends", "set_up_step", "set_up_steps", "fingerprints")


class EnrolmentBlocksError(MouseguardError):
    """An enrolment blocks file that cannot be used; one line."""


def blocks_path(user: str, env: Mapping[str, str] | None = None) -> Path:
    """``user``'s enrolment blocks file; a path instead of a name is refused (UserNameError)."""
    from agent import paths

    return paths.data_dir(env) / "enrolment-blocks" / f"{paths.safe_user_name(user)}{SUFFIX}"


def is_blocks_file(path: str | os.PathLike) -> bool:
    """Whether ``enroll --from`` was given an enrolment blocks file rather than a recording
    (recordings are CSV, gzipped CSV, or Balabit's suffix-less files)."""
    return str(path).endswith(SUFFIX)


@dataclasses.dataclass(frozen=True)
class EnrolmentBlocks:
    """One person's enrolment as training takes it; every list has one item per recording, in
    time order (training.user_model.owner cuts it from recordings)."""

    user: str
    spec: BlockSpec
    runs: list[np.ndarray]  # (n, channels, size) float32: the blocks as the agent cuts them
    ends: list[np.ndarray]  # (n,) float64: each block's end, seconds from the recording's first event
    active_seconds: list[float]  # of movement (gaps longer than spec.gap left out)
    tilings: int  # how many ways ``extra`` was cut (1: no extra tilings)
    extra: list[np.ndarray]  # the extra tilings' blocks, tiling by tiling
    extra_ends: list[np.ndarray]
    set_up_steps: np.ndarray  # a sample of the intervals between movement events (empty: too little to say)
    set_up_step: float | None  # their median
    fingerprints: np.ndarray  # uint64, sorted

    @property
    def blocks(self) -> np.ndarray:
        """All blocks of one tiling, one recording after the other (what the cohort publishes)."""
        if not self.runs:
            return np.empty((0, self.spec.channels, self.spec.size), np.float32)
        return np.concatenate(self.runs)

    def extra_until(self, run: int, until: float) -> np.ndarray:
        """The extra tilings' blocks of recording ``run`` that end by ``until``."""
        return self.extra[run][self.extra_ends[run] <= until]


def _joined(parts: list[np.ndarray], shape: tuple, dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty((0, *shape), dtype)


def write_blocks(path: str | os.PathLike, owner: EnrolmentBlocks, key: bytes | None = None) -> None:
    """Write ``owner`` to ``path`` atomically, private (0600); sealed with ``key`` if given
    (agent/sealing.py: they can be integrated back into movement, as recordings replay)."""
    shape = (owner.spec.channels, owner.spec.size)
    f = io.BytesIO()
    np.savez(f, format=np.array(FORMAT), version=np.array(FORMAT_VERSION), user=np.array(owner.user),
             spec=np.array(json.dumps(owner.spec.to_dict(), sort_keys=True)),
             blocks=_joined(owner.runs, shape, np.float32),
             run_lengths=np.array([len(r) for r in owner.runs], np.int64),
             ends=_joined(owner.ends, (), np.float64),
             active_seconds=np.array(owner.active_seconds, np.float64),
             tilings=np.array(int(owner.tilings)),
             extra=_joined(owner.extra, shape, np.float32),
             extra_lengths=np.array([len(r) for r in owner.extra], np.int64),
             extra_ends=_joined(owner.extra_ends, (), np.float64),
             set_up_step=np.array(np.nan if owner.set_up_step is None else float(owner.set_up_step)),
             set_up_steps=np.asarray(owner.set_up_steps, np.float64),
             fingerprints=np.asarray(owner.fingerprints, np.uint64))
    payload = f.getvalue() if key is None else sealing.seal(f.getvalue(), key)
    with atomic_open(path, "wb") as out:
        out.write(payload)


def _split(joined: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(joined, np.cumsum(lengths)[:-1]) if len(lengths) else []


def read_blocks(path: str | os.PathLike) -> EnrolmentBlocks:
    """The enrolment blocks in ``path``; EnrolmentBlocksError says in one line why not."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if sealing.is_sealed(data):
            data = sealing.unseal(data, str(path))
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            missing = [n for n in _FIELDS if n not in z.files]
            if missing:
                raise EnrolmentBlocksError(f"{path}: not a mouseguard enrolment blocks file (no {', '.join(missing)})")
            f = {name: z[name] for name in _FIELDS}
    except EnrolmentBlocksError:
        raise
    except sealing.SealingUnavailable as exc:
        raise EnrolmentBlocksError(str(exc)) from None
    except OSError as exc:
        raise EnrolmentBlocksError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # zip, npy and pickle-refusal errors alike: a damaged or foreign file
        raise EnrolmentBlocksError(f"{path}: not a readable enrolment blocks file ({type(exc).__name__})") from None
    if f["format"].shape != () or str(f["format"]) != FORMAT:
        raise EnrolmentBlocksError(f"{path}: not a mouseguard enrolment blocks file")
    if f["version"].dtype.kind not in "iu" or int(f["version"]) != FORMAT_VERSION:
        raise EnrolmentBlocksError(f"{path}: format version {f['version']!s} (this mouseguard reads {FORMAT_VERSION})")
    try:
        spec = BlockSpec.from_dict(json.loads(str(f["spec"])))
    except (ValueError, TypeError, BlockSpecError) as exc:
        raise EnrolmentBlocksError(f"{path}: unreadable block spec ({exc})") from None
    shape = (spec.channels, spec.size)
    runs, extra = f["run_lengths"], f["extra_lengths"]
    consistent = (
        f["blocks"].dtype == np.float32 and f["blocks"].shape[1:] == shape and f["extra"].dtype == np.float32
        and f["extra"].shape[1:] == shape and runs.ndim == 1 and runs.dtype.kind in "iu" and (runs >= 0).all()
        and extra.ndim == 1 and extra.dtype.kind in "iu" and (extra >= 0).all() and len(extra) == len(runs)
        and int(runs.sum()) == len(f["blocks"]) == len(f["ends"]) and int(extra.sum()) == len(f["extra"])
        == len(f["extra_ends"]) and f["active_seconds"].shape == runs.shape and f["fingerprints"].dtype == np.uint64
        and np.isfinite(f["blocks"]).all() and np.isfinite(f["extra"]).all())
    if not consistent:
        raise EnrolmentBlocksError(f"{path}: its arrays do not fit together (damaged?)")
    step = float(f["set_up_step"])
    return EnrolmentBlocks(
        user=str(f["user"]), spec=spec, runs=_split(f["blocks"], runs), ends=_split(f["ends"], runs),
        active_seconds=[float(s) for s in f["active_seconds"]], tilings=int(f["tilings"]),
        extra=_split(f["extra"], extra), extra_ends=_split(f["extra_ends"], extra),
        set_up_steps=f["set_up_steps"].astype(np.float64), set_up_step=None if np.isnan(step) else step,
        fingerprints=f["fingerprints"])
