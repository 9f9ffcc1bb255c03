"""Bootstrap intervals from a confusion matrix: the same as resampling the examples,
honest coverage, and the edge cases of small eval splits."""
import numpy as np
import pytest

from components.artifacts.confidence import (Intervals, bootstrap_intervals,
                                             format_interval)


def _confusion(labels, predictions, classes):
    matrix = np.zeros((classes, classes))
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def _example_bootstrap(labels, predictions, classes, resamples, rng):
    """The textbook bootstrap: resample the examples themselves."""
    accuracy, recall = [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        y, p = labels[idx], predictions[idx]
        accuracy.append(np.mean(y == p))
        recall.append([np.mean(p[y == c] == c) if np.any(y == c) else np.nan
                       for c in range(classes)])
    recall = np.array(recall)
    return (np.percentile(accuracy, [2.5, 97.5]),
            [np.nanpercentile(recall[:, c], [2.5, 97.5]) for c in range(classes)])


def test_equals_resampling_the_examples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    predictions = np.where(rng.random(300) < 0.8, labels, rng.integers(0, 3, 300))
    ours = bootstrap_intervals(_confusion(labels, predictions, 3), resamples=4000, seed=3)
    accuracy, recall = _example_bootstrap(labels, predictions, 3, 4000, rng)
    assert ours.accuracy == pytest.approx(tuple(accuracy), abs=0.01)
    for c in range(3):
        assert ours.recall[c] == pytest.approx(tuple(recall[c]), abs=0.02)


def test_contains_the_point_value_and_narrows_with_more_data():
    small = np.array([[40, 10], [5, 45]])
    point = np.trace(small) / small.sum()
    narrow = bootstrap_intervals(small * 4)
    wide = bootstrap_intervals(small)
    assert wide.accuracy[0] < point < wide.accuracy[1]
    width = lambda i: i[1] - i[0]  # noqa: E731
    # Four times the examples: about half the width (1 / sqrt(4)).
    assert width(narrow.accuracy) / width(wide.accuracy) == pytest.approx(0.5, abs=0.1)
    assert wide.recall[0][0] < 40 / 50 < wide.recall[0][1]


def test_coverage_is_about_the_level():
    # 300 eval splits of 200 examples from a classifier of true accuracy 0.8: about 95%
    # of the intervals contain 0.8 (binomial SE of the coverage itself ~1.3 points).
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(300):
        hits = rng.binomial(200, 0.8)
        interval = bootstrap_intervals([[hits, 0], [200 - hits, 0]], resamples=500,
                                       seed=trial).accuracy
        covered += interval[0] <= 0.8 <= interval[1]
    assert 0.90 <= covered / 300 <= 0.99


def test_deterministic_for_a_seed():
    matrix = [[30, 5], [8, 20]]
    assert bootstrap_intervals(matrix, seed=5) == bootstrap_intervals(matrix, seed=5)
    assert bootstrap_intervals(matrix, seed=5) != bootstrap_intervals(matrix, seed=6)


def test_edge_cases():
    perfect = bootstrap_intervals([[10, 0, 0], [0, 5, 0], [0, 0, 0]])
    assert perfect.accuracy == (1.0, 1.0)
    assert perfect.recall[0] == (1.0, 1.0) and perfect.recall[2] is None
    empty = bootstrap_intervals([[0, 0], [0, 0]])
    assert empty.accuracy is None and empty.recall == {0: None, 1: None}
    # A class with one example has recall 0 or 1 in every draw that holds it.
    rare = bootstrap_intervals([[50, 0], [1, 0]])
    assert rare.recall[1] == (0.0, 0.0)


@pytest.mark.parametrize("matrix,kwargs,message", [
    ([[1, 2, 3]], {}, "square"),
    ([[1, -1], [0, 1]], {}, "counts"),
    ([[1, 0], [0, 1]], {"resamples": 0}, "resamples"),
    ([[1, 0], [0, 1]], {"level": 1.0}, "level"),
])
def test_rejects_bad_input(matrix, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_intervals(matrix, **kwargs)


def test_round_trips_through_a_dict_and_formats():
    intervals = bootstrap_intervals([[30, 5], [8, 20], ], seed=2)
    again = Intervals.from_dict(intervals.to_dict())
    assert again == intervals
    assert format_interval(intervals.accuracy).startswith("95% CI 0.")
    assert format_interval(None) == ""
