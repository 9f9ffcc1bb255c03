"""The Evaluator's EvalConfig: built from the config, completed from the models' labels."""
import json

import tensorflow_model_analysis as tfma

from components.artifacts import metric_names as names
from components.evaluator import tfma_config
from components.evaluator.config import EvalConfig

LABELS = ["cat", "dog", "bird"]


def _config():
    return tfma_config.eval_config(EvalConfig(min_class_recall=0.5, max_class_recall_drop=0.1,
                                              max_accuracy_drop=0.02), top_k=5)


def _per_class(config):
    return next(s for s in config.metrics_specs if s.binarize.HasField("class_ids"))


def _recall(spec):
    return next(m for m in spec.metrics if json.loads(m.config).get("kind") == "recall")


def _named(config, name):
    return next(m for s in config.metrics_specs for m in s.metrics
                if json.loads(m.config).get("name") == name)


def _top_k(config):
    return _named(config, names.TOP_K_ACCURACY)


def test_class_ids_and_top_k_come_from_the_candidates_labels():
    compiled = _config()
    assert list(_per_class(compiled).binarize.class_ids.values) == []  # unknown when compiled
    completed = tfma_config.complete_eval_config(compiled, LABELS)
    assert list(_per_class(completed).binarize.class_ids.values) == [0, 1, 2]
    assert json.loads(_top_k(completed).config)["k"] == 3  # 5 capped at the class count
    assert list(_per_class(compiled).binarize.class_ids.values) == []  # input untouched


def test_same_labels_keep_the_per_class_change_thresholds():
    completed = tfma_config.complete_eval_config(_config(), LABELS, list(LABELS))
    threshold = _recall(_per_class(completed)).per_slice_thresholds[0].threshold
    assert threshold.change_threshold.absolute.value == -0.1
    assert threshold.value_threshold.lower_bound.value == 0.5
    assert list(_per_class(completed).model_names) == []  # candidate and baseline


def test_other_labels_compare_per_class_metrics_for_the_candidate_only():
    """Class id i names another class in a baseline whose vocabulary differs: its
    per-class metrics are not comparable, overall accuracy still is."""
    completed = tfma_config.complete_eval_config(_config(), LABELS, ["dog", "cat", "bird"])
    per_class = _per_class(completed)
    assert list(per_class.model_names) == [tfma.CANDIDATE_KEY]
    threshold = _recall(per_class).per_slice_thresholds[0].threshold
    assert not threshold.HasField("change_threshold")
    assert threshold.value_threshold.lower_bound.value == 0.5
    accuracy = _named(completed, names.ACCURACY)
    assert accuracy.per_slice_thresholds[0].threshold.change_threshold.absolute.value == -0.02


def test_models_are_named_generic_savedmodels_with_the_tf_example_signature():
    spec = _config().model_specs[0]
    assert spec.model_type == tfma.TF_GENERIC
    assert spec.signature_name == "serving_tf_example"
    assert list(spec.preprocessing_function_names) == ["transform_features"]
