"""Bootstrap confidence intervals for accuracy and per-class recall.

An eval split of a few hundred images gives accuracy a standard error of 2-3 points, so
a point value alone overstates what a run shows. The intervals come from the
Evaluator's own confusion matrix (true class x argmax class, the overall slice): drawing
n examples with replacement from the eval split is the same as drawing the matrix's n
counts from a multinomial over its cells, so the exact nonparametric bootstrap needs no
second pass over the data and no TFMA re-computation (TFMA's own bootstrap re-runs
every metric, AUC included, per resample).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Interval = Tuple[float, float]

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
# Resamples drawn at once: bounds memory at CHUNK x classes^2 counts (many classes).
_CHUNK = 250


@dataclasses.dataclass
class Intervals:
    """Percentile intervals at `level` from `resamples` bootstrap draws."""
    level: float
    resamples: int
    accuracy: Optional[Interval]
    recall: Dict[int, Optional[Interval]]  # class id -> interval (None: no example)

    def to_dict(self) -> Dict[str, object]:
        return {"level": self.level, "resamples": self.resamples,
                "accuracy": list(self.accuracy) if self.accuracy else None,
                "recall": {str(k): list(v) if v else None for k, v in self.recall.items()}}

    @classmethod
    def from_dict(cls, values: Dict[str, object]) -> "Intervals":
        def interval(v: object) -> Optional[Interval]:
            return (float(v[0]), float(v[1])) if v else None  # type: ignore[index]
        return cls(level=float(values["level"]), resamples=int(values["resamples"]),
                   accuracy=interval(values["accuracy"]),
                   recall={int(k): interval(v)
                           for k, v in dict(values["recall"]).items()})  # type: ignore[arg-type]


def bootstrap_intervals(confusion: Sequence[Sequence[float]],
                        resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                        seed: int = 0) -> Intervals:
    """Intervals for accuracy and each class's recall from `confusion[true][predicted]`
    (counts of examples). Deterministic for a given seed."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    counts = np.rint(np.asarray(confusion, dtype=np.float64)).astype(np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or (counts < 0).any():
        raise ValueError(f"confusion must be a square matrix of counts, got shape "
                         f"{counts.shape}")
    classes, total = counts.shape[0], int(counts.sum())
    if total == 0:
        return Intervals(level, resamples, None, {c: None for c in range(classes)})
    rng = np.random.default_rng(seed)
    cells = counts.reshape(-1) / total
    accuracy: List[np.ndarray] = []
    recall: List[np.ndarray] = []
    for start in range(0, resamples, _CHUNK):
        draws = rng.multinomial(total, cells, size=min(_CHUNK, resamples - start))
        draws = draws.reshape(-1, classes, classes)
        hits = np.einsum("bii->bi", draws)
        accuracy.append(hits.sum(axis=1) / total)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall.append(hits / draws.sum(axis=2))  # NaN where a class drew no example
    tail = 100 * (1 - level) / 2
    per_class = np.concatenate(recall)
    return Intervals(
        level=level, resamples=resamples,
        accuracy=_percentiles(np.concatenate(accuracy), tail),
        recall={c: _percentiles(per_class[:, c], tail) if counts[c].sum() else None
                for c in range(classes)})


def _percentiles(values: np.ndarray, tail: float) -> Optional[Interval]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def format_interval(interval: Optional[Interval], level: float = DEFAULT_LEVEL) -> str:
    """'95% CI 0.912-0.948', or '' without an interval."""
    if interval is None:
        return ""
    return f"{round(100 * level):d}% CI {interval[0]:.3f}-{interval[1]:.3f}"
