"""The background pool: impostor blocks from many users, shipped for enrolment.

A person enrolling on their own workstation has no other users' mouse data, yet the network
needs negatives. The pool holds blocks of many public-data users (float16, compressed),
with the user each block came from, so the enrolment can hold out whole pool users to
measure how fast an unseen person would be locked out.

The pool also holds *fingerprints* of every recording its users made: hashes of runs of
consecutive pointer positions, a content-defined sample of them (so an excerpt that starts
anywhere in a session still matches). Someone who enrols from public recordings that are
in the pool (the Balabit sessions of the acceptance check, the demo) would otherwise
train against their own blocks labelled "impostor"; an enrolment drops every pool user
whose fingerprints its recordings share.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from agent.blocks import BlockSpec
from agent.errors import MouseguardError
from agent.files import atomic_open, atomic_write_text

POOL_INFO_SUFFIX = ".json"


class PoolError(MouseguardError, ValueError):
    pass


#: Positions per fingerprinted run, and 1 in SAMPLE of the runs' hashes kept.
FINGERPRINT_RUN = 12
FINGERPRINT_SAMPLE = 32
#: Shared fingerprints that mark a pool user as the enrolling person (chance matches of
#: 12 exact screen positions in a row between two people are not expected at all).
SAME_PERSON_MATCHES = 5


def fingerprints(events: np.ndarray) -> np.ndarray:
    """Sampled hashes of every run of ``FINGERPRINT_RUN`` consecutive (x, y) positions.

    Runs on one spot (clicks, a resting hand) are skipped: everyone produces those.
    """
    if len(events) < FINGERPRINT_RUN:
        return np.empty(0, np.uint64)
    key = ((events["x"].astype(np.int64) & 0xFFFF) << 16 | (events["y"].astype(np.int64) & 0xFFFF)).astype(np.uint64)
    n = len(key) - FINGERPRINT_RUN + 1
    h = np.zeros(n, np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for k in range(FINGERPRINT_RUN):
            h = (h ^ key[k:k + n]) * prime  # FNV-1a over the run, wrapping in 64 bits
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    moving = np.ptp(np.lib.stride_tricks.sliding_window_view(key, FINGERPRINT_RUN), axis=1) > 0
    return np.unique(h[moving & (h % np.uint64(FINGERPRINT_SAMPLE) == 0)])


def save_pool(path, blocks_by_user: dict[str, np.ndarray], spec: BlockSpec, info: dict,
              fingerprints_by_user: dict[str, np.ndarray] | None = None) -> None:
    path = Path(path)
    users = sorted(blocks_by_user)
    blocks = np.concatenate([blocks_by_user[u] for u in users]).astype(np.float16)
    owner = np.concatenate([np.full(len(blocks_by_user[u]), i, dtype=np.int16) for i, u in enumerate(users)])
    fps = fingerprints_by_user or {}
    fp = np.concatenate([fps.get(u, np.empty(0, np.uint64)) for u in users]).astype(np.uint64)
    fp_owner = np.concatenate([np.full(len(fps.get(u, ())), i, dtype=np.int16) for i, u in enumerate(users)])
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, blocks=blocks, owner=owner, users=np.array(users), fp=fp, fp_owner=fp_owner)
    meta = {"block_spec": spec.to_dict(), "users": len(users), "blocks": int(len(blocks)), **info}
    atomic_write_text(path.with_suffix(POOL_INFO_SUFFIX), json.dumps(meta, indent=2) + "\n")


@dataclasses.dataclass
class Pool:
    users: list[str]
    #: One run of float32 blocks per user.
    runs: list[np.ndarray]
    fingerprints: list[np.ndarray]

    def without_owners_of(self, recordings: list[np.ndarray]) -> tuple["Pool", list[str]]:
        """The pool minus every user whose recordings ``recordings`` share; and who was dropped."""
        mine = np.unique(np.concatenate([fingerprints(e) for e in recordings])) if recordings else np.empty(0)
        return self.without_fingerprints(mine)

    def without_fingerprints(self, mine: np.ndarray) -> tuple["Pool", list[str]]:
        """The pool minus every user sharing :data:`SAME_PERSON_MATCHES` of the sorted unique
        fingerprints ``mine`` (kept with the enrolment blocks when the recordings are gone)."""
        same = [len(np.intersect1d(fp, mine, assume_unique=True)) >= SAME_PERSON_MATCHES for fp in self.fingerprints]
        keep = [i for i, s in enumerate(same) if not s]
        return (Pool([self.users[i] for i in keep], [self.runs[i] for i in keep], [self.fingerprints[i] for i in keep]),
                [u for u, s in zip(self.users, same) if s])


def load_pool(path, spec: BlockSpec) -> Pool:
    """The pool, one run of float32 blocks per pool user; refuses a pool cut differently."""
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(POOL_INFO_SUFFIX).read_text())
        with np.load(path) as z:
            blocks, owner, users = z["blocks"], z["owner"], [str(u) for u in z["users"]]
            fp = z["fp"] if "fp" in z.files else np.empty(0, np.uint64)
            fp_owner = z["fp_owner"] if "fp_owner" in z.files else np.empty(0, np.int16)
    except (OSError, ValueError, KeyError) as exc:
        raise PoolError(f"{path}: background pool unreadable ({exc}); rebuild it with "
                        f"'mouseguard train build-artifacts'") from None
    if BlockSpec.from_dict(meta["block_spec"]) != spec:
        raise PoolError(f"{path}: background pool was cut with another block spec than the encoder's; "
                        f"rebuild the artefacts")
    return Pool(users, [blocks[owner == i].astype(np.float32) for i in range(len(users))],
                [fp[fp_owner == i] for i in range(len(users))])
