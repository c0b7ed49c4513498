"""The model directory contract: ``model.onnx`` + ``manifest.json``.

The manifest is the single home of every parameter the agent needs to use a model: the block
spec it was trained on, the ONNX input and output, the decision window and threshold with how
they were calibrated, and the SHA-256 of ``model.onnx``. The agent refuses a directory whose
file does not match its hash or whose manifest lacks what it needs; it never falls back to
constants of its own.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from agent.blocks import BlockSpec, BlockSpecError
from agent import __version__
from agent.errors import MouseguardError
from agent.files import atomic_directory

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
FORMAT = "mouseguard-model"
FORMAT_VERSION = 1
OUTPUT_NAME = "p_genuine"
#: Largest |reference - onnxruntime| an exported model may show on its parity rows.
PARITY_TOLERANCE = 1e-5
#: Longest decision window a manifest may ask for; the config bounds its override the same.
#: Calibration picks 3 to 20 blocks (training.user_model.calibrate.WINDOWS); at some 5 s of movement per
#: block, 100 blocks is over eight minutes of an impostor's movement before a first decision. A window
#: longer than that is one no impostor's session fills: a manifest (or config) that never locks.
MAX_WINDOW = 100
#: The bounds of a decision threshold, in the manifest and the config alike. At 0 the rolling mean
#: (of scores in [0, 1]) is never below it, and just above 0 only a model certain of every block
#: locks: a threshold that can never lock in practice. Near 1 the owner is locked out at every
#: window. Calibration keeps its thresholds inside (training.user_model.calibrate).
MIN_THRESHOLD = 0.01
MAX_THRESHOLD = 0.99


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
        if not (isinstance(self.window, int) and 1 <= self.window <= MAX_WINDOW):
            raise ValueError(f"decision window must be an integer from 1 to {MAX_WINDOW}, not {self.window!r}")
        if not MIN_THRESHOLD <= self.threshold <= MAX_THRESHOLD:
            raise ValueError(f"decision threshold must be within [{MIN_THRESHOLD:g}, {MAX_THRESHOLD:g}], "
                             f"not {self.threshold!r}")


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
    except RecursionError:  # json's own limit on nesting
        raise ModelError(f"{path / MANIFEST}: unreadable manifest (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: also ints over 4300 digits
        raise ModelError(f"{path / MANIFEST}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{path / MANIFEST}: not a mouseguard model manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path / MANIFEST}: format version {manifest.get('format_version')!r} is not supported "
            f"(this mouseguard reads version {FORMAT_VERSION}); re-enrol to rebuild the model"
        )
    try:
        onnx = _section(manifest, "onnx")
        expected = _text(onnx, "onnx.sha256")
        onnx_input, onnx_output = _section(onnx, "onnx.input"), _section(onnx, "onnx.output")
        kind = _text(onnx_input, "onnx.input.kind", default="blocks")
        spec = BlockSpec.from_dict(_section(manifest, "block_spec")) if kind == "blocks" else None
        rule = _section(manifest, "decision")
        decision = Decision(_whole(rule, "decision.window", "a whole number of blocks", 1, MAX_WINDOW),
                            _number(rule, "decision.threshold", MIN_THRESHOLD, MAX_THRESHOLD))
        input_name, output_name = _text(onnx_input, "onnx.input.name"), _text(onnx_output, "onnx.output.name")
    except (_BadField, BlockSpecError) as exc:
        raise ModelError(f"{path / MANIFEST}: {exc}") from None
    onnx_path = path / ONNX_FILE
    if not onnx_path.is_file():
        raise ModelError(f"{path}: no {ONNX_FILE}")
    if sha256_file(onnx_path) != expected:
        raise ModelError(f"{onnx_path}: SHA-256 does not match the manifest (file changed or damaged); refusing it")
    return ModelDir(path, manifest, spec, decision, input_name, output_name)


# Typed reads of manifest fields. ``field`` is the dotted name a person finds in the file
# (``decision.window``); its last part is the key in ``section``.


class _BadField(Exception):
    """A missing or wrong field; load_model_dir names the file."""


_MISSING = object()


def _get(section: dict, field: str, expected: str, default=_MISSING):
    key = field.rpartition(".")[2]
    if key in section:
        return section[key]
    if default is _MISSING:
        raise _BadField(f"manifest lacks {field} ({expected})")
    return default


def _check(ok: bool, field: str, expected: str, value) -> None:
    if not ok:
        raise _BadField(f"{field} must be {expected}, not {_show(value)}")


def _section(parent: dict, field: str) -> dict:
    value = _get(parent, field, "an object")
    _check(isinstance(value, dict), field, "an object", value)
    return value


def _text(section: dict, field: str, default=_MISSING) -> str:
    value = _get(section, field, "text", default)
    _check(isinstance(value, str), field, "text", value)
    return value


def _whole(section: dict, field: str, what: str, lo: int, hi: int) -> int:
    """An integer in ``lo..hi``; a JSON ``3.0`` counts as 3 (JSON has one number type)."""
    expected = f"{what} from {lo} to {hi}"
    value = _get(section, field, expected)
    whole = int(value) if isinstance(value, float) and value.is_integer() else value
    _check(isinstance(whole, int) and not isinstance(whole, bool) and lo <= whole <= hi, field, expected, value)
    return whole


def _number(section: dict, field: str, lo: float, hi: float) -> float:
    expected = f"a number from {lo:g} to {hi:g}"
    value = _get(section, field, expected)
    # NaN fails the range check; a bool is an int to Python, but true is no threshold.
    _check(isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi,
           field, expected, value)
    return float(value)


def _show(value) -> str:
    """A JSON value as the manifest spells it, short enough for a one-line message."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ExportError(ModelError):
    """The exported model does not compute what the trained model computes."""


