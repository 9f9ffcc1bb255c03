"""The Evaluator's tfma.EvalConfig: built from the eval section when the pipeline is
compiled, completed from the models' labels when the Evaluator runs.

Metrics (candidate, and baseline + difference when LatestBlessedModel found a blessed
model other than the candidate itself): see metrics.py, for class ids 0..n-1 (ids index
the label vocabulary, the order of assets/labels.txt). Slices: overall, true label, and
eval.slice_features (features ingestion records).

Thresholds (the blessing): accuracy >= min_accuracy always (so validation always runs),
recall of every class >= min_class_recall when > 0; with a baseline also no drop beyond
max_accuracy_drop / max_class_recall_drop (a drop of 1 disables the check).

The class count: binarizing needs the class ids, but the label vocabulary exists only
after Transform, and the data root may not be readable where the pipeline is compiled
(Kubeflow) or may change per run. So the compiled config leaves the per-class class ids
empty, and the Evaluator fills them in from the candidate model's labels just before
TFMA runs (complete_eval_config). The vocabulary is ordered by label frequency: when the
baseline's labels differ (order or content), class id i names different classes in the
two models, so per-class metrics are computed for the candidate only and their change
thresholds dropped (logged); overall accuracy is still compared.
"""
import copy
import json
from typing import Any, Optional, Sequence

import tensorflow_model_analysis as tfma
from absl import logging

from components.artifacts.evaluation import thresholds_of
from components.artifacts.metric_names import (ACCURACY, AUC, CONFUSION_MATRIX, EXAMPLE_COUNT,
                                               F1, PRECISION, RECALL, TOP_K_ACCURACY)
from components.evaluator import metrics
from components.evaluator.config import EvalConfig
from components.evaluator.metrics import ArgmaxClassMetric, TopKAccuracy
from trainer import contract, features

AUC_THRESHOLDS = 1000  # one-vs-rest AUC resolution; TFMA's default 10000 costs 10x memory


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
    """A metric class of metrics.py."""
    metric = _metric(cls.__name__, threshold, **config)
    metric.module = metrics.__name__  # how TFMA finds the class, wherever the Evaluator runs
    return metric


def eval_config(ev: EvalConfig, top_k: int) -> tfma.EvalConfig:
    """The Evaluator's EvalConfig for the eval section and the model's top k (train.top_k);
    class ids: see complete_eval_config."""
    accuracy_threshold = _threshold(0, ev.max_accuracy_drop) or tfma.MetricThreshold()
    # Always present (0 passes everything): without a threshold TFX writes no blessing.
    accuracy_threshold.value_threshold.lower_bound.value = ev.min_accuracy
    overall = tfma.MetricsSpec(metrics=[
        _metric("ExampleCount", name=EXAMPLE_COUNT),
        _native_metric(TopKAccuracy, accuracy_threshold, name=ACCURACY, k=1),
        _native_metric(TopKAccuracy, name=TOP_K_ACCURACY, k=top_k),
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
            signature_name=contract.TF_EXAMPLE_SIGNATURE,
            preprocessing_function_names=[contract.TRANSFORM_SIGNATURE],
            label_key=features.LABEL_ID_KEY,
            prediction_key=contract.PROBABILITIES,
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
                for threshold in thresholds_of(metric):
                    threshold.ClearField("change_threshold")
                kept = [t for t in metric.per_slice_thresholds if t.threshold.ListFields()]
                del metric.per_slice_thresholds[:]
                metric.per_slice_thresholds.extend(kept)
                if metric.HasField("threshold") and not metric.threshold.ListFields():
                    metric.ClearField("threshold")
    return out
