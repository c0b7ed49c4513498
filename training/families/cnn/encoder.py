"""The pre-trained encoder: the CNN trained as an identifier of many users, saved and loaded.

Per-user fits in the ``transfer1``/``transfer2`` modes start from its weights; it carries the
block spec it was trained with to every model fitted from it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from agent.blocks import BlockSpec
from agent.files import atomic_directory, atomic_open, atomic_write_text
from training.errors import FitError
from training.families.cnn.network import ARCHITECTURE, BlockClassifier, Encoder
from training.families.cnn.train import FitConfig, train_classifier
from training.families.torch_setup import prepare_torch

ENCODER_WEIGHTS = "encoder.pt"
ENCODER_INFO = "encoder.json"


def pretrain(blocks_by_user: dict[str, np.ndarray], spec: BlockSpec, cfg: FitConfig, log=None):
    """Train the network as a multi-class identifier of ``blocks_by_user``'s users."""
    users = sorted(u for u, b in blocks_by_user.items() if len(b))
    if len(users) < 2:
        raise FitError("pre-training needs blocks of at least two users (is the block size longer "
                       "than their sessions?)")
    blocks = np.concatenate([blocks_by_user[u] for u in users])
    labels = np.concatenate([np.full(len(blocks_by_user[u]), i) for i, u in enumerate(users)])
    prepare_torch(cfg.seed)
    model = BlockClassifier(spec.channels, n_outputs=len(users))
    return train_classifier(model, blocks, labels, dataclasses.replace(cfg, batch=cfg.pretrain_batch), log=log), users


def save_encoder(model: BlockClassifier, spec: BlockSpec, out_dir, info: dict) -> Path:
    """Write the encoder's weights and what they were trained on, atomically."""
    with atomic_directory(out_dir, marker=ENCODER_INFO) as staging:
        with atomic_open(staging / ENCODER_WEIGHTS) as f:  # private, as every file mouseguard writes
            torch.save(model.encoder.state_dict(), f)
        meta = {"architecture": ARCHITECTURE, "block_spec": spec.to_dict(), **info}
        atomic_write_text(staging / ENCODER_INFO, json.dumps(meta, indent=2) + "\n")
    return Path(out_dir)


def load_encoder(encoder_dir) -> tuple[dict, BlockSpec, dict]:
    encoder_dir = Path(encoder_dir)
    try:
        info = json.loads((encoder_dir / ENCODER_INFO).read_text())
        state = torch.load(encoder_dir / ENCODER_WEIGHTS, weights_only=True)
    except FileNotFoundError as exc:
        raise FitError(f"{encoder_dir}: not a pre-trained encoder ({Path(exc.filename).name} missing)") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise FitError(f"{encoder_dir}: unreadable encoder ({exc})") from None
    if not isinstance(info, dict) or info.get("architecture") != ARCHITECTURE:
        found = info.get("architecture") if isinstance(info, dict) else None
        raise FitError(f"{encoder_dir}: encoder architecture {found!r} is not {ARCHITECTURE!r}")
    if not isinstance(info.get("block_spec"), dict):
        raise FitError(f"{encoder_dir}/{ENCODER_INFO}: no block_spec (the spec the encoder was trained with)")
    spec = BlockSpec.from_dict(info["block_spec"])
    expected = {k: tuple(v.shape) for k, v in Encoder(spec.channels).state_dict().items()}
    if not isinstance(state, dict) or {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} != expected:
        raise FitError(f"{encoder_dir}/{ENCODER_WEIGHTS}: weights do not fit the encoder of {ARCHITECTURE} "
                       f"with {spec.channels} input channels")
    return state, spec, info
