"""The model directory contract: ``model.onnx`` + ``manifest.json``.

The manifest is the single home of every parameter the agent needs to use a model: the block
spec it was trained on, the ONNX input and output, the decision window and threshold with how
they were calibrated, and the SHA-256 of ``model.onnx``. The agent refuses a directory whose
file does not match its hash or whose manifest lacks what it needs; it never falls back to
constants of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from agent.blocks import BlockSpec, BlockSpecError
from agent.errors import MouseguardError

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
FORMAT = "mouseguard-model"
FORMAT_VERSION = 1


class ModelError(MouseguardError, ValueError):
    """A model directory the agent must not use; the message says why in one line."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Decision:
    """Rolling mean of the last ``window`` block scores against ``threshold``."""

    window: int
    threshold: float

    def __post_init__(self):
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"decision window must be an integer >= 1, not {self.window!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"decision threshold must be within [0, 1], not {self.threshold!r}")


@dataclasses.dataclass(frozen=True)
class ModelDir:
    path: Path
    manifest: dict
    #: The block spec of a block-input model (the 1D-CNN); None for other input kinds.
    spec: BlockSpec | None
    decision: Decision
    input_name: str
    output_name: str

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def input_kind(self) -> str:
        """What the ONNX input holds: ``blocks`` (1D-CNN) or another registered kind."""
        return self.manifest["onnx"]["input"].get("kind", "blocks")

    @property
    def user(self) -> str:
        return self.manifest.get("user", "?")


def load_model_dir(path: str | os.PathLike) -> ModelDir:
    """Read and verify a model directory; raise :class:`ModelError` with a one-line reason."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: no model directory there")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no {MANIFEST} (not a mouseguard model directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path / MANIFEST}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{path / MANIFEST}: not a mouseguard model manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path / MANIFEST}: format version {manifest.get('format_version')!r} is not supported "
            f"(this mouseguard reads version {FORMAT_VERSION}); re-enrol to rebuild the model"
        )
    try:
        onnx = manifest["onnx"]
        expected = onnx["sha256"]
        kind = onnx["input"].get("kind", "blocks")
        spec = BlockSpec.from_dict(manifest["block_spec"]) if kind == "blocks" else None
        decision = Decision(int(manifest["decision"]["window"]), float(manifest["decision"]["threshold"]))
        input_name, output_name = onnx["input"]["name"], onnx["output"]["name"]
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{path / MANIFEST}: manifest lacks {exc}") from None
    except (BlockSpecError, ValueError) as exc:
        raise ModelError(f"{path / MANIFEST}: {exc}") from None
    onnx_path = path / ONNX_FILE
    if not onnx_path.is_file():
        raise ModelError(f"{path}: no {ONNX_FILE}")
    if sha256_file(onnx_path) != expected:
        raise ModelError(f"{onnx_path}: SHA-256 does not match the manifest (file changed or damaged); refusing it")
    return ModelDir(path, manifest, spec, decision, input_name, output_name)
