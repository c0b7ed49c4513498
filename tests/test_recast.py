"""The background pool re-cast to the owner's event rate (training.data.recast), on generated
users: alice's mouse reports every 16 ms, bob's every 8 ms (tests/synth.py)."""

import numpy as np
import pytest

from agent.blocks import DEFAULT_SPEC, SEED_SPEC, cut_blocks
from tests.synth import synth_events
from training.data.recast import block_steps, invertible, owner_set_up, recast_blocks, recast_runs


@pytest.fixture(scope="module")
def alice():
    return cut_blocks(synth_events("alice", 240, seed=1), DEFAULT_SPEC)[0]


@pytest.fixture(scope="module")
def bob_events():
    return synth_events("bob", 240, seed=2)


def _floor_share(blocks):
    """What an event rate leaves in blocks: the share of steps at the cutter's floor."""
    return float(np.mean(blocks[:, DEFAULT_SPEC.features.index("logdt")] == 0))


def test_the_owner_set_up_is_read_from_raw_events(bob_events):
    s = owner_set_up([bob_events])
    assert s.step == pytest.approx(0.008, rel=0.15)
    assert s.describe() == f"{1 / s.step:.0f} Hz" and len(s.steps) > 1000
    assert owner_set_up([bob_events[:20]]) is None  # too little movement to say


def test_blocks_turn_back_into_the_steps_they_were_cut_from():
    events = synth_events("alice", 60, seed=3)
    blocks, _ = cut_blocks(events, DEFAULT_SPEC)
    dx, dy, dt, _ = block_steps(blocks, DEFAULT_SPEC)
    # The first block is the recording's first 128 steps (no pause long enough to split before).
    e = events[:129]
    want = np.diff(e["t"])
    moving = want > DEFAULT_SPEC.dt_min
    np.testing.assert_allclose(dt[0][moving], want[moving], rtol=1e-5)
    np.testing.assert_allclose(dx[0], np.diff(e["x"].astype(float)), atol=0.05)
    np.testing.assert_allclose(dy[0], np.diff(e["y"].astype(float)), atol=0.05)


def test_a_pool_person_recast_to_the_owner_s_event_rate(alice, bob_events):
    bob = cut_blocks(bob_events, DEFAULT_SPEC)[0]
    recast = recast_blocks(alice, DEFAULT_SPEC, owner_set_up([bob_events]), seed=0)
    floor_a, floor_b, floor_r = map(_floor_share, (alice, bob, recast))
    # most of bob's 4-12 ms steps sit at the floor (10 ms), few of alice's 8-24 ms ones
    assert floor_b > 0.6 and floor_a < 0.3
    assert abs(floor_r - floor_b) < abs(floor_a - floor_b) / 3
    # the same movement: its path length (in pixels) is kept, up to the rounding
    dx, dy, dt, _ = block_steps(alice, DEFAULT_SPEC)
    rx, ry, rt, _ = block_steps(recast, DEFAULT_SPEC)
    assert np.hypot(rx, ry).sum() == pytest.approx(np.hypot(dx, dy).sum(), rel=0.15)
    # twice the event rate: about twice the blocks from the same movement
    assert 1.5 * len(alice) < len(recast) < 2.6 * len(alice)
    assert recast.dtype == np.float32 and recast.shape[1:] == alice.shape[1:]
    assert np.isfinite(recast).all()
    np.testing.assert_array_equal(recast, recast_blocks(alice, DEFAULT_SPEC, owner_set_up([bob_events]), seed=0))


def test_runs_stay_as_they_are_where_the_re_cast_cannot_apply(alice, bob_events):
    runs = [alice]
    assert recast_runs(runs, DEFAULT_SPEC, None) is runs  # the owner's set-up is unknown
    assert not invertible(SEED_SPEC)  # velocities without their time steps
    seed_blocks = cut_blocks(synth_events("alice", 60, seed=4), SEED_SPEC)[0]
    assert recast_runs([seed_blocks], SEED_SPEC, owner_set_up([bob_events]))[0] is seed_blocks
