"""The report's plots, written as PNG files (matplotlib, loaded when a plot is drawn)."""
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from components.artifacts.metric_names import PER_CLASS_METRICS


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str, description: Optional[Dict[str, Any]] = None) -> str:
    metadata = {"Description": json.dumps(description)} if description else None
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata=metadata)
    _pyplot().close(fig)
    return path


def plot_training(history: List[Dict[str, Any]], path: str) -> Optional[str]:
    """Loss and accuracy per epoch across both phases (history.json as the Trainer writes
    it: a list of phases with 0-based `epochs`, `history`, `learning_rates`, `best_epoch`);
    phase 2's start marked, each phase's restored best epoch starred."""
    if not history:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            xs, ys = [], []
            for phase in history:
                values = phase["history"].get(prefix + metric, [])
                xs += [e + 1 for e in phase["epochs"][:len(values)]]
                ys += values
            if ys:
                ax.plot(xs, ys, style, marker="o", markersize=3,
                        label=("validation " if prefix else "train ") + metric)
        for phase in history:
            best = phase.get("best_epoch")
            values = phase["history"].get("val_" + metric, [])
            if best is not None and best in phase["epochs"][:len(values)]:
                ax.plot(best + 1, values[phase["epochs"].index(best)], "*", markersize=12,
                        color="gold", markeredgecolor="black")
        for phase in history[1:]:
            start = phase["epochs"][0] + 1 if phase["epochs"] else None
            if start is None:
                continue
            ax.axvline(start - 0.5, color="grey", linestyle=":")
            rate = phase["learning_rates"][0] if phase.get("learning_rates") else None
            ax.annotate(f"{phase['name']}" + (f" (lr {rate:.2g})" if rate else ""),
                        xy=(start - 0.4, 0.97), xycoords=("data", "axes fraction"),
                        fontsize=8, color="grey", va="top")
        ax.set_xlabel("epoch (* best, restored)")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion(matrix: List[List[float]], labels: Sequence[str], path: str) -> str:
    """Counts as TFMA computed them; the PNG's Description metadata holds the same numbers."""
    plt = _pyplot()
    n = len(matrix)
    names = [labels[i] if i < len(labels) else f"#{i}" for i in range(n)]
    side = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    peak = max([max(row) for row in matrix] or [0])
    for i in range(n):
        for j in range(n):
            value = matrix[i][j]
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=9,
                    color="white" if value > peak / 2 else "black")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (eval split)")
    return _save(fig, path, {"labels": names, "matrix": matrix})


def plot_per_class(per_class: Dict[str, Dict[str, float]], path: str) -> Optional[str]:
    if not per_class:
        return None
    plt = _pyplot()
    names = list(per_class)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 3), 3.8))
    width = 0.8 / len(PER_CLASS_METRICS)
    for k, metric in enumerate(PER_CLASS_METRICS):
        ax.bar([i + k * width for i in range(len(names))],
               [per_class[n].get(metric, 0.0) for n in names], width, label=metric)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=45,
                  ha="right")
    ax.set_ylim(0, 1.2)  # headroom for the legend above the bars
    ax.set_title("per-class metrics")
    ax.legend(fontsize=8, ncol=len(PER_CLASS_METRICS), loc="upper center")
    return _save(fig, path)


def plot_comparison(rows: List[Tuple[str, float, float]], path: str) -> Optional[str]:
    """Horizontal bars: candidate against baseline, one pair per compared metric."""
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r[1] for r in rows], 0.4, label="candidate")
    ax.barh([y - 0.2 for y in ys], [r[2] for r in rows], 0.4, label="baseline")
    ax.set_yticks(list(ys), [r[0] for r in rows])
    ax.set_xlim(0, 1.05)
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    ax.set_title("candidate vs baseline")
    return _save(fig, path)


def plot_history(points: List[Tuple[str, float, Optional[Sequence[float]], bool]],
                 path: str) -> Optional[str]:
    """Accuracy per run with its CI band; (run label, accuracy, interval or None, pushed).
    The PNG's Description holds the points."""
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    xs = list(range(len(points)))
    low = [p[2][0] if p[2] else p[1] for p in points]
    high = [p[2][1] if p[2] else p[1] for p in points]
    ax.fill_between(xs, low, high, alpha=0.25, label="CI")
    ax.plot(xs, [p[1] for p in points], marker="o", label="accuracy")
    pushed = [(x, p[1]) for x, p in zip(xs, points) if p[3]]
    if pushed:
        ax.scatter(*zip(*pushed), s=90, facecolors="none", edgecolors="green", label="pushed")
    ax.set_xticks(xs, [p[0] for p in points], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("eval accuracy")
    ax.legend(fontsize=8)
    ax.set_title("accuracy per run")
    return _save(fig, path, {"runs": [{"run": p[0], "accuracy": p[1],
                                       "interval": list(p[2]) if p[2] else None,
                                       "pushed": p[3]} for p in points]})
