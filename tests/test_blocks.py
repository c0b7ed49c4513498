import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.blocks import DEFAULT_SPEC, SEED_SPEC, BlockCutter, BlockSpec, BlockSpecError, cut_blocks, cut_file
from agent.events import DRAG, EVENT_DTYPE, LEFT, MOVE, NO_BUTTON, PRESSED, RELEASED, SCROLL, UP, make_events
from agent.recordings import read_recording

SMALL = BlockSpec(size=4, scale=1.0)


def moves(ts, xs, ys):
    return make_events([(t, NO_BUTTON, MOVE, x, y) for t, x, y in zip(ts, xs, ys)])


def test_hand_computed_velocities_with_dt_floor():
    # dt: 0.1, 0 (-> 0.016), 0.01 (<= 0.01 -> 0.016), 0.05
    ev = moves([0.0, 0.1, 0.1, 0.11, 0.16], [0, 10, 12, 12, 17], [0, 0, -4, -4, 3])
    blocks, times = cut_blocks(ev, SMALL)
    assert blocks.shape == (1, 2, 4)
    np.testing.assert_allclose(blocks[0, 0], [100.0, 2 / 0.016, 0.0, 100.0], rtol=1e-6)
    np.testing.assert_allclose(blocks[0, 1], [0.0, -4 / 0.016, 0.0, 140.0], rtol=1e-6)
    assert times.tolist() == [0.16]


def test_default_scale_is_pixels_per_millisecond():
    ev = moves(np.arange(129) * 0.02, np.arange(129) * 10, np.zeros(129))
    blocks, _ = cut_blocks(ev, SEED_SPEC)
    assert blocks.shape == (1, 2, 128)
    np.testing.assert_allclose(blocks[0, 0], 0.5, rtol=1e-6)  # 10 px / 20 ms


