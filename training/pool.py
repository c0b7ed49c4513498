"""The background pool: impostor blocks from many users, shipped for enrolment.

A person enrolling on their own workstation has no other users' mouse data, yet the network
needs negatives. The pool holds blocks of many public-data users (float16, compressed),
with the user each block came from, so the enrolment can hold out whole pool users to
measure how fast an unseen person would be locked out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agent.blocks import BlockSpec
from agent.errors import MouseguardError
from agent.files import atomic_open, atomic_write_text

POOL_INFO_SUFFIX = ".json"


class PoolError(MouseguardError, ValueError):
    pass


def save_pool(path, blocks_by_user: dict[str, np.ndarray], spec: BlockSpec, info: dict) -> None:
    path = Path(path)
    users = sorted(blocks_by_user)
    blocks = np.concatenate([blocks_by_user[u] for u in users]).astype(np.float16)
    owner = np.concatenate([np.full(len(blocks_by_user[u]), i, dtype=np.int16) for i, u in enumerate(users)])
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, blocks=blocks, owner=owner, users=np.array(users))
    meta = {"block_spec": spec.to_dict(), "users": len(users), "blocks": int(len(blocks)), **info}
    atomic_write_text(path.with_suffix(POOL_INFO_SUFFIX), json.dumps(meta, indent=2) + "\n")


def load_pool(path, spec: BlockSpec) -> list[np.ndarray]:
    """The pool as one run of float32 blocks per pool user; refuses a pool cut differently."""
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(POOL_INFO_SUFFIX).read_text())
        with np.load(path) as z:
            blocks, owner = z["blocks"], z["owner"]
    except (OSError, ValueError, KeyError) as exc:
        raise PoolError(f"{path}: background pool unreadable ({exc}); rebuild it with "
                        f"'mouseguard train build-artifacts'") from None
    if BlockSpec.from_dict(meta["block_spec"]) != spec:
        raise PoolError(f"{path}: background pool was cut with another block spec than the encoder's; "
                        f"rebuild the artefacts")
    return [blocks[owner == i].astype(np.float32) for i in range(int(owner.max()) + 1)]
