"""Generated scripted input (training.data.scripted) and what it is for: models that do not take a
script or a mouse jiggler for their owner."""

import random

import numpy as np

import models
from agent.blocks import DEFAULT_SPEC, cut_blocks
from agent.events import MOVE, NO_BUTTON, make_events
from agent.model_dir import load_model_dir
from agent.scorer import Scorer
from tests.synth import synth_events
from training.families.cnn.train import FitConfig, fit_user, predict
from training.data.scripted import PATTERNS, scripted_blocks, scripted_events


def test_scripted_blocks_are_seeded_exact_in_number_and_finite():
    a = scripted_blocks(50, DEFAULT_SPEC, seed=3)
    assert a.shape == (50, DEFAULT_SPEC.channels, DEFAULT_SPEC.size) and np.isfinite(a).all()
    assert np.array_equal(a, scripted_blocks(50, DEFAULT_SPEC, seed=3))
    assert not np.array_equal(a, scripted_blocks(50, DEFAULT_SPEC, seed=4))


def test_every_pattern_is_drawn_and_streams_are_in_time_order():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        ev = scripted_events(rng, 200)
        assert np.all(np.diff(ev["t"]) >= 0) and len(ev) >= 200
    for pattern in PATTERNS:
        t, x, y = pattern(np.random.default_rng(1), 300)
        assert len(t) == len(x) == len(y) == 300 and np.all(np.diff(t) > 0)
        seen.add(pattern.__name__)
    assert len(seen) == len(PATTERNS)


def _hand_written_scripts():
    """Scripted input written here by hand, not by the generator the models learnt from."""
    rnd = random.Random(5)
    jumps = [(0.003 * i, NO_BUTTON, MOVE, rnd.randrange(0, 1280), rnd.randrange(0, 800)) for i in range(400)]
    sweep = [(0.01 * i, NO_BUTTON, MOVE, 100 + 7 * (i % 150), 300 + i // 150 * 40) for i in range(400)]
    jiggle = [(0.5 * i, NO_BUTTON, MOVE, 640 + i % 2, 400) for i in range(400)]
    return {"jumps": make_events(jumps), "sweep": make_events(sweep), "jiggle": make_events(jiggle)}


def test_a_fit_with_scripted_negatives_rejects_scripts():
    spec = DEFAULT_SPEC
    pos = np.concatenate([cut_blocks(synth_events("alice", 300, seed=k), spec)[0] for k in range(3)])
    neg = np.concatenate([cut_blocks(synth_events(u, 150, seed=10 + k), spec)[0]
                          for u in ("bob", "carol") for k in range(3)])
    cfg = FitConfig(epochs=8, seed=0)
    assert cfg.scripted > 0  # on by default: every `train fit` and `enroll` learns against scripts
    model = fit_user(pos, neg, spec, "plain", None, cfg)
    alice = predict(model, cut_blocks(synth_events("alice", 60, seed=99), spec)[0]).mean()
    script_scores = {k: predict(model, cut_blocks(e, spec)[0]).mean() for k, e in _hand_written_scripts().items()}
    unseen_generated = predict(model, scripted_blocks(100, spec, seed=123)).mean()  # not the fit's seed
    assert alice > 0.8 and max(script_scores.values()) < 0.3 and unseen_generated < 0.3, \
        (alice, script_scores, unseen_generated)


def test_the_shipped_demo_model_locks_on_scripted_input():
    model = load_model_dir(models.DEMO_MODEL)
    scorer = Scorer(model)
    for name, events in _hand_written_scripts().items():
        blocks, _ = cut_blocks(events, model.spec)
        assert len(blocks) >= 1
        assert scorer.score(blocks).mean() < model.decision.threshold, name
