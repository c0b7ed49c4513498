"""The background pool's fingerprints: an enrolment from recordings that are in the pool
leaves their owner out of the impostors, wherever the recording was cut."""

import numpy as np

from agent.blocks import DEFAULT_SPEC, cut_blocks
from tests.synth import synth_events
from training.data.pool import SAME_PERSON_MATCHES, fingerprints, load_pool, save_pool


def test_an_excerpt_shares_fingerprints_with_its_session_and_another_person_does_not():
    session = synth_events("alice", 300, seed=1)
    full = fingerprints(session)
    excerpt = fingerprints(session[1237:5000])  # starts mid-movement, anywhere
    assert len(full) > 50
    assert len(np.intersect1d(full, excerpt)) >= 0.8 * len(excerpt) > SAME_PERSON_MATCHES
    assert len(np.intersect1d(full, fingerprints(synth_events("bob", 300, seed=2)))) == 0
    assert len(np.intersect1d(full, fingerprints(synth_events("alice", 300, seed=3)))) == 0  # same style, new data


def test_resting_on_one_spot_leaves_no_fingerprint():
    still = synth_events("alice", 10, seed=4)
    still["x"], still["y"] = 500, 400
    assert len(fingerprints(still)) == 0


def test_pool_drops_the_owner_of_the_enrolling_recordings(tmp_path):
    recordings = {u: synth_events(style, 200, seed=10 + i) for i, (u, style) in
                  enumerate((("a/alice", "alice"), ("a/bob", "bob"), ("b/carol", "carol")))}
    blocks = {u: cut_blocks(e, DEFAULT_SPEC)[0] for u, e in recordings.items()}
    path = tmp_path / "pool.npz"
    save_pool(path, blocks, DEFAULT_SPEC, {}, {u: fingerprints(e) for u, e in recordings.items()})
    pool = load_pool(path, DEFAULT_SPEC)
    assert pool.users == ["a/alice", "a/bob", "b/carol"]
    assert [len(r) for r in pool.runs] == [len(blocks[u]) for u in pool.users]
    rest, own = pool.without_owners_of([recordings["a/bob"][3000:]])
    assert own == ["a/bob"] and rest.users == ["a/alice", "b/carol"]
    np.testing.assert_array_equal(rest.runs[1], blocks["b/carol"].astype(np.float16).astype(np.float32))
    assert pool.without_owners_of([synth_events("bob", 200, seed=99)])[1] == []
