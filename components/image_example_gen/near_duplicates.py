"""Near-duplicate pairs and groups among 64-bit fingerprints, without comparing all pairs.

Multi-index hashing: the 64 bits are cut into four 16-bit bands. Two fingerprints within
Hamming distance k differ in at most floor(k / 4) bits of at least one band (pigeonhole:
four bands each differing in more would make more than k in all). So for every band, each
fingerprint looks up the fingerprints whose band value is within that radius of its own
(a table over the 65,536 band values, probed at every value within the radius), and only
these candidates are compared on all 64 bits. The result is exactly the set of pairs a
comparison of all pairs finds (tested against it); the work grows with the number of
images times the images sharing a band value, about n * n / 65,536 per probe.

Groups are the connected components of the pairs (union-find, vectorised): a chain of
near-copies, e.g. a burst, is one group even when its ends are further apart than k.
"""
from __future__ import annotations

import itertools
from typing import List, Sequence

import numpy as np

_BANDS = 4
_BAND_BITS = 16
_BAND_VALUES = 1 << _BAND_BITS


def popcount(values: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 (the classic SWAR sum of bit fields)."""
    x = np.asarray(values, dtype=np.uint64)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.int64)


def _masks(radius: int) -> np.ndarray:
    """Every 16-bit value with at most `radius` bits set (the probes within a band)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in bits)
                  for bits in itertools.combinations(range(_BAND_BITS), r)]
    return np.array(masks, dtype=np.int64)


def near_pairs(fingerprints: Sequence[int], max_distance: int) -> np.ndarray:
    """All pairs (i, j), i < j, of positions whose fingerprints are within max_distance,
    as an int64 array of shape (pairs, 2), sorted."""
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    values = np.array([int(f) for f in fingerprints], dtype=np.uint64)
    radius = max_distance // _BANDS
    found: List[np.ndarray] = []
    for band in range(_BANDS):
        keys = ((values >> np.uint64(band * _BAND_BITS)) & np.uint64(_BAND_VALUES - 1)
                ).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_keys, sorted_values = keys[order], values[order]
        starts = np.zeros(_BAND_VALUES + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=_BAND_VALUES), out=starts[1:])
        for mask in _masks(min(radius, _BAND_BITS)).tolist():
            # Positions below are in band order. Each pair is generated once per probe:
            # from its smaller key (mask != 0), or from its earlier member (mask == 0).
            if mask == 0:
                query = np.arange(len(values), dtype=np.int64)
                lo = query + 1
                counts = starts[sorted_keys + 1] - lo
            else:
                top_bit = 1 << (mask.bit_length() - 1)
                query = np.flatnonzero((sorted_keys & top_bit) == 0)
                probe = sorted_keys[query] ^ mask
                lo = starts[probe]
                counts = starts[probe + 1] - lo
            total = int(counts.sum())
            if total == 0:
                continue
            first = np.repeat(query, counts)
            second = np.arange(total, dtype=np.int64) + np.repeat(lo - (np.cumsum(counts) - counts),
                                                                 counts)
            close = popcount(sorted_values[first] ^ sorted_values[second]) <= max_distance
            a, b = order[first[close]], order[second[close]]
            found.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)  # a pair is found in several bands


def components(count: int, pairs: np.ndarray) -> np.ndarray:
    """Each node's root, the smallest position of its connected component: union-find
    run on all pairs at once (every pair hooks the larger of its two roots under the
    smaller, then paths are compressed), repeated until every pair shares a root."""
    parent = np.arange(count, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        root_a, root_b = parent[a], parent[b]
        if (root_a == root_b).all():
            return parent
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
        while True:  # path compression: parent <- grandparent until parents are roots
            grandparent = parent[parent]
            if (grandparent == parent).all():
                break
            parent = grandparent
