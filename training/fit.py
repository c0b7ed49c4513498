"""Fitting the 1D-CNN: pre-training as a user identifier, then per-user authentication.

Modes of the seed paper for the per-user model:

* ``plain``: a fresh network trained on the user's blocks (positives) against other users'
  blocks (negatives);
* ``transfer1``: the pre-trained encoder frozen, only a new head trained;
* ``transfer2``: the pre-trained encoder as the starting point, everything fine-tuned.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agent.blocks import BlockSpec
from agent.errors import MouseguardError
from agent.files import atomic_directory, atomic_open, atomic_write_text
from training.cnn import ARCHITECTURE, BlockClassifier, Encoder

MODES = ("plain", "transfer1", "transfer2")
ENCODER_WEIGHTS = "encoder.pt"
ENCODER_INFO = "encoder.json"


class FitError(MouseguardError, ValueError):
    """Fitting cannot go ahead (no data, wrong encoder); the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class FitConfig:
    epochs: int = 16
    lr: float = 0.002
    #: Mini-batch of the per-user fit (:func:`fit_user`). 64 rather than the seed paper's 32:
    #: the same AUCs within noise (sessions protocol, Balabit, TRANSFER2, block / 5-block /
    #: session: 0.883 / 0.901 / 0.920 at 32, 0.881 / 0.900 / 0.917 at 64) for 12 % less fit
    #: time on one core; with ``max_genuine_blocks`` it keeps enrolment
    #: with four tilings under 30 s.
    batch: int = 64
    #: Mini-batch of pre-training (:func:`pretrain`): the shipped encoder was trained with it.
    pretrain_batch: int = 32
    seed: int = 0
    #: Uniform noise of ±``noise`` added to every training block (0 = off; the paper: 0.2).
    noise: float = 0.0
    #: Generated scripted input (jumps, sweeps, jigglers; :mod:`training.scripted`) added to a
    #: per-user fit's negatives, as a share of them (0 = off, the seed paper's setting).
    scripted: float = 0.2
    #: Each genuine training recording is cut this many ways, from starts spread over one block
    #: (:func:`training.personal.extra_tilings`); 1 = once, as the seed paper does.
    tilings: int = 4
    #: The most genuine blocks a per-user fit trains on: the extra tilings fill up to this (a
    #: random sample of them when there are more); the blocks cut as the agent cuts are all
    #: kept. It bounds an enrolment's time, which grows with the training set (fit 30 s for
    #: 2,300 blocks and four tilings without it, 23 s with it); the sessions protocol's folds
    #: stay under it but for three (user7, user9), and a person who recorded that much gains
    #: least from more views of it.
    max_genuine_blocks: int = 4000

    @classmethod
    def from_args(cls, args, **overrides) -> "FitConfig":
        """The settings of a ``train`` command line (``--epochs``, ``--seed``, ``--noise``,
        ``--tilings`` where it has them; their ranges are checked as the command line is parsed,
        :mod:`agent.cli`), with ``overrides`` on top."""
        given = {k: getattr(args, k) for k in ("epochs", "seed", "noise", "tilings") if getattr(args, k, None) is not None}
        return cls(**{**given, **overrides})


def prepare_torch(seed: int, threads: int | None = None) -> None:
    """Process-wide torch settings for every fit in this package (CNN, MLP, CGAN)."""
    # Without flushing denormals the seed CNN trains ~60x slower on this class of CPU.
    torch.set_flush_denormal(True)
    # One thread by default: batches of small blocks give intra-op threads nothing to share,
    # and on a busy 2-core machine their spin-waiting made a fit 5x slower (3.4 s vs 17.4 s
    # measured; the segment MLP: 0.4 s vs 5.5 s per epoch).
    torch.set_num_threads(threads or int(os.environ.get("MOUSEGUARD_TORCH_THREADS", "1")))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train_classifier(model: nn.Module, blocks: np.ndarray, labels: np.ndarray, cfg: FitConfig,
                     params=None, log=None) -> nn.Module:
    """Mini-batch Adam on cross-entropy (one logit: binary; several: multi-class)."""
    prepare_torch(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x_all = torch.tensor(blocks, dtype=torch.float32)
    multiclass = model.head.out_features > 1
    y_all = torch.from_numpy(labels.astype(np.int64 if multiclass else np.float32))
    loss_fn = nn.CrossEntropyLoss() if multiclass else nn.BCEWithLogitsLoss()
    optimiser = torch.optim.Adam(params if params is not None else model.parameters(), lr=cfg.lr)
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(x_all)))
        total = 0.0
        for start in range(0, len(order), cfg.batch):
            idx = order[start:start + cfg.batch]
            x = x_all[idx]
            if cfg.noise:
                x = x + (torch.rand(x.shape) * 2 - 1) * cfg.noise
            logits = model(x)
            loss = loss_fn(logits if multiclass else logits[:, 0], y_all[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {total / len(order):.4f}")
    model.eval()
    return model


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


def balanced_negatives(negatives: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` negatives drawn without replacement (all of them when there are fewer)."""
    if len(negatives) <= n:
        return negatives
    rng = np.random.default_rng(seed + 1)
    return negatives[np.sort(rng.choice(len(negatives), n, replace=False))]


def fit_user(positives: np.ndarray, negatives: np.ndarray, spec: BlockSpec, mode: str = "plain",
             encoder_state: dict | None = None, cfg: FitConfig = FitConfig(), log=None) -> BlockClassifier:
    """The per-user genuine-vs-impostor network, trained on balanced classes."""
    if mode not in MODES:
        raise FitError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    if len(positives) == 0:
        raise FitError("no blocks of the user to learn from")
    if len(negatives) == 0:
        raise FitError("no impostor blocks to learn against")
    if mode != "plain" and encoder_state is None:
        raise FitError(f"mode {mode} needs a pre-trained encoder (--encoder DIR)")
    negatives = balanced_negatives(negatives, len(positives), cfg.seed)
    if cfg.scripted > 0:
        from training.scripted import scripted_blocks

        negatives = np.concatenate((negatives, scripted_blocks(int(np.ceil(cfg.scripted * len(negatives))),
                                                               spec, cfg.seed)))
    blocks = np.concatenate((positives, negatives))
    labels = np.concatenate((np.ones(len(positives)), np.zeros(len(negatives))))
    prepare_torch(cfg.seed)
    model = BlockClassifier(spec.channels, n_outputs=1)
    params = None
    if mode != "plain":
        model.encoder.load_state_dict(encoder_state)
        if mode == "transfer1":
            for p in model.encoder.parameters():
                p.requires_grad_(False)
            params = list(model.head.parameters())
    model = train_classifier(model, blocks, labels, cfg, params=params, log=log)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def predict_logits(model: nn.Module, blocks: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The binary network's raw logit per block (before any sigmoid or calibration)."""
    model.eval()
    outs = [np.empty(0, np.float32)]
    with torch.no_grad():
        for start in range(0, len(blocks), batch):
            outs.append(model(torch.tensor(blocks[start:start + batch], dtype=torch.float32))[:, 0].numpy())
    return np.concatenate(outs)


def predict(model: nn.Module, blocks: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Torch-side P(genuine) (binary) or class probabilities (multi-class), for evaluation."""
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(blocks), batch):
            logits = model(torch.tensor(blocks[start:start + batch], dtype=torch.float32))
            outs.append(torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, 1))
    if not outs:
        return np.empty(0)
    return torch.cat(outs).numpy()
