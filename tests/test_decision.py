import numpy as np
import pytest

from agent import states
from agent.decision import RollingDecision, simulate_locks
from training.user_model.calibrate import calibrate, rolling_means


def test_rolling_mean_locks_only_when_window_full_and_low():
    d = RollingDecision(window=3, threshold=0.5)
    v = [d.update(s, now=i) for i, s in enumerate([0.1, 0.1])]
    assert all(x.rolling is None and not x.act for x in v)  # not judged on fewer than 3 blocks
    v3 = d.update(0.2, now=2)
    assert v3.act and v3.state == states.LOCKED and v3.rolling == pytest.approx(0.4 / 3)


def test_suspicious_band_and_recovery():
    d = RollingDecision(window=2, threshold=0.5, suspicious_margin=0.1)
    d.update(0.9, 0)
    assert d.update(0.25, 1).state == states.SUSPICIOUS  # mean 0.575 < 0.5 + 0.1
    assert d.update(0.9, 2).state == states.SUSPICIOUS  # the low block is still in the window
    assert d.update(0.9, 3).state == states.PROTECTED


def test_window_cleared_and_grace_after_lock():
    d = RollingDecision(window=2, threshold=0.5, grace_seconds=10)
    d.update(0.0, 0)
    assert d.update(0.0, 1).act
    # within the grace period nothing is judged, however low
    assert not d.update(0.0, 5).act and d.update(0.0, 6).rolling is None
    d.update(0.0, 12)
    assert d.update(0.0, 13).act  # judged again after grace, on a fresh window


def test_simulate_locks_counts_and_first():
    locks, first = simulate_locks([0.9, 0.9, 0.1, 0.1, 0.1, 0.1], window=2, threshold=0.3)
    assert first == 4 and locks == 2


def test_rolling_means():
    np.testing.assert_allclose(rolling_means(np.array([1, 2, 3, 4.0]), 2), [1.5, 2.5, 3.5])
    assert len(rolling_means(np.array([1.0]), 3)) == 0


def test_calibration_meets_target_on_heldout_and_prefers_catching_impostors():
    rng = np.random.default_rng(0)
    genuine = [np.clip(rng.normal(0.8, 0.15, 400), 0, 1) for _ in range(3)]
    impostor = [np.clip(rng.normal(0.3, 0.2, 60), 0, 1) for _ in range(10)]
    window, threshold, report = calibrate(genuine, impostor, seconds_per_block=5.0, false_locks_per_hour=0.125)
    chosen = next(c for c in report["candidates"] if c["window"] == window)
    assert chosen["heldout_false_locks"] == 0  # the target is far below what 1.7 h can show
    assert chosen["hard_impostor_runs_locked"] == max(c["hard_impostor_runs_locked"] for c in report["candidates"])
    best = [c for c in report["candidates"] if c["hard_impostor_runs_locked"] == chosen["hard_impostor_runs_locked"]]
    assert chosen["hard_median_blocks_to_lock"] == min(c["hard_median_blocks_to_lock"] for c in best)
    # the threshold is the lowest genuine rolling mean: no genuine run would lock
    assert all(simulate_locks(g, window, threshold)[0] == 0 for g in genuine)


def test_calibration_needs_heldout_genuine():
    with pytest.raises(ValueError):
        calibrate([np.array([0.5] * 3)], [], 5.0, 0.1)


def test_easy_pool_impostors_do_not_pick_a_one_block_window():
    """Saturated scores: genuine blocks near 1 with rare deep dips, pool impostors all near 0.
    A one-block window would need a threshold below every dip; averaging does better on
    impostors who resemble the user part of the time."""
    rng = np.random.default_rng(3)
    genuine = []
    for _ in range(4):
        g = np.clip(rng.normal(0.97, 0.03, 300), 0, 1)
        g[rng.choice(300, 6, replace=False)] = 0.001
        genuine.append(g)
    impostor = [np.clip(rng.normal(0.02, 0.02, 40), 0, 1) for _ in range(12)]
    window, threshold, report = calibrate(genuine, impostor, seconds_per_block=6.0, false_locks_per_hour=0.125)
    assert window > 1 and threshold > 0.3


def _saturated_runs(rng, mean_logit, sd_logit, n, runs):
    return [1 / (1 + np.exp(-rng.normal(mean_logit, sd_logit, n))) for _ in range(runs)]


def test_common_threshold_where_the_owners_heldout_data_allow_it():
    rng = np.random.default_rng(1)
    genuine = _saturated_runs(rng, 4.0, 1.5, 300, 3)  # the owner's blocks mostly far above 0.5
    impostor = _saturated_runs(rng, -2.0, 2.0, 60, 10)
    window, threshold, report = calibrate(genuine, impostor, 20.0, 0.125, common=0.5)
    chosen = next(c for c in report["candidates"] if c["window"] == window)
    assert threshold == 0.5 and chosen["admissible"]
    assert report["common_threshold"] == 0.5
    # without ``common`` the threshold is read off the held-out tail: another, user-specific one
    assert calibrate(genuine, impostor, 20.0, 0.125)[1] != 0.5


