"""TopKAccuracy, the Evaluator's accuracy and top-k accuracy, against tf_keras' metrics."""
import numpy as np
import pytest
import tf_keras
from tensorflow_model_analysis.metrics import metric_types

from components.artifacts import metric_names as names
from components.evaluator import metrics


def _combine(k, labels, scores, weights=None, chunks=3):
    """Runs the metric's combiner as Beam would: inputs split over accumulators, merged."""
    computation, = metrics.TopKAccuracy(k=k).computations(
        example_weighted=weights is not None)
    combiner = computation.combiner
    accumulators = []
    for part in np.array_split(np.arange(len(labels)), chunks):
        acc = combiner.create_accumulator()
        for i in part:
            weight = 1.0 if weights is None else weights[i]
            acc = combiner.add_input(acc, metric_types.StandardMetricInputs(
                labels=np.array([labels[i]]), predictions=scores[i],
                example_weights=np.array([weight])))
        accumulators.append(acc)
    result, = combiner.extract_output(combiner.merge_accumulators(accumulators)).values()
    return result


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(7), size=300)  # no ties
    labels = rng.integers(0, 7, size=300)
    return labels, scores


@pytest.mark.parametrize("k", [1, 3, 7])
def test_equals_keras_sparse_top_k_accuracy(data, k):
    labels, scores = data
    keras_metric = (tf_keras.metrics.SparseCategoricalAccuracy() if k == 1
                    else tf_keras.metrics.SparseTopKCategoricalAccuracy(k=k))
    keras_metric.update_state(labels, scores)
    assert _combine(k, labels, scores) == pytest.approx(float(keras_metric.result()), abs=1e-7)


def test_weighted_like_keras(data):
    labels, scores = data
    weights = np.linspace(0.1, 2.0, len(labels))
    keras_metric = tf_keras.metrics.SparseTopKCategoricalAccuracy(k=2)
    keras_metric.update_state(labels, scores, sample_weight=weights)
    assert _combine(2, labels, scores, weights) == pytest.approx(float(keras_metric.result()),
                                                                abs=1e-6)
    assert _combine(2, labels, scores, weights) != pytest.approx(_combine(2, labels, scores))


def test_ties_rank_the_lower_class_id_first_like_argmax():
    scores = np.array([0.4, 0.4, 0.2])
    assert metrics.label_rank(0, scores) == 0 and metrics.label_rank(1, scores) == 1
    assert _combine(1, [0, 1], [scores, scores], chunks=1) == 0.5  # argmax picks class 0
    assert metrics.label_rank(np.array([0.0, 0.0, 1.0]), scores) == 2  # one-hot label


def test_metric_keys_and_bad_input():
    assert metrics.TopKAccuracy().computations()[0].keys[0].name == names.ACCURACY
    assert metrics.TopKAccuracy(k=5).computations()[0].keys[0].name == \
        names.TOP_K_ACCURACY
    with pytest.raises(ValueError, match="k must be >= 1"):
        metrics.TopKAccuracy(k=0)
    with pytest.raises(ValueError, match="not a class id of 3 scores"):
        metrics.label_rank(3, np.array([0.2, 0.3, 0.5]))



def test_a_nan_recall_never_reaches_a_gate():
    from components.evaluator.executor import undefined_gated_metrics
    from components.artifacts.evaluation import Evaluation

    def evaluation(recall_b: float) -> Evaluation:
        return Evaluation(metrics={names.ACCURACY: 0.9}, baseline={},
                          per_class={0: {names.RECALL: 0.8, "precision": float("nan")},
                                     1: {names.RECALL: recall_b}},
                          baseline_per_class={}, confusion=[], slices=[],
                          validation_ok=True, failures=[])

    assert undefined_gated_metrics(evaluation(0.5), ["a", "solo"]) == []
    assert undefined_gated_metrics(evaluation(float("nan")), ["a", "solo"]) == [
        f"{names.RECALL} of class 'solo'"]
