"""Self-contrast negatives: the owner's blocks changed as another hand would move them."""

import numpy as np
import pytest

from agent.blocks import DEFAULT_SPEC, SEED_SPEC, cut_blocks
from tests.synth import synth_events
from training.data.self_contrast import mirrored, reversed_in_time, scaled, self_contrast_blocks


@pytest.fixture(scope="module")
def blocks():
    return cut_blocks(synth_events("alice", 120, seed=5), DEFAULT_SPEC)[0]


def test_mirror_and_reverse_change_only_what_they_should(blocks):
    f = list(DEFAULT_SPEC.features)
    x, y, dt, held = (f.index(c) for c in ("lvx", "lvy", "logdt", "held"))
    m = mirrored(blocks, DEFAULT_SPEC)
    assert np.array_equal(m[:, x], -blocks[:, x]) and np.array_equal(m[:, [y, dt, held]], blocks[:, [y, dt, held]])
    r = reversed_in_time(blocks, DEFAULT_SPEC)
    assert np.array_equal(r[:, [x, y]], -blocks[:, [x, y], ::-1])
    assert np.array_equal(r[:, [dt, held]], blocks[:, [dt, held], ::-1])


@pytest.mark.parametrize("spec", [DEFAULT_SPEC, SEED_SPEC])
def test_scaling_is_a_faster_hand_in_both_velocity_encodings(spec):
    b = cut_blocks(synth_events("bob", 60, seed=6), spec)[0]
    fast = scaled(b, spec, 1.4)
    moving = np.abs(b[:, :2]) > 1e-3
    assert np.array_equal(np.sign(fast[:, :2]), np.sign(b[:, :2]))
    assert (np.abs(fast[:, :2])[moving] > np.abs(b[:, :2])[moving]).all()
    if "vx" in spec.features:  # linear velocities scale exactly
        np.testing.assert_allclose(fast[:, 0], b[:, 0] * 1.4, rtol=1e-6)
    np.testing.assert_allclose(scaled(fast, spec, 1 / 1.4), b, atol=1e-5)


def test_self_contrast_blocks_are_seeded_and_sized(blocks):
    a = self_contrast_blocks(blocks, 40, DEFAULT_SPEC, seed=0)
    assert a.shape == (40, *blocks.shape[1:]) and a.dtype == np.float32
    assert np.array_equal(a, self_contrast_blocks(blocks, 40, DEFAULT_SPEC, seed=0))
    assert not np.array_equal(a, self_contrast_blocks(blocks, 40, DEFAULT_SPEC, seed=1))
    assert len(self_contrast_blocks(blocks, 0, DEFAULT_SPEC, seed=0)) == 0


def test_train_fit_takes_self_contrast_and_records_it(synth_dataset, tmp_path, capsys):
    import json

    from agent.cli import main

    out = tmp_path / "alice"
    assert main(["train", "fit", "--dataset", "recording", "--data", str(synth_dataset), "--user", "alice",
                 "--out", str(out), "--epochs", "1", "--mode", "plain", "--self-contrast", "0.4"]) == 0
    assert json.loads((out / "manifest.json").read_text())["training"]["self_contrast"] == 0.4
    with pytest.raises(SystemExit) as exc:
        main(["train", "fit", "--dataset", "recording", "--data", str(synth_dataset), "--user", "alice",
              "--out", str(tmp_path / "x"), "--self-contrast", "1.5"])
    assert exc.value.code == 2 and "expected a number from 0 to 1" in capsys.readouterr().err