def test_log_velocities_log_dt_and_held_button_hand_computed():
    # move 0.1 s, press after 0.05 s, drag 0.02 s (20 px), release after 0.2 s, move 0.1 s
    ev = make_events([(0.0, NO_BUTTON, MOVE, 0, 0), (0.1, NO_BUTTON, MOVE, 100, -50),
                      (0.15, LEFT, PRESSED, 100, -50), (0.17, LEFT, DRAG, 80, -50),
                      (0.37, LEFT, RELEASED, 80, -50), (0.47, NO_BUTTON, MOVE, 90, -50)])
    spec = BlockSpec(size=5, scale=1.0, dt_floor=0.01, dt_min=0.0, features=("lvx", "lvy", "logdt", "held"))
    blocks, _ = cut_blocks(ev, spec)
    lvx, lvy, logdt, held = blocks[0]
    np.testing.assert_allclose(lvx, [np.log1p(1000), 0, -np.log1p(1000), 0, np.log1p(100)], rtol=1e-6)
    np.testing.assert_allclose(lvy, [-np.log1p(500), 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(logdt, np.log([10, 5, 2, 20, 10]), rtol=1e-5)
    # the button is down from the press until the release: the drag and the hold
    assert held.tolist() == [0, 0, 1, 1, 0]


def test_pauses_kept_as_one_sample_or_split():
    t = [0, 0.1, 0.2, 0.3, 5.3, 5.4, 5.5, 5.6]  # a 5-s pause after 3 samples
    ev = moves(t, range(8), range(8))
    kept, _ = cut_blocks(ev, BlockSpec(size=7, scale=1.0, pauses="keep", features=("vx", "logdt")))
    assert kept.shape == (1, 2, 7)
    np.testing.assert_allclose(kept[0, 1, 3], np.log(5.0 / 0.016), rtol=1e-5)  # the pause itself
    np.testing.assert_allclose(kept[0, 0, 3], 1 / 5.0, rtol=1e-5)
    split, _ = cut_blocks(ev, BlockSpec(size=7, scale=1.0, features=("vx", "logdt")))
    assert len(split) == 0  # 3 + 3 samples either side of the pause: no block of 7
    with pytest.raises(BlockSpecError, match="pauses"):
        BlockSpec(pauses="skip")


def test_gap_splits_and_remainder_drop_vs_concatenate():
    t = [0, 0.1, 0.2, 0.3, 5.0, 5.1, 5.2, 5.3, 5.4, 5.5]  # 3 samples, gap, 5 samples
    ev = moves(t, range(10), range(10))
    drop, _ = cut_blocks(ev, SMALL)
    assert len(drop) == 1  # only the second sequence has 4 samples; its 5th is dropped
    conc, _ = cut_blocks(ev, BlockSpec(size=4, scale=1.0, remainder="concatenate"))
    assert len(conc) == 2  # 3 + 1 leftover samples make one more block
    assert not np.isnan(conc).any()


def test_scroll_dropped_and_clock_backwards_splits():
    ev = make_events([(0, NO_BUTTON, MOVE, 0, 0), (0.1, SCROLL, UP, 0, 0), (0.2, NO_BUTTON, MOVE, 2, 0),
                      (0.3, NO_BUTTON, MOVE, 4, 0), (0.4, NO_BUTTON, MOVE, 6, 0), (0.5, NO_BUTTON, MOVE, 8, 0),
                      (0.1, NO_BUTTON, MOVE, 8, 0), (0.2, NO_BUTTON, MOVE, 8, 0)])
    blocks, _ = cut_blocks(ev, SMALL)
    assert len(blocks) == 1
    np.testing.assert_allclose(blocks[0, 0], [10, 20, 20, 20])  # 0->0.2 is one sample over the scroll


def test_never_nan_or_inf_with_duplicate_times_and_huge_jumps():
    ev = moves([0] * 50 + [1e-9] * 50, [0, 65535] * 50, [65535, 0] * 50)
    blocks, _ = cut_blocks(ev, BlockSpec(size=8))
    assert np.isfinite(blocks).all()
    clipped, _ = cut_blocks(ev, BlockSpec(size=8, clip=5.0))
    assert np.abs(clipped).max() == 5.0


def test_zscore_normalisation_per_block():
    rng = np.random.default_rng(1)
    ev = moves(np.cumsum(rng.uniform(0.005, 0.03, 300)), rng.integers(0, 1000, 300), rng.integers(0, 800, 300))
    blocks, _ = cut_blocks(ev, BlockSpec(size=32, normalisation="zscore", features=("vx", "vy", "dt")))
    assert blocks.shape[1] == 3
    np.testing.assert_allclose(blocks.mean(axis=2), 0, atol=1e-4)


def test_spec_validation_and_round_trip():
    spec = BlockSpec(size=64, remainder="concatenate", features=("vx", "vy", "dt"), clip=10.0)
    assert BlockSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(BlockSpecError, match="size"):
        BlockSpec(size=1)
    with pytest.raises(BlockSpecError, match="features"):
        BlockSpec(features=("speed",))
    with pytest.raises(BlockSpecError, match="unknown parameter"):
        BlockSpec.from_dict({**spec.to_dict(), "colour": "red"})


@pytest.mark.parametrize("field, value", [("gap", "x"), ("gap", True), ("dt_min", None), ("dt_floor", float("nan")),
                                          ("scale", "2"), ("clip", "30"), ("size", 10**30), ("size", 64.0)])
def test_spec_of_a_damaged_manifest_names_the_field(field, value):
    with pytest.raises(BlockSpecError) as exc:
        BlockSpec.from_dict({**DEFAULT_SPEC.to_dict(), field: value})
    assert f"{field} must be" in str(exc.value) and "not supported between" not in str(exc.value)


def _stream(events, spec, chunks):
    cutter = BlockCutter(spec)
    out, times = [], []
    start = 0
    for size in chunks:
        b, t = cutter.push(events[start:start + size])
        out.append(b)
        times.append(t)
        start += size
    for b, t in (cutter.push(events[start:]), cutter.flush()):
        out.append(b)
        times.append(t)
    return np.concatenate(out), np.concatenate(times)


@pytest.mark.parametrize("remainder", ["drop", "concatenate"])
def test_streaming_equals_batch_on_real_excerpt(remainder):
    import os
    ev = read_recording(os.path.join(os.path.dirname(__file__), "fixtures/balabit-excerpts/user7/session_excerpt1"))
    spec = BlockSpec(size=16, remainder=remainder)
    batch, bt = cut_blocks(ev, spec)
    assert len(batch) > 3
    one_by_one, ot = _stream(ev, spec, [1] * len(ev))
    assert np.array_equal(batch, one_by_one) and np.array_equal(bt, ot)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.sampled_from([0.0, 0.004, 0.01, 0.016, 0.05, 2.5, -0.1]), min_size=1, max_size=200),
    chunks=st.lists(st.integers(0, 40), max_size=20),
    remainder=st.sampled_from(["drop", "concatenate"]),
    pauses=st.sampled_from(["split", "keep"]),
)
def test_streaming_equals_batch_any_chunking(gaps, chunks, remainder, pauses):
    t = np.cumsum([0.0] + gaps)
    rng = np.random.default_rng(len(gaps))
    # random button states too: ``held`` looks one event back, across chunk boundaries
    ev = make_events([(ti, LEFT, st_, x, y) for ti, st_, x, y in zip(
        t, rng.choice([MOVE, DRAG, PRESSED, RELEASED], len(t)), rng.integers(-3000, 3000, len(t)),
        rng.integers(-100, 2000, len(t)))])
    spec = BlockSpec(size=5, remainder=remainder, pauses=pauses, features=("vx", "lvy", "logdt", "held"))
    batch, bt = cut_blocks(ev, spec)
    streamed, st_ = _stream(ev, spec, chunks)
    assert np.array_equal(batch, streamed) and np.array_equal(bt, st_)
    assert np.isfinite(batch).all()


