"""PrefixSpan (Pei et al., 2001) for sequences of single items.

Own implementation: the ``prefixspan`` package on PyPI (0.5.2, 2019) is unmaintained and
pulls ``docopt`` and ``extratools`` for what is forty lines here. Sequences are lists of
hashable items (the operation codes of ``agent.pattern_features``); a pattern is a tuple of
items occurring in that order in a sequence, not necessarily next to each other; its support
is the number of sequences holding it (each sequence counts once).

Projection by pseudo-pointers: a projected database is a list of ``(sequence, position)``
pairs, the suffix after the prefix's leftmost embedding, so no suffix is ever copied.
"""

from __future__ import annotations

from collections import defaultdict


def prefixspan(sequences, min_support: int, max_len: int = 3, min_len: int = 1) -> list[tuple[tuple, int]]:
    """All frequent patterns ``(pattern, support)`` with ``min_len <= len <= max_len``.

    Sorted by support (highest first), then shorter first, then by pattern, so the output is
    deterministic whatever the order items were met in.
    """
    if min_support < 1:
        raise ValueError("min_support is a count of sequences and must be >= 1")
    sequences = [list(s) for s in sequences]
    found: list[tuple[tuple, int]] = []

    def grow(prefix: tuple, projected: list[tuple[int, int]]) -> None:
        # first occurrence of each item in each projected suffix
        first: dict = defaultdict(list)
        for i, start in projected:
            seen = set()
            seq = sequences[i]
            for pos in range(start, len(seq)):
                item = seq[pos]
                if item not in seen:
                    seen.add(item)
                    first[item].append((i, pos + 1))
        for item, proj in first.items():
            if len(proj) < min_support:
                continue
            pattern = prefix + (item,)
            if len(pattern) >= min_len:
                found.append((pattern, len(proj)))
            if len(pattern) < max_len:
                grow(pattern, proj)

    grow((), [(i, 0) for i in range(len(sequences))])
    return sorted(found, key=lambda ps: (-ps[1], len(ps[0]), ps[0]))


def contains(sequence, pattern) -> bool:
    """Whether ``pattern`` occurs in ``sequence`` in order (gaps allowed)."""
    it = iter(sequence)
    return all(any(item == x for x in it) for item in pattern)
