"""TFMA evaluation: the EvalConfig built from the typed config, the Evaluator that
completes it at run time, and its results read back.

Metrics (candidate, and baseline + difference when LatestBlessedModel found a blessed
model other than the candidate itself):
  overall   example_count, accuracy, top_k_accuracy (k = train.top_k, at most the class
            count; both TopKAccuracy, below), the multi-class confusion matrix (a plot, at
            threshold 0: the argmax)
  per class precision / recall / f1_score of the argmax decision (ArgmaxClassMetric:
            they agree with the confusion matrix) and one-vs-rest auc, for class ids
            0..n-1 (ids index the label vocabulary, the order of assets/labels.txt)
Slices: overall, true label, and eval.slice_features (features ingestion records).

Thresholds (the blessing): accuracy >= min_accuracy always (so validation always runs),
recall of every class >= min_class_recall when > 0; with a baseline also no drop beyond
max_accuracy_drop / max_class_recall_drop (a drop of 1 disables the check).

The class count: binarizing needs the class ids, but the label vocabulary exists only
after Transform, and the data root may not be readable where the pipeline is compiled
(Kubeflow) or may change per run. So the compiled config leaves the per-class class ids
empty, and this module's Evaluator fills them in from the candidate model's
assets/labels.txt just before TFMA runs. The vocabulary is ordered by label frequency:
when the baseline's labels differ (order or content), class id i names different classes
in the two models, so per-class metrics are computed for the candidate only and their
change thresholds dropped (logged); overall accuracy is still compared.
"""
import copy
import dataclasses
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tensorflow_model_analysis.metrics import (metric_types, metric_util,
                                               multi_class_confusion_matrix_metrics)
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils, proto_utils

from components.latest_blessed_model import executor as baseline_executor
from pipeline.config import PipelineConfig
from trainer import features

EXAMPLE_COUNT = "example_count"
ACCURACY = "accuracy"
TOP_K_ACCURACY = "top_k_accuracy"
PRECISION, RECALL, F1, AUC = "precision", "recall", "f1_score", "auc"
PER_CLASS_METRICS = (PRECISION, RECALL, F1, AUC)
CONFUSION_MATRIX = "multi_class_confusion_matrix_plot"
OVERALL = "overall"
EMPTY_VALUE = '""'  # how a slice on an empty feature value (e.g. no source_dir) is named
AUC_THRESHOLDS = 1000  # one-vs-rest AUC resolution; TFMA's default 10000 costs 10x memory
LABELS_FILE = "labels.txt"
# Blessing custom properties this Evaluator adds when a blessed model exists.
BASELINE_SERVING_VERSION = "baseline_serving_version"
BASELINE_IS_CANDIDATE = "baseline_is_candidate"  # 1: nothing was compared


# -- the per-class metric ------------------------------------------------------------------
class ArgmaxClassMetric(metric_types.Metric):
    """Precision, recall or F1 of one class (binarize class_ids) for the argmax decision.

    Derived from the multi-class confusion matrix at threshold 0 (the one the plot shows),
    so the per-class table and the matrix agree. TFMA's own Precision/Recall with top_k=1
    compute the same numbers but under a key that includes top_k, which thresholds never
    match (TFMA keys thresholds by the binarized class id only): a threshold on them
    always fails as "unchecked". This metric's key is the class id alone.
    """

    def __init__(self, kind: str = RECALL, name: Optional[str] = None):
        if kind not in (PRECISION, RECALL, F1):
            raise ValueError(f"kind must be {PRECISION}, {RECALL} or {F1}, got {kind!r}")
        super().__init__(metric_util.merge_per_key_computations(_argmax_class_computations),
                         kind=kind, name=name or kind)


