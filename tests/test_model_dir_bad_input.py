"""A damaged manifest.json is refused in one line that names the field, never with a traceback.

Each case edits a real copy of the shipped demo model: the manifest's SHA-256 covers
model.onnx only, so only the field under test is wrong.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

import models
from agent.model_dir import ModelError, load_model_dir

#: Words of Python's own errors: a message holding one of them was not written for a person.
PYTHON_ERROR_WORDS = ("NoneType", "int()", "float()", "indices", "invalid literal", "object is not",
                      "could not convert", "unhashable")


@pytest.fixture
def model(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(models.DEMO_MODEL, target)
    return target


def edit(model_dir, field, value):
    """Set the dotted ``field`` of the manifest to ``value`` (JSON-encoded as Python would)."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    *parents, key = field.split(".")
    section = manifest
    for name in parents:
        section = section[name]
    section[key] = value
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


def refusal(model_dir) -> str:
    with pytest.raises(ModelError) as caught:
        load_model_dir(model_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(model_dir / "manifest.json") + ": ")
    assert not any(word in message for word in PYTHON_ERROR_WORDS), message
    return message


@pytest.mark.parametrize("field, value", [
    ("onnx", None),
    ("onnx", "model.onnx"),
    ("onnx.input", "x"),
    ("onnx.input", None),
    ("onnx.output", ["p"]),
    ("decision", [1, 2]),
    ("decision", None),
    ("block_spec", None),
    ("block_spec", "default"),
])
def test_section_of_the_wrong_kind(model, field, value):
    edit(model, field, value)
    assert f"{field} must be an object" in refusal(model)


@pytest.mark.parametrize("value, shown", [
    (None, "null"),
    ("abc", "'abc'"),
    ("3", "'3'"),
    (2.7, "2.7"),
    (True, "true"),
    (0, "0"),
    (-3, "-3"),
    (101, "101"),  # over eight minutes of an impostor's movement before a first decision
    (1000, "1000"),
    (10**30, str(10**30)),
    (float("inf"), "inf"),
    ([3], "a list"),
])
def test_window_must_be_a_whole_number_of_blocks(model, value, shown):
    edit(model, "decision.window", value)
    assert refusal(model).endswith(f"decision.window must be a whole number of blocks from 1 to 100, not {shown}")


# 0.0 and 1e-9 never lock (a rolling mean of P(genuine) is never below them); 1.0 always does
@pytest.mark.parametrize("value", [None, "abc", "0.5", True, 1.5, -0.1, float("nan"), {"p": 0.5}, 0.0, 1e-9,
                                   0.005, 1.0, 0.995])
def test_threshold_must_be_a_probability_that_can_lock(model, value):
    edit(model, "decision.threshold", value)
    assert "decision.threshold must be a number from 0.01 to 0.99, not " in refusal(model)


@pytest.mark.parametrize("field, value, expected", [
    ("onnx.sha256", 12, "onnx.sha256 must be"),
    ("onnx.sha256", None, "onnx.sha256 must be"),
    ("onnx.input.kind", ["blocks"], "onnx.input.kind must be"),
    ("onnx.input.name", 5, "onnx.input.name must be"),
    ("onnx.output.name", None, "onnx.output.name must be"),
])
def test_text_fields(model, field, value, expected):
    edit(model, field, value)
    assert expected in refusal(model)


@pytest.mark.parametrize("field", ["onnx", "onnx.sha256", "onnx.output", "decision", "decision.window",
                                   "decision.threshold", "block_spec"])
def test_missing_field_is_named(model, field):
    manifest = json.loads((model / "manifest.json").read_text())
    *parents, key = field.split(".")
    section = manifest
    for name in parents:
        section = section[name]
    del section[key]
    (model / "manifest.json").write_text(json.dumps(manifest))
    assert f"lacks {field}" in refusal(model)


@pytest.mark.parametrize("text", [
    '{"format": "mouseguard-model", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",  # RecursionError in json
    '{"format": "mouseguard-model", "x": ' + "1" * 5000 + "}",  # beyond Python's int-from-text limit
])
def test_unparseable_manifest(model, text):
    (model / "manifest.json").write_text(text)
    assert "unreadable manifest" in refusal(model)


def test_whole_numbers_still_accepted(model):
    # Passes before the fix too: it guards against refusing good manifests. A JSON 3.0 is
    # accepted as 3 blocks (JSON has one number type; some writers put .0 on whole numbers).
    assert load_model_dir(model).decision.window == 3
    edit(model, "decision.window", 20.0)
    loaded = load_model_dir(model)
    assert loaded.decision.window == 20 and type(loaded.decision.window) is int


def mg(*args):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)


@pytest.mark.parametrize("command, field, value", [
    ("score", "onnx.input", "x"),
    ("replay", "decision.window", 10**30),
    ("score", "decision.window", 10**30),
    ("replay", "decision.window", 2.7),
])
def test_commands_refuse_in_one_line(model, command, field, value):
    edit(model, field, value)
    out = mg(command, "--model", str(model), str(models.DEMO_GENUINE))
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("mouseguard: error: ")
    assert field in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_command_refuses_deep_manifest(model):
    (model / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    out = mg("score", "--model", str(model), str(models.DEMO_GENUINE))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unreadable manifest" in out.stderr
