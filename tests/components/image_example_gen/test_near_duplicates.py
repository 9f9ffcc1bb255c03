"""The band index finds exactly the pairs a comparison of all pairs finds, fast at 100k."""
import time

import numpy as np
import pytest

from components.image_example_gen import near_duplicates as nd


def _random_fingerprints(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << 64, count, dtype=np.uint64)


def _with_planted_copies(values: np.ndarray, seed: int, copies: int) -> np.ndarray:
    """`copies` extra fingerprints, each 0-16 random bits away from a random one."""
    rng = np.random.default_rng(seed)
    planted = []
    for _ in range(copies):
        value = int(values[rng.integers(len(values))])
        for bit in rng.choice(64, rng.integers(0, 17), replace=False):
            value ^= 1 << int(bit)
        planted.append(value)
    return np.concatenate([values, np.array(planted, dtype=np.uint64)])


def _brute_force(values: np.ndarray, max_distance: int) -> np.ndarray:
    pairs = []
    for i in range(len(values) - 1):
        close = np.flatnonzero(nd.popcount(values[i + 1:] ^ values[i]) <= max_distance)
        pairs.append(np.stack([np.full(len(close), i), close + i + 1], axis=1))
    return np.concatenate(pairs)


def test_popcount():
    values = np.array([0, 1, 0xFF, (1 << 64) - 1, 0x8000000000000001], dtype=np.uint64)
    assert nd.popcount(values).tolist() == [0, 1, 8, 64, 2]


@pytest.mark.parametrize("max_distance", [0, 1, 3, 4, 7, 10, 13])
def test_index_is_exact(max_distance):
    values = _with_planted_copies(_random_fingerprints(2500, 1), 2, 500)
    values = np.concatenate([values, values[:20]])  # identical fingerprints too
    found = nd.near_pairs(values.tolist(), max_distance)
    expected = _brute_force(values, max_distance)
    assert len(expected) > 20
    assert found.tolist() == expected.tolist()


def test_components_join_chains():
    # 0-1-2 a chain (0 and 2 need not be close), 3-4, 5 alone.
    roots = nd.components(6, np.array([[1, 2], [0, 1], [3, 4]]))
    assert roots.tolist() == [0, 0, 0, 3, 3, 5]


def test_index_at_100k_is_exact_on_planted_copies_and_fast():
    values = _with_planted_copies(_random_fingerprints(100_000, 3), 4, 2_000)
    started = time.perf_counter()
    found = nd.near_pairs(values.tolist(), 10)
    index_seconds = time.perf_counter() - started
    distances = nd.popcount(values[found[:, 0]] ^ values[found[:, 1]])
    assert (distances <= 10).all()
    # Every planted copy within 10 bits of its source is found (random pairs are ~never).
    planted = values[100_000:]
    close_to_some = [v for v in planted.tolist()
                     if (nd.popcount(values[:100_000] ^ np.uint64(v)) <= 10).any()]
    found_values = set(values[found.ravel()].tolist())
    assert close_to_some and set(close_to_some) <= found_values
    # The peer: comparing all pairs, measured on 10k and scaled by (100k / 10k)^2.
    sample = values[:10_000]
    started = time.perf_counter()
    _brute_force(sample, 10)
    all_pairs_seconds = (time.perf_counter() - started) * 100
    ratio = index_seconds / all_pairs_seconds
    print(f"100k fingerprints: index {index_seconds:.1f} s, all pairs ~{all_pairs_seconds:.0f} s"
          f" (ratio {ratio:.3f})")
    assert ratio < 0.3