metric_types.register_metric(ArgmaxClassMetric)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def _argmax_class_computations(kind: str, name: str, eval_config: Any = None,
                               model_name: str = "", output_name: str = "",
                               sub_key: Optional[metric_types.SubKey] = None,
                               example_weighted: bool = False
                               ) -> metric_types.MetricComputations:
    if sub_key is None or sub_key.class_id is None:
        raise ValueError(f"{ArgmaxClassMetric.__name__} needs binarize class_ids")
    class_id = sub_key.class_id
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 sub_key=sub_key, example_weighted=example_weighted)
    computations = multi_class_confusion_matrix_metrics.multi_class_confusion_matrices(
        thresholds=[0.0], eval_config=eval_config, model_name=model_name,
        output_name=output_name, example_weighted=example_weighted)
    matrices_key = computations[-1].keys[-1]

    def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
        entries = metrics[matrices_key][0.0]
        hits = sum(v for k, v in entries.items()
                   if k.actual_class_id == class_id and k.predicted_class_id == class_id)
        actual = sum(v for k, v in entries.items() if k.actual_class_id == class_id)
        predicted = sum(v for k, v in entries.items() if k.predicted_class_id == class_id)
        precision, recall = _ratio(hits, predicted), _ratio(hits, actual)
        values = {PRECISION: precision, RECALL: recall,
                  F1: _ratio(2 * hits, actual + predicted)}
        return {key: values[kind]}

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations


class TopKAccuracy(metric_types.Metric):
    """The (weighted) fraction of examples whose label is among the k best-scored classes;
    k=1 is accuracy. A class ranks by its score, ties broken by the lower class id, so k=1
    agrees with the argmax of the confusion matrix and the per-class metrics.

    A Beam combiner over the NumPy arrays TFMA already has. tf_keras'
    SparseCategoricalAccuracy / SparseTopKCategoricalAccuracy compute the same numbers,
    but TFMA runs a Keras metric by tracing its update_state for every slice and model:
    ~5 s of a ~16 s evaluation of the demo.
    """

    def __init__(self, k: int = 1, name: Optional[str] = None):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        super().__init__(metric_util.merge_per_key_computations(_top_k_accuracy_computations),
                         k=int(k), name=name or (ACCURACY if int(k) == 1 else TOP_K_ACCURACY))


metric_types.register_metric(TopKAccuracy)


def _top_k_accuracy_computations(k: int, name: str, eval_config: Any = None,
                                 model_name: str = "", output_name: str = "",
                                 sub_key: Optional[metric_types.SubKey] = None,
                                 example_weighted: bool = False
                                 ) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 sub_key=sub_key, example_weighted=example_weighted)
    return [metric_types.MetricComputation(
        keys=[key], preprocessors=None,
        combiner=_TopKAccuracyCombiner(key, k, eval_config, example_weighted))]


def label_rank(label: np.ndarray, scores: np.ndarray) -> int:
    """0-based rank of the true class among `scores` (higher first, ties: lower id first).
    `label` is a class id, or a one-hot / probability vector (its argmax)."""
    label = np.asarray(label)
    true_class = int(np.argmax(label)) if label.size > 1 else int(label.reshape(-1)[0])
    if not 0 <= true_class < scores.size:
        raise ValueError(f"label {true_class} is not a class id of {scores.size} scores")
    score = scores[true_class]
    return int(np.sum(scores > score) + np.sum(scores[:true_class] == score))


class _TopKAccuracyCombiner(beam.CombineFn):
    """Accumulates (weighted hits, total weight)."""

    def __init__(self, key: metric_types.MetricKey, k: int, eval_config: Any,
                 example_weighted: bool):
        self._key, self._k = key, k
        self._eval_config, self._example_weighted = eval_config, example_weighted

    def create_accumulator(self) -> List[float]:
        return [0.0, 0.0]

    def add_input(self, accumulator: List[float],
                  element: metric_types.StandardMetricInputs) -> List[float]:
        label, scores, weight = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._key.model_name,
            output_name=self._key.output_name, example_weighted=self._example_weighted,
            flatten=False, require_single_example_weight=True))
        scores = np.asarray(scores).reshape(-1)
        if scores.size < 2:
            raise ValueError(f"{self._key.name}: predictions must score every class, got "
                             f"shape {np.shape(scores)}")
        weight = float(weight)
        accumulator[0] += weight * (label_rank(label, scores) < self._k)
        accumulator[1] += weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[List[float]]) -> List[float]:
        hits = total = 0.0
        for h, t in accumulators:
            hits, total = hits + h, total + t
        return [hits, total]

    def extract_output(self, accumulator: List[float]
                       ) -> Dict[metric_types.MetricKey, float]:
        return {self._key: _ratio(*accumulator)}


