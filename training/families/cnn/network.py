"""The seed network: the two-tower 1D-CNN of Fejér & Antal.

Two convolutional towers look at the block at two time scales (kernels 6 then 3, and 4 then
2; the first convolution of each strides by 2), each reduced by global max pooling to 60
features; the 120 together pass dropout 0.15 and a dense layer of 60 — the *encoder* — and
a head: one logit for authentication (P(genuine) after a sigmoid) or one per user for the
multi-class identification used in pre-training. About 20 k parameters, 0.8 M multiply-adds.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURE = "seed-two-tower-1dcnn"


class Encoder(nn.Module):
    def __init__(self, channels: int = 2, dropout: float = 0.15):
        super().__init__()
        self.tower1 = nn.Sequential(
            nn.Conv1d(channels, 40, kernel_size=6, stride=2), nn.ReLU(),
            nn.Conv1d(40, 60, kernel_size=3), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(),
        )
        self.tower2 = nn.Sequential(
            nn.Conv1d(channels, 40, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv1d(40, 60, kernel_size=2), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(),
        )
        self.dense = nn.Sequential(nn.Dropout(dropout), nn.Linear(120, 60), nn.ReLU())

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        return self.dense(torch.cat((self.tower1(blocks), self.tower2(blocks)), dim=1))


class BlockClassifier(nn.Module):
    """Encoder + head; ``n_outputs=1`` is the binary genuine-vs-impostor model."""

    def __init__(self, channels: int = 2, n_outputs: int = 1, dropout: float = 0.15):
        super().__init__()
        self.encoder = Encoder(channels, dropout)
        self.head = nn.Linear(60, n_outputs)

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(blocks))


class GenuineProbability(nn.Module):
    """What ships in ONNX: blocks ``(n, channels, size)`` -> P(genuine) ``(n,)``.

    ``scale``/``shift`` (Platt scaling fitted on held-out blocks, its shift
    halved: :func:`training.user_model.fit.platt`) map the network's logit so
    that P(genuine) means the same for every user's model: a score of 0.3 from one model and
    from another are then comparable, which a global threshold or a global AUC needs.
    """

    def __init__(self, classifier: BlockClassifier, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.classifier = classifier
        self.scale, self.shift = float(scale), float(shift)

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        logit = self.classifier(blocks)[:, 0]
        if (self.scale, self.shift) != (1.0, 0.0):
            logit = logit * self.scale + self.shift
        return torch.sigmoid(logit)
