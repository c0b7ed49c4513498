"""Model directories of the non-CNN families: one ONNX file + manifest, checked for parity.

The manifest has the CNN's keys (``training.export``) with ``family`` and an ``onnx.input``
that names its ``kind`` (``agent.model_inputs.KINDS``) and the extractor's ``params``, so
``mouseguard score``, ``replay`` and the live agent compute exactly the rows the model saw.
"""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import numpy as np

from agent import __version__
from agent.files import atomic_directory
from agent.model_dir import FORMAT, FORMAT_VERSION, MANIFEST, ONNX_FILE, Decision, sha256_file
from training.export import PARITY_TOLERANCE, ExportError


def onnx_scores(onnx_path: Path, input_name: str, output_name: str, rows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (p,) = session.run([output_name], {input_name: np.ascontiguousarray(rows, np.float32)})
    return p.reshape(-1)


def check_parity(onnx_path: Path, input_name: str, output_name: str, rows: np.ndarray, reference,
                 tolerance: float = PARITY_TOLERANCE, what: str = "torch") -> float:
    """Max |reference - onnxruntime| over ``rows``; raises if above ``tolerance``."""
    if len(rows) == 0:
        return 0.0
    diff = float(np.max(np.abs(onnx_scores(onnx_path, input_name, output_name, rows) - reference(rows))))
    if not diff <= tolerance:
        raise ExportError(f"ONNX output differs from {what} by {diff:.2e} (> {tolerance:g}); not exported")
    return diff


def write_model_dir(out_dir, onnx_model: bytes, *, family: str, architecture: str, user: str,
                    input_spec: dict, output_meaning: str, decision: Decision, calibration: dict,
                    metrics: dict, training: dict, parity_rows: np.ndarray, reference,
                    tolerance: float = PARITY_TOLERANCE, reference_name: str = "torch",
                    extra: dict | None = None) -> Path:
    """Write ``out_dir`` atomically; ``input_spec`` holds name, kind, params, shape, features."""
    with atomic_directory(out_dir) as staging:
        onnx_path = staging / ONNX_FILE
        onnx_path.write_bytes(onnx_model)
        onnx_path.chmod(0o600)
        parity = check_parity(onnx_path, input_spec["name"], "p_genuine", parity_rows, reference,
                              tolerance, reference_name)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "user": user,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "family": family,
            "architecture": architecture,
            "onnx": {
                "file": ONNX_FILE,
                "sha256": sha256_file(onnx_path),
                "input": {**input_spec, "dtype": "float32"},
                "output": {"name": "p_genuine", "shape": [None], "dtype": "float32", "meaning": output_meaning},
                "parity_max_abs_diff": parity,
                "parity_reference": reference_name,
            },
            "decision": {"window": decision.window, "threshold": decision.threshold, "calibration": calibration},
            "metrics": metrics,
            "training": {**training, "mouseguard": __version__, "python": platform.python_version()},
            **(extra or {}),
        }
        manifest_path = staging / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        manifest_path.chmod(0o600)
    return Path(out_dir)