# -- building ------------------------------------------------------------------------------
def _threshold(lower_bound: float, max_drop: float) -> Optional[tfma.MetricThreshold]:
    """A value threshold (when lower_bound > 0) and a change threshold (when max_drop < 1)."""
    threshold = tfma.MetricThreshold()
    if lower_bound > 0:
        threshold.value_threshold.lower_bound.value = lower_bound
    if max_drop < 1:
        # Passes while candidate - baseline >= -max_drop.
        threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
        threshold.change_threshold.absolute.value = -max_drop
    return threshold if threshold.ListFields() else None


def _metric(class_name: str, threshold: Optional[tfma.MetricThreshold] = None,
            **config: Any) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name=class_name, config=json.dumps(config))
    if threshold is not None:
        # On the overall slice only: MetricConfig.threshold would apply to every slice,
        # where small slices give undefined per-class metrics (NaN) that fail any check.
        metric.per_slice_thresholds.add(slicing_specs=[tfma.SlicingSpec()],
                                        threshold=threshold)
    return metric


def _native_metric(cls: type, threshold: Optional[tfma.MetricThreshold] = None,
                   **config: Any) -> tfma.MetricConfig:
    """A metric class of this module."""
    metric = _metric(cls.__name__, threshold, **config)
    metric.module = __name__  # how TFMA finds the class, wherever the Evaluator runs
    return metric


def _thresholds_of(metric: tfma.MetricConfig) -> List[tfma.MetricThreshold]:
    found = [t.threshold for t in metric.per_slice_thresholds]
    return found + ([metric.threshold] if metric.HasField("threshold") else [])


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """The Evaluator's EvalConfig for `config` (class ids: see complete_eval_config)."""
    ev = config.eval
    accuracy_threshold = _threshold(0, ev.max_accuracy_drop) or tfma.MetricThreshold()
    # Always present (0 passes everything): without a threshold TFX writes no blessing.
    accuracy_threshold.value_threshold.lower_bound.value = ev.min_accuracy
    overall = tfma.MetricsSpec(metrics=[
        _metric("ExampleCount", name=EXAMPLE_COUNT),
        _native_metric(TopKAccuracy, accuracy_threshold, name=ACCURACY, k=1),
        _native_metric(TopKAccuracy, name=TOP_K_ACCURACY, k=config.train.top_k),
        _metric("MultiClassConfusionMatrixPlot", name=CONFUSION_MATRIX),
    ])
    per_class = tfma.MetricsSpec(
        binarize=tfma.BinarizationOptions(class_ids={"values": []}),  # filled at run time
        metrics=[
            _native_metric(ArgmaxClassMetric, kind=PRECISION, name=PRECISION),
            _native_metric(ArgmaxClassMetric, _threshold(ev.min_class_recall,
                                                         ev.max_class_recall_drop),
                           kind=RECALL, name=RECALL),
            _native_metric(ArgmaxClassMetric, kind=F1, name=F1),
            _metric("AUC", name=AUC, num_thresholds=AUC_THRESHOLDS),
        ])
    slices = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL_KEY])]
    slices += [tfma.SlicingSpec(feature_keys=[f]) for f in ev.slice_features
               if f != features.LABEL_KEY]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            # Said, not guessed: TFMA otherwise tries to load each model with tf_keras first.
            model_type=tfma.TF_GENERIC,
            signature_name="serving_tf_example",
            preprocessing_function_names=["transform_features"],
            label_key=features.LABEL_ID_KEY,
            prediction_key="probabilities",
            inference_batch_size=ev.inference_batch_size)],
        slicing_specs=slices,
        metrics_specs=[overall, per_class])


def complete_eval_config(config: tfma.EvalConfig, labels: Sequence[str],
                         baseline_labels: Optional[Sequence[str]] = None) -> tfma.EvalConfig:
    """Fills the empty per-class class ids with the candidate's 0..n-1 and caps top-k at n."""
    out = copy.deepcopy(config)
    comparable = baseline_labels is None or list(baseline_labels) == list(labels)
    for spec in out.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name == TopKAccuracy.__name__ and \
                    json.loads(metric.config or "{}").get("name") == TOP_K_ACCURACY:
                options = json.loads(metric.config or "{}")
                options["k"] = min(int(options.get("k", 1)), len(labels))
                metric.config = json.dumps(options)
        if not spec.binarize.HasField("class_ids") or spec.binarize.class_ids.values:
            continue
        spec.binarize.class_ids.values.extend(range(len(labels)))
        if not comparable:
            logging.warning("the baseline's labels %s differ from the candidate's %s: "
                            "per-class metrics for the candidate only, without change "
                            "thresholds", list(baseline_labels), list(labels))
            spec.model_names[:] = [tfma.CANDIDATE_KEY]
            for metric in spec.metrics:
                for threshold in _thresholds_of(metric):
                    threshold.ClearField("change_threshold")
                kept = [t for t in metric.per_slice_thresholds if t.threshold.ListFields()]
                del metric.per_slice_thresholds[:]
                metric.per_slice_thresholds.extend(kept)
                if metric.HasField("threshold") and not metric.threshold.ListFields():
                    metric.ClearField("threshold")
    return out


