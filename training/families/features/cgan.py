"""A conditional GAN that synthesises "unknown" users for open-set rejection.

Youssef & Mahdi (2025) train a CGAN on the known users' feature vectors and add its samples
to the classifier's training data as an extra *unknown* class, so that a segment unlike every
known user lands there instead of on the nearest known user. How the unknowns are drawn is
not spelled out; here (as in G-OpenMax, Ge et al. 2017) the generator is conditioned on
*mixtures* of two users' class embeddings, ``α e_i + (1 - α) e_j`` with ``α ~ U(0.2, 0.8)``:
plausible mouse behaviour that belongs to no single known user.

Generator and discriminator are small MLPs; both see the class embedding (a learnt table,
one row per known class) concatenated with their input. Features are the classifier's
preprocessed ones, in [0, 1], hence the generator's sigmoid output.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class CGANConfig:
    noise_dim: int = 16
    embed_dim: int = 16
    hidden: int = 64
    epochs: int = 20
    batch: int = 256
    lr: float = 2e-4
    seed: int = 0


class Generator(nn.Module):
    def __init__(self, n_classes: int, n_features: int, cfg: CGANConfig):
        super().__init__()
        self.embedding = nn.Embedding(n_classes, cfg.embed_dim)
        self.net = nn.Sequential(
            nn.Linear(cfg.noise_dim + cfg.embed_dim, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, cfg.hidden), nn.BatchNorm1d(cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, n_features), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((z, embedding), dim=1))


class Discriminator(nn.Module):
    def __init__(self, n_classes: int, n_features: int, cfg: CGANConfig):
        super().__init__()
        self.embedding = nn.Embedding(n_classes, cfg.embed_dim)
        self.net = nn.Sequential(
            nn.Linear(n_features + cfg.embed_dim, cfg.hidden), nn.LeakyReLU(0.2), nn.Dropout(0.3),
            nn.Linear(cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2), nn.Dropout(0.3),
            nn.Linear(cfg.hidden, 1),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((x, self.embedding(labels)), dim=1))[:, 0]


class UnknownSynthesiser:
    """``fit(features, labels)`` on known classes; ``sample(n)`` draws synthetic unknowns."""

    def __init__(self, cfg: CGANConfig = CGANConfig()):
        self.cfg = cfg

    def fit(self, features: np.ndarray, labels: np.ndarray, log=None) -> "UnknownSynthesiser":
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.n_classes = int(labels.max()) + 1
        x_all = torch.tensor(features, dtype=torch.float32)
        y_all = torch.tensor(labels, dtype=torch.int64)
        self.generator = Generator(self.n_classes, x_all.shape[1], cfg)
        disc = Discriminator(self.n_classes, x_all.shape[1], cfg)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        bce = nn.BCEWithLogitsLoss()
        self.generator.train()
        for epoch in range(cfg.epochs):
            order = torch.from_numpy(rng.permutation(len(x_all)))
            for start in range(0, len(order) - 1, cfg.batch):
                idx = order[start:start + cfg.batch]
                if len(idx) < 2:
                    continue
                real, y = x_all[idx], y_all[idx]
                z = torch.randn(len(idx), cfg.noise_dim)
                fake = self.generator(z, self.generator.embedding(y))
                # discriminator: real with its class vs generated for that class (smoothed 0.9)
                loss_d = bce(disc(real, y), torch.full((len(idx),), 0.9)) + \
                    bce(disc(fake.detach(), y), torch.zeros(len(idx)))
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                loss_g = bce(disc(fake, y), torch.ones(len(idx)))
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
            if log:
                log(f"cgan epoch {epoch + 1}/{cfg.epochs}: D {loss_d.item():.3f} G {loss_g.item():.3f}")
        self.generator.eval()
        return self

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` feature vectors conditioned on mixtures of two known classes."""
        g = torch.Generator().manual_seed(seed)
        i = torch.randint(0, self.n_classes, (n,), generator=g)
        j = (i + torch.randint(1, max(self.n_classes, 2), (n,), generator=g)) % self.n_classes
        alpha = 0.2 + 0.6 * torch.rand(n, 1, generator=g)
        with torch.no_grad():
            table = self.generator.embedding.weight
            embedding = alpha * table[i] + (1 - alpha) * table[j]
            z = torch.randn(n, self.cfg.noise_dim, generator=g)
            return self.generator(z, embedding).numpy()
