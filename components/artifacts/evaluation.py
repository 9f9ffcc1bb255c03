"""An Evaluator's output read back (metrics, confusion matrix, thresholds, blessing
failures) for the run summary, the model card and the report."""
import dataclasses
import json
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer

from components.artifacts.confidence import Intervals, bootstrap_intervals
from components.artifacts.metric_names import ACCURACY, EXAMPLE_COUNT
from trainer import contract

OVERALL = "overall"
EMPTY_VALUE = '""'  # how a slice on an empty feature value (e.g. no source_dir) is named


@dataclasses.dataclass
class Failure:
    """One threshold the candidate missed."""
    metric: str
    class_id: Optional[int]
    is_change: bool  # a change (vs baseline) threshold, else a value threshold
    value: Optional[float]
    threshold: str  # e.g. ">= 0.6" or "diff >= -0.01"
    slice: str = OVERALL

    def describe(self, labels: Sequence[str] = ()) -> str:
        what = self.metric if self.class_id is None else \
            f"{self.metric} of class {contract.class_name(self.class_id, labels)}"
        value = "n/a" if self.value is None else f"{self.value:+.4f}" if self.is_change \
            else f"{self.value:.4f}"
        kind = "change vs baseline" if self.is_change else "value"
        where = "" if self.slice == OVERALL else f" on slice {self.slice}"
        return f"{what}{where}: {kind} {value}, needs {self.threshold}"


@dataclasses.dataclass
class Evaluation:
    """What the report, the model card and the run summary need from a TFMA output."""
    metrics: Dict[str, float]  # candidate, overall slice
    baseline: Dict[str, float]  # baseline model, overall slice ({} without a baseline)
    per_class: Dict[int, Dict[str, float]]  # class id -> metric -> candidate value
    baseline_per_class: Dict[int, Dict[str, float]]
    confusion: List[List[float]]  # [true class id][predicted class id], TFMA's counts
    slices: List[Dict[str, Any]]  # {"slice", "example_count", "accuracy"} per slice
    validation_ok: Optional[bool]  # None: no validation result written
    failures: List[Failure]
    # {"metric", "class_id" (None: overall), "value" / "change": e.g. ">= 0.6" or ""}
    thresholds: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    # Bootstrap intervals of accuracy and per-class recall (None: no confusion matrix).
    intervals: Optional[Intervals] = None

    def failed(self, metric: str, class_id: Optional[int], is_change: bool) -> bool:
        return any(f.metric == metric and f.class_id == class_id and f.is_change == is_change
                   and f.slice == OVERALL for f in self.failures)

    @property
    def has_baseline(self) -> bool:
        return bool(self.baseline)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def slice_name(slice_key: Any) -> str:
    """'overall' or 'feature=value' (joined by ', ') for a SliceKey proto."""
    parts = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind) if kind else ""
        value = value.decode() if isinstance(value, bytes) else str(value)
        parts.append(f"{single.column}={value or EMPTY_VALUE}")
    return ", ".join(parts) or OVERALL


def _values(metrics_for_slice: Any) -> Iterator[Tuple[Any, float]]:
    for item in metrics_for_slice.metric_keys_and_values:
        if item.value.HasField("double_value"):
            yield item.key, item.value.double_value.value


def _read_metrics(uri: str, result: Evaluation) -> None:
    for metrics_for_slice in tfma.load_metrics(uri):
        name = slice_name(metrics_for_slice.slice_key)
        if name != OVERALL:
            values = {k.name: v for k, v in _values(metrics_for_slice)
                      if k.model_name != tfma.BASELINE_KEY and not k.is_diff
                      and not k.HasField("sub_key")}
            result.slices.append({"slice": name, EXAMPLE_COUNT: values.get(EXAMPLE_COUNT),
                                  ACCURACY: values.get(ACCURACY)})
            continue
        for key, value in _values(metrics_for_slice):
            if key.is_diff:
                continue  # recomputed from both sides where shown
            baseline = key.model_name == tfma.BASELINE_KEY
            if key.sub_key.HasField("class_id"):
                table = result.baseline_per_class if baseline else result.per_class
                table.setdefault(key.sub_key.class_id.value, {})[key.name] = value
            elif not key.HasField("sub_key"):
                (result.baseline if baseline else result.metrics)[key.name] = value
    result.slices.sort(key=lambda s: s["slice"])


