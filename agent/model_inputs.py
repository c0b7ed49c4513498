"""From events to model input, for every kind of model input.

The 1D-CNN reads blocks (``agent.blocks``); the other model families read vectors computed
from events by their own extractors. Each kind names a streaming extractor with the block
cutter's contract: ``push(events) -> (inputs, end_times)`` and ``flush()``, built from the
model directory. The live pipeline, ``replay`` and ``score`` go through here, so a model
directory of any family works everywhere the agent scores.
"""

from __future__ import annotations

import importlib

import numpy as np

from agent.blocks import BlockCutter, FileCutter, feed_all
from agent.model_dir import ModelDir, ModelError

#: kind -> "module:factory"; a factory takes (model, short_files) and returns an extractor.
KINDS = {
    "blocks": "agent.model_inputs:block_extractor",
    "segment-features": "agent.segment_features:extractor_for_model",
    "action-patterns": "agent.pattern_features:extractor_for_model",
}


def block_extractor(model: ModelDir, short_files: bool = False) -> BlockCutter:
    # Scoring a finished file: even one shorter than a block yields a block to score.
    return FileCutter(model.spec) if short_files else BlockCutter(model.spec)


def make_extractor(model: ModelDir, short_files: bool = False):
    target = KINDS.get(model.input_kind)
    if target is None:
        raise ModelError(f"{model.path}: input kind {model.input_kind!r} is not known to this mouseguard "
                         f"(known: {', '.join(KINDS)})")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(model, short_files)


def extract_all(model: ModelDir, events: np.ndarray, short_files: bool = False):
    """All inputs of one recording: the streaming extractor fed everything, then flushed."""
    return feed_all(make_extractor(model, short_files), events)
