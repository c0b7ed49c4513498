"""Export a trained network to a model directory (ONNX + manifest), checked for parity."""

from __future__ import annotations

import datetime
import io
import logging
import json
import platform
import warnings
from pathlib import Path

import numpy as np
import torch

from agent import __version__
from agent.blocks import BlockSpec
from agent.errors import MouseguardError
from agent.files import atomic_directory
from agent.model_dir import FORMAT, FORMAT_VERSION, MANIFEST, ONNX_FILE, Decision, sha256_file
from training.cnn import ARCHITECTURE, GenuineProbability

# The exporter logs every op it cannot register (torchvision's, unused here) at WARNING.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)

INPUT_NAME = "blocks"
OUTPUT_NAME = "p_genuine"
PARITY_TOLERANCE = 1e-5


class ExportError(MouseguardError, RuntimeError):
    """The exported model does not compute what the torch model computes."""


def onnx_bytes(classifier, spec: BlockSpec, score_calibration=(1.0, 0.0)) -> bytes:
    """The network as one self-contained ONNX file (weights inlined, dynamic batch axis)."""
    wrapper = GenuineProbability(classifier, *score_calibration).eval()
    example = torch.zeros(2, spec.channels, spec.size)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        # torch's own exporter trips over its pytree deprecations; nothing for a user to act on
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},), external_data=False, verbose=False,
        )
    buffer = io.BytesIO()
    program.save(buffer, external_data=False)
    return buffer.getvalue()


def check_parity(classifier, onnx_path: Path, blocks: np.ndarray, score_calibration=(1.0, 0.0)) -> float:
    """Max |torch - onnxruntime| on ``blocks``; raises if above PARITY_TOLERANCE."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (p_onnx,) = session.run([OUTPUT_NAME], {INPUT_NAME: blocks.astype(np.float32)})
    with torch.no_grad():
        wrapper = GenuineProbability(classifier, *score_calibration).eval()
        p_torch = wrapper(torch.from_numpy(blocks.astype(np.float32))).numpy()
    diff = float(np.max(np.abs(p_onnx - p_torch))) if len(blocks) else 0.0
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX output differs from torch by {diff:.2e} (> {PARITY_TOLERANCE:g}); not exported")
    return diff


def export_model_dir(classifier, spec: BlockSpec, out_dir, *, user: str, decision: Decision,
                     calibration: dict, metrics: dict, training: dict, parity_blocks: np.ndarray,
                     score_calibration=(1.0, 0.0)) -> Path:
    """Write ``out_dir`` atomically: an existing model stays until the new one is complete."""
    rng = np.random.default_rng(0)
    # Real blocks plus random ones at the data's scale, so parity covers more than one regime.
    scale = float(np.abs(parity_blocks).max()) if len(parity_blocks) else 1.0
    random_blocks = rng.uniform(-scale, scale, (16, spec.channels, spec.size)).astype(np.float32)
    check_blocks = np.concatenate((parity_blocks[:256].astype(np.float32), random_blocks))
    with atomic_directory(out_dir) as staging:
        onnx_path = staging / ONNX_FILE
        onnx_path.write_bytes(onnx_bytes(classifier, spec, score_calibration))
        onnx_path.chmod(0o600)
        parity = check_parity(classifier, onnx_path, check_blocks, score_calibration)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "user": user,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "family": "cnn",
            "architecture": ARCHITECTURE,
            "block_spec": spec.to_dict(),
            "onnx": {
                "file": ONNX_FILE,
                "sha256": sha256_file(onnx_path),
                "input": {"name": INPUT_NAME, "shape": [None, spec.channels, spec.size], "dtype": "float32"},
                "output": {"name": OUTPUT_NAME, "shape": [None], "dtype": "float32",
                           "meaning": "P(genuine) for each block: probability that the enrolled user made it",
                           "score_calibration": {"method": "Platt scaling of the logit on held-out blocks, shift halved",
                                                 "scale": float(score_calibration[0]),
                                                 "shift": float(score_calibration[1])}},
                "parity_max_abs_diff": parity,
            },
            "decision": {"window": decision.window, "threshold": decision.threshold, "calibration": calibration},
            "metrics": metrics,
            "training": {**training, "mouseguard": __version__, "torch": torch.__version__,
                         "python": platform.python_version()},
        }
        manifest_path = staging / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        manifest_path.chmod(0o600)
    return Path(out_dir)
