"""PrefixSpan on a worked example, and against brute force on random databases."""

import itertools

import numpy as np
import pytest

from training.families.patterns.prefixspan import contains, prefixspan


def test_worked_example():
    # DB: abc, ac, bca, ab; minimum support 2.
    # singles: a in all 4, b in 3 (abc, bca, ab), c in 3 (abc, ac, bca).
    # <a>-projected suffixes: bc, c, -, b   -> b:2, c:2  => ab:2, ac:2
    #   <ab>-projected: c, -                -> c:1      (nothing)
    #   <ac>-projected: -, -                            (nothing)
    # <b>-projected suffixes: c, ca, -      -> c:2, a:1 => bc:2
    #   <bc>-projected: -, a                -> a:1      (nothing)
    # <c>-projected suffixes: -, -, a       -> a:1      (nothing)
    db = ["abc", "ac", "bca", "ab"]
    assert prefixspan(db, 2) == [(("a",), 4), (("b",), 3), (("c",), 3),
                                 (("a", "b"), 2), (("a", "c"), 2), (("b", "c"), 2)]
    assert prefixspan(db, 2, max_len=1) == [(("a",), 4), (("b",), 3), (("c",), 3)]
    assert prefixspan(db, 2, min_len=2) == [(("a", "b"), 2), (("a", "c"), 2), (("b", "c"), 2)]
    assert prefixspan(db, 5) == []


def test_each_sequence_counts_once_and_gaps_are_allowed():
    db = [[1, 1, 1, 2], [1, 3, 2], [2, 1]]
    found = dict(prefixspan(db, 2))
    assert found[(1,)] == 3 and found[(1, 2)] == 2 and (1, 1) not in found
    assert contains([1, 3, 2], (1, 2)) and not contains([2, 1], (1, 2))


def test_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        db = [rng.integers(0, 4, rng.integers(0, 7)).tolist() for _ in range(8)]
        min_support = int(rng.integers(1, 4))
        expected = {}
        for n in range(1, 4):
            for pattern in itertools.product(range(4), repeat=n):
                support = sum(contains(s, pattern) for s in db)
                if support >= min_support:
                    expected[pattern] = support
        assert dict(prefixspan(db, min_support, max_len=3)) == expected


def test_min_support_must_be_a_count():
    with pytest.raises(ValueError):
        prefixspan([[1]], 0)