def test_only_windows_whose_heldout_means_stay_above_the_common_threshold_are_chosen():
    """Short windows that the owner's own dips would take below 0.5 are not admissible, even
    though they would lock the impostors sooner."""
    rng = np.random.default_rng(2)
    genuine = _saturated_runs(rng, 3.0, 2.0, 400, 3)
    impostor = _saturated_runs(rng, -3.0, 1.0, 60, 10)
    window, threshold, report = calibrate(genuine, impostor, 20.0, 0.125, common=0.5)
    by_window = {c["window"]: c for c in report["candidates"]}
    assert not by_window[3]["admissible"] and by_window[window]["admissible"] and window > 3
    assert by_window[3]["hard_median_blocks_to_lock"] < by_window[window]["hard_median_blocks_to_lock"]
    assert threshold == 0.5


def test_no_admissible_window_falls_back_to_the_longest_with_its_own_threshold():
    rng = np.random.default_rng(3)
    genuine = _saturated_runs(rng, 0.3, 2.0, 300, 3)  # an owner the model barely tells apart
    impostor = _saturated_runs(rng, -0.5, 2.0, 60, 10)
    window, threshold, report = calibrate(genuine, impostor, 20.0, 0.125, common=0.5)
    assert not any(c["admissible"] for c in report["candidates"])
    assert window == max(c["window"] for c in report["candidates"])
    assert threshold < 0.5 and threshold == calibrate(genuine, impostor, 20.0, 0.125, windows=(window,))[1]


def test_a_block_without_a_valid_score_is_not_protecting_then_acts_after_the_fault_grace():
    d = RollingDecision(window=2, threshold=0.5, fault_grace_seconds=10)
    d.update(0.9, 0)
    d.update(0.9, 1)
    first = d.invalid(float("nan"), "bad", now=2)
    assert (first.state, first.act, first.fault, first.rolling) == (states.NOT_PROTECTING, False, "bad", None)
    assert not d.invalid(float("nan"), "bad", now=11.9).act
    assert d.expire(11.9) is None
    last = d.invalid(1.5, "worse", now=12)
    assert last.act and last.state == states.LOCKED and last.fault == "worse"
    # acted on: the next block without a valid score starts a new grace
    assert not d.invalid(float("nan"), "bad", now=13).act


def test_the_fault_grace_runs_out_without_blocks_and_after_a_locks_grace():
    d = RollingDecision(window=2, threshold=0.5, grace_seconds=30, fault_grace_seconds=10)
    d.update(0.0, 0)
    assert d.update(0.0, 1).act  # a lock: no decision for 30 s
    d.invalid(float("nan"), "bad", now=2)
    assert d.expire(20) is None  # the fault's grace is over, the lock's is not
    v = d.expire(31)
    assert v.act and v.state == states.LOCKED and v.fault == "bad"
    assert d.expire(100) is None


def test_valid_scores_again_judge_as_before_and_invalid_ones_never_enter_the_window():
    d = RollingDecision(window=2, threshold=0.5, fault_grace_seconds=10)
    d.update(0.9, 0)
    d.invalid(float("nan"), "bad", now=1)
    v = d.update(0.8, 5)
    assert v.fault == "" and v.state == states.PROTECTED and v.rolling == pytest.approx(0.85)
    assert d.expire(100) is None  # the fault was forgotten with the valid score


def test_calibration_never_picks_a_threshold_the_agent_would_refuse():
    """An owner whose held-out rolling means reach 0 (a poor model): the quantile threshold was
    0.0, one no rolling mean is ever below, written into the manifest as "never lock"."""
    from agent.model_dir import MAX_THRESHOLD, MIN_THRESHOLD

    rng = np.random.default_rng(5)
    genuine = [np.where(rng.random(300) < 0.5, 0.0, 1.0) for _ in range(3)]
    impostor = [np.zeros(40) for _ in range(5)]
    for common in (None, 0.5):
        window, threshold, _ = calibrate(genuine, impostor, 5.0, 0.125, windows=(3,), common=common)
        assert MIN_THRESHOLD <= threshold <= MAX_THRESHOLD


def test_input_without_a_judged_block_acts_after_unjudged_seconds():
    """Typing without the mouse, or a jiggler: input but no block. Before, only blocks were judged."""
    from agent import states
    from agent.decision import RollingDecision

    d = RollingDecision(3, 0.5, grace_seconds=30.0, unjudged_seconds=600.0)
    for t in range(0, 600, 60):  # a key (or a 1-px nudge) a minute for 9 minutes
        d.activity(float(t))
        assert d.expire(float(t) + 1) is None
    d.activity(600.0)
    verdict = d.expire(600.5)
    assert verdict.act and verdict.state == states.LOCKED and "10 min of keyboard or mouse input" in verdict.reason
    assert d.expire(601.0) is None  # acted once; and the grace after the lock ignores input
    d.activity(620.0)
    assert d.expire(1300.0) is None
    # a judged block (someone moved the mouse enough) starts the count again
    for t in range(700, 1400, 60):
        d.activity(float(t))
        if t == 1000:
            d.update(0.9, now=float(t))
    assert d.expire(1400.0) is None
    d.activity(1659.0)  # 599 s after the first input since that block
    assert d.expire(1659.5) is None
    d.activity(1660.5)
    assert d.expire(1661.0).act
    # no input at all (an empty room) is never acted on, and without unjudged_seconds nothing changes
    assert RollingDecision(3, 0.5, unjudged_seconds=60.0).expire(1e6) is None
    plain = RollingDecision(3, 0.5)
    plain.activity(0.0)
    plain.activity(1e6)
    assert plain.expire(1e6) is None
