"""The Evaluator's own TFMA metrics (their names: names.py).

  accuracy, top_k_accuracy  TopKAccuracy (k = 1, and k = train.top_k capped at the class
                            count): a Beam combiner over the arrays TFMA already has
  precision, recall, f1     ArgmaxClassMetric, per class (binarize class_ids) for the
                            argmax decision; they agree with the confusion matrix
  auc                       TFMA's AUC, one-vs-rest per class
  the confusion matrix      TFMA's MultiClassConfusionMatrixPlot (threshold 0: the argmax)

TFMA finds these classes by module and name in the EvalConfig (tfma_config.py), wherever
the Evaluator runs; registering them here makes them known to its metric registry.
"""
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import (metric_types, metric_util,
                                               multi_class_confusion_matrix_metrics)

from components.artifacts.metric_names import ACCURACY, F1, PRECISION, RECALL, TOP_K_ACCURACY


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
        raise ValueError(f"label {true_class} is not a class id of {scores.size} scores (a "
                         "class missing from the train split is not in the vocabulary)")
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
