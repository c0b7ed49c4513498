"""Process-wide torch settings shared by every family that trains a network (CNN, MLP, CGAN)."""

from __future__ import annotations

import os

import torch


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