def test_empty_input():
    blocks, times = cut_blocks(np.zeros(0, EVENT_DTYPE), SEED_SPEC)
    assert blocks.shape == (0, 2, 128) and times.shape == (0,)
    blocks, _ = cut_blocks(np.zeros(0, EVENT_DTYPE), DEFAULT_SPEC)
    assert blocks.shape == (0, DEFAULT_SPEC.channels, DEFAULT_SPEC.size)


def test_a_file_shorter_than_a_block_is_scored_on_its_movement_repeated():
    spec = BlockSpec(size=8, scale=1.0, dt_floor=0.01, dt_min=0.0, remainder="drop")
    ev = moves([0.0, 0.1, 0.2, 0.3], [0, 1, 3, 6], [0, 0, 0, 0])  # three samples: vx 10, 20, 30
    assert len(cut_blocks(ev, spec)[0]) == 0
    blocks, times = cut_file(ev, spec)
    assert blocks.shape == (1, 2, 8) and times.tolist() == [0.3]
    # Repeated so that the block ends on the file's real last sample.
    np.testing.assert_allclose(blocks[0, 0], [20, 30, 10, 20, 30, 10, 20, 30], rtol=1e-6)
    assert len(cut_file(ev[:1], spec)[0]) == 0  # one event: no movement at all


def test_a_file_tail_is_scored_when_it_holds_enough_samples():
    spec = BlockSpec(size=32, scale=1.0)
    for n, expected in [(32 + 16, 2), (32 + 15, 1)]:  # a tail of half a block or more counts
        ev = moves(np.arange(n + 1) * 0.02, np.arange(n + 1) * 3.0, np.zeros(n + 1))
        whole, _ = cut_blocks(ev, spec)
        blocks, _ = cut_file(ev, spec)
        assert len(whole) == 1 and len(blocks) == expected
        np.testing.assert_array_equal(blocks[0], whole[0])