def read_labels(model_dir: str) -> List[str]:
    """The label vocabulary an exported model ships (class id = line number)."""
    with tf.io.gfile.GFile(os.path.join(model_dir, "assets", LABELS_FILE)) as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def model_labels(model_uri: str) -> List[str]:
    """read_labels of the model in a Model artifact's folder."""
    return read_labels(path_utils.serving_model_path(model_uri))


def _property(artifact: Any, name: str, default: int) -> int:
    return artifact.get_int_custom_property(name) if artifact.has_custom_property(name) \
        else default


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor, after deciding whether there is a baseline to compare
    with and completing the EvalConfig from the models' labels.

    LatestBlessedModel's output is compared with unless it found nothing, or found the
    candidate itself (a re-run whose Trainer was cached: a comparison would be with
    itself, so the candidate is evaluated alone and change thresholds do not apply). A
    Model without its properties (e.g. from a TFX Resolver) is always compared with.
    """

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        key = standard_component_specs.EVAL_CONFIG_KEY
        config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[key], config)
        labels = model_labels(artifact_utils.get_single_uri(
            input_dict[standard_component_specs.MODEL_KEY]))
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        baseline = baselines[0] if baselines else None
        found = baseline is not None and _property(baseline, baseline_executor.FOUND, 1) == 1
        itself = found and _property(baseline, baseline_executor.SAME_AS_CANDIDATE, 0) == 1
        inputs = dict(input_dict)
        if not found or itself:
            inputs.pop(standard_component_specs.BASELINE_MODEL_KEY, None)
        completed = complete_eval_config(
            config, labels, model_labels(baseline.uri) if found and not itself else None)
        super().Do(inputs, output_dict,
                   {**exec_properties, key: proto_utils.proto_to_json(completed)})
        if found and baseline.has_custom_property(baseline_executor.SERVING_VERSION):
            blessing = artifact_utils.get_single_instance(
                output_dict[standard_component_specs.BLESSING_KEY])
            blessing.set_int_custom_property(
                BASELINE_SERVING_VERSION,
                baseline.get_int_custom_property(baseline_executor.SERVING_VERSION))
            blessing.set_int_custom_property(BASELINE_IS_CANDIDATE, int(itself))


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator running EvaluatorExecutor (compiled by its import path)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)


# -- reading -------------------------------------------------------------------------------
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
            f"{self.metric} of class {_label(self.class_id, labels)}"
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

    def failed(self, metric: str, class_id: Optional[int], is_change: bool) -> bool:
        return any(f.metric == metric and f.class_id == class_id and f.is_change == is_change
                   and f.slice == OVERALL for f in self.failures)

    @property
    def has_baseline(self) -> bool:
        return bool(self.baseline)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _label(class_id: int, labels: Sequence[str]) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else f"#{class_id}"


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


def _read_thresholds(uri: str) -> List[Dict[str, Any]]:
    """The thresholds as the Evaluator applied them (its completed config, in the output)."""
    from tensorflow_model_analysis.writers import eval_config_writer

    config = eval_config_writer.load_eval_run(uri)[0]
    rows = []
    for spec in config.metrics_specs:
        class_ids = list(spec.binarize.class_ids.values) or [None]
        for metric in spec.metrics:
            name = json.loads(metric.config or "{}").get("name", metric.class_name)
            rows += [{"metric": name, "class_id": class_id, "value": _value_bound(threshold),
                      "change": _change_bound(threshold)}
                     for threshold in _thresholds_of(metric) for class_id in class_ids]
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
    _read_validation(uri, result)
    result.thresholds = _read_thresholds(uri)
    return result
