"""The CNN family behind the common model-family interface (:mod:`training.families`)."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch
from scipy.special import expit  # the logistic function, without overflow warnings for large logits

from agent.blocks import BlockSpec
from training.families.cnn.network import ARCHITECTURE, GenuineProbability
from training.families.cnn.train import FitConfig, fit_user, predict_logits

# The exporter logs every op it cannot register (torchvision's, unused here) at WARNING.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)

INPUT_NAME = "blocks"


def onnx_bytes(classifier, spec: BlockSpec, score_calibration=(1.0, 0.0)) -> bytes:
    """The network as one self-contained ONNX file (weights inlined, dynamic batch axis)."""
    wrapper = GenuineProbability(classifier, *score_calibration).eval()
    example = torch.zeros(2, spec.channels, spec.size)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        # torch's own exporter trips over its pytree deprecations; nothing for a user to act on
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=["p_genuine"],
            dynamic_shapes=({0: batch},), external_data=False, verbose=False,
        )
    buffer = io.BytesIO()
    program.save(buffer, external_data=False)
    return buffer.getvalue()


class CNNModel:
    """One user's two-tower CNN: blocks in, calibrated P(genuine) out.

    ``score_calibration`` (scale, shift) maps the logit before the sigmoid; the user-model path
    sets it from held-out blocks (Platt scaling, :func:`training.user_model.calibrate.platt`).
    """

    name = "cnn"
    input_kind = "blocks"  # agent.model_inputs.KINDS
    row = "block"

    def __init__(self, spec: BlockSpec, mode: str = "transfer2", encoder_state=None, cfg: FitConfig = FitConfig()):
        self.spec, self.mode, self.encoder_state, self.cfg = spec, mode, encoder_state, cfg
        self.score_calibration = (1.0, 0.0)

    def fit(self, genuine: np.ndarray, impostors: np.ndarray, log=None) -> "CNNModel":
        self.network = fit_user(genuine, impostors, self.spec, self.mode, self.encoder_state, self.cfg, log=log)
        return self

    def logits(self, blocks: np.ndarray) -> np.ndarray:
        return predict_logits(self.network, blocks)

    def score(self, blocks: np.ndarray) -> np.ndarray:
        """Calibrated P(genuine), as the exported ONNX model computes it."""
        a, b = self.score_calibration
        return expit(a * self.logits(blocks) + b)

    def to_onnx(self) -> bytes:
        return onnx_bytes(self.network, self.spec, self.score_calibration)

    def export_fields(self, parity_blocks: np.ndarray) -> dict:
        """What :func:`agent.model_dir.write_model_dir` needs beyond the user-model path's fields.

        Parity is checked on real blocks plus random ones at the data's scale, so it covers more
        than one regime, against the torch module that was exported (float32).
        """
        rng = np.random.default_rng(0)
        scale = float(np.abs(parity_blocks).max()) if len(parity_blocks) else 1.0
        random_blocks = rng.uniform(-scale, scale, (16, self.spec.channels, self.spec.size)).astype(np.float32)
        wrapper = GenuineProbability(self.network, *self.score_calibration).eval()

        def reference(blocks):
            with torch.no_grad():
                return wrapper(torch.from_numpy(blocks.astype(np.float32))).numpy()

        a, b = self.score_calibration
        return {
            "family": self.name, "architecture": ARCHITECTURE, "extra": {"block_spec": self.spec.to_dict()},
            "input_spec": {"name": INPUT_NAME, "shape": [None, self.spec.channels, self.spec.size]},
            "output": {"meaning": "P(genuine) for each block: probability that the enrolled user made it",
                       "score_calibration": {"method": "Platt scaling of the logit on held-out blocks, shift halved",
                                             "scale": float(a), "shift": float(b)}},
            "parity_rows": np.concatenate((parity_blocks[:256].astype(np.float32), random_blocks)),
            "reference": reference, "reference_name": "torch",
            "training": {"mode": self.mode, "torch": torch.__version__},
        }