def _read_confusion(uri: str) -> List[List[float]]:
    for plots in tfma.load_plots(uri):
        if slice_name(plots.slice_key) != OVERALL:
            continue
        for item in plots.plot_keys_and_values:
            if item.key.model_name == tfma.BASELINE_KEY or \
                    not item.value.HasField("multi_class_confusion_matrix_at_thresholds"):
                continue
            matrices = item.value.multi_class_confusion_matrix_at_thresholds.matrices
            matrix = min(matrices, key=lambda m: abs(m.threshold))  # threshold 0: the argmax
            size = 1 + max([max(e.actual_class_id, e.predicted_class_id)
                            for e in matrix.entries] or [-1])
            counts = [[0.0] * size for _ in range(size)]
            for e in matrix.entries:
                if e.predicted_class_id >= 0:  # -1: no prediction above the threshold
                    counts[e.actual_class_id][e.predicted_class_id] += e.num_weighted_examples
            return counts
    return []


def _value_bound(threshold: Any) -> str:
    parts = []
    if threshold.HasField("value_threshold"):
        bound = threshold.value_threshold
        if bound.HasField("lower_bound"):
            parts.append(f">= {bound.lower_bound.value:g}")
        if bound.HasField("upper_bound"):
            parts.append(f"<= {bound.upper_bound.value:g}")
    return " and ".join(parts)


def _change_bound(threshold: Any) -> str:
    parts = []
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        if change.HasField("absolute"):
            parts.append(f"diff >= {change.absolute.value:g}")
        if change.HasField("relative"):
            parts.append(f"relative diff >= {change.relative.value:g}")
    return " and ".join(parts)


def _describe_threshold(threshold: Any) -> str:
    return " and ".join(p for p in (_value_bound(threshold), _change_bound(threshold)) if p)


def thresholds_of(metric: tfma.MetricConfig) -> List[tfma.MetricThreshold]:
    """A metric's thresholds: per slice, then its own."""
    found = [t.threshold for t in metric.per_slice_thresholds]
    return found + ([metric.threshold] if metric.HasField("threshold") else [])


def _read_thresholds(uri: str) -> List[Dict[str, Any]]:
    """The thresholds as the Evaluator applied them (its completed config, in the output)."""
    config = eval_config_writer.load_eval_run(uri)[0]
    rows = []
    for spec in config.metrics_specs:
        class_ids = list(spec.binarize.class_ids.values) or [None]
        for metric in spec.metrics:
            name = json.loads(metric.config or "{}").get("name", metric.class_name)
            rows += [{"metric": name, "class_id": class_id, "value": _value_bound(threshold),
                      "change": _change_bound(threshold)}
                     for threshold in thresholds_of(metric) for class_id in class_ids]
    return rows


def _read_validation(uri: str, result: Evaluation) -> None:
    try:
        validation = tfma.load_validation_result(uri)
    except (FileNotFoundError, tf.errors.NotFoundError, IndexError):
        return
    if validation is None:
        return
    result.validation_ok = bool(validation.validation_ok)
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            value = failure.metric_value
            result.failures.append(Failure(
                metric=key.name,
                class_id=key.sub_key.class_id.value if key.sub_key.HasField("class_id") else None,
                is_change=key.is_diff,
                value=value.double_value.value if value.HasField("double_value") else None,
                threshold=_describe_threshold(failure.metric_threshold),
                slice=slice_name(per_slice.slice_key)))


def read_evaluation(uri: str) -> Evaluation:
    """Reads an Evaluator output (a ModelEvaluation artifact's uri)."""
    result = Evaluation(metrics={}, baseline={}, per_class={}, baseline_per_class={},
                        confusion=[], slices=[], validation_ok=None, failures=[])
    _read_metrics(uri, result)
    result.confusion = _read_confusion(uri)
    if result.confusion:
        result.intervals = bootstrap_intervals(result.confusion)
    _read_validation(uri, result)
    result.thresholds = _read_thresholds(uri)
    return result
