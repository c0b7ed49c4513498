"""Training the 1D-CNN: the per-user genuine-vs-impostor fit (pre-training: :mod:`.encoder`).

Modes of the seed paper for the per-user model:

* ``plain``: a fresh network trained on the user's blocks (positives) against other users'
  blocks (negatives);
* ``transfer1``: the pre-trained encoder frozen, only a new head trained;
* ``transfer2``: the pre-trained encoder as the starting point, everything fine-tuned.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from agent.blocks import BlockSpec
from training.errors import FitError
from training.families.cnn.network import BlockClassifier
from training.families.torch_setup import prepare_torch

MODES = ("plain", "transfer1", "transfer2")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    epochs: int = 16
    lr: float = 0.002
    #: Mini-batch of the per-user fit (:func:`fit_user`): 64 rather than the seed paper's 32, the same AUCs
    #: in less fit time (README, Accuracy, has the figures).
    batch: int = 64
    #: Mini-batch of pre-training (:func:`pretrain`): the shipped encoder was trained with it.
    pretrain_batch: int = 32
    seed: int = 0
    #: Uniform noise of ±``noise`` added to every training block (0 = off; the paper: 0.2).
    noise: float = 0.0
    #: Generated scripted input (jumps, sweeps, jigglers; :mod:`training.data.scripted`) added to a
    #: per-user fit's negatives, as a share of them (0 = off, the seed paper's setting).
    scripted: float = 0.2
    #: The share of a per-user fit's negatives made from the owner's own blocks, as another hand
    #: would move them at the owner's desk (:mod:`training.data.self_contrast`). Off: at the desk
    #: it doubles the impostor minutes locked, but it costs Balabit's enrolment and false locks
    #: (README, Accuracy, "Someone at your desk"); ``--self-contrast`` turns it on.
    self_contrast: float = 0.0
    #: Enrolment also trains against the background pool re-cast to the owner's event rate
    #: (:mod:`training.data.recast`), so that the hand, not the machine, tells them apart.
    recast_pool: bool = True
    #: Each genuine training recording is cut this many ways, from starts spread over one block
    #: (:func:`training.user_model.fit.extra_tilings`); 1 = once, as the seed paper does.
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
        ``--tilings``, ``--self-contrast``, ``--no-pool-recast`` where it has them; their ranges are checked
        as the command line is parsed,
        :mod:`agent.cli`), with ``overrides`` on top."""
        given = {k: getattr(args, k) for k in ("epochs", "seed", "noise", "tilings", "self_contrast", "recast_pool")
                 if getattr(args, k, None) is not None}
        return cls(**{**given, **overrides})


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
    own = int(round(cfg.self_contrast * len(positives)))
    negatives = balanced_negatives(negatives, len(positives) - own, cfg.seed)
    if own:
        from training.data.self_contrast import self_contrast_blocks

        negatives = np.concatenate((negatives, self_contrast_blocks(positives, own, spec, cfg.seed)))
    if cfg.scripted > 0:
        from training.data.scripted import scripted_blocks

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