def onnx_scores(onnx_path: Path, input_name: str, rows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (p,) = session.run([OUTPUT_NAME], {input_name: np.ascontiguousarray(rows, np.float32)})
    return p.reshape(-1)


def check_parity(onnx_path: Path, input_name: str, rows: np.ndarray, reference, tolerance: float,
                 what: str) -> float:
    """Max |reference - onnxruntime| over ``rows``; raises if above ``tolerance``."""
    if len(rows) == 0:
        return 0.0
    diff = float(np.max(np.abs(onnx_scores(onnx_path, input_name, rows) - np.asarray(reference(rows)).reshape(-1))))
    if not diff <= tolerance:
        raise ExportError(f"ONNX output differs from {what} by {diff:.2e} (> {tolerance:g}); not exported")
    return diff


def write_model_dir(out_dir, onnx_model: bytes, *, user: str, family: str, architecture: str, input_spec: dict,
                    output: dict, decision: Decision, calibration: dict, metrics: dict, training: dict,
                    parity_rows: np.ndarray, reference, tolerance: float = PARITY_TOLERANCE,
                    reference_name: str = "torch", extra: dict | None = None) -> Path:
    """Write a model directory atomically (an existing one stays until the new one is complete),
    the one writer of what :func:`load_model_dir` reads.

    ``input_spec``: the ONNX input's name and shape (and, for non-block families, its ``kind``,
    extractor ``params`` and ``features``); ``output``: what the score means (``meaning``, and any
    calibration of it); ``extra``: top-level fields of a family (the CNN's ``block_spec``).
    ``reference`` computes the trained model's scores of ``parity_rows``; the ONNX file is
    refused unless onnxruntime reproduces them within ``tolerance``.
    """
    with atomic_directory(out_dir) as staging:
        onnx_path = staging / ONNX_FILE
        onnx_path.write_bytes(onnx_model)
        onnx_path.chmod(0o600)
        parity = check_parity(onnx_path, input_spec["name"], parity_rows, reference, tolerance, reference_name)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "user": user,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "family": family,
            "architecture": architecture,
            **(extra or {}),
            "onnx": {
                "file": ONNX_FILE,
                "sha256": sha256_file(onnx_path),
                "input": {**input_spec, "dtype": "float32"},
                "output": {"name": OUTPUT_NAME, "shape": [None], "dtype": "float32", **output},
                "parity_max_abs_diff": parity,
                "parity_reference": reference_name,
            },
            "decision": {"window": decision.window, "threshold": decision.threshold, "calibration": calibration},
            "metrics": metrics,
            "training": {**training, "mouseguard": __version__, "python": platform.python_version()},
        }
        manifest_path = staging / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        manifest_path.chmod(0o600)
    return Path(out_dir)
