"""End to end: one real local pipeline run (and a re-run), shared via the `e2e` fixture."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

COMPONENTS = {"SpanListing", "ImageExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
              "DataGuard", "Transform", "Trainer", "LatestBlessedModel", "Evaluator", "Pusher",
              "DataReference"}
UPSTREAM = {"SpanListing", "ImageExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
            "Transform",
            "Trainer"}


def test_first_run_executes_every_component_once(e2e):
    executions = e2e["first"].executions
    assert set(executions) == COMPONENTS
    assert {executions[c] for c in COMPONENTS} == {"COMPLETE"}


def test_every_file_is_ingested_or_rejected(e2e):
    first = e2e["first"]
    assert first.files_seen == e2e["files"]
    assert first.ingested + first.rejected == e2e["files"]
    assert first.rejected == e2e["rejected_expected"]
    with open(first.rejection_report) as f:
        rejected = f.read()
    for name in ("empty.png", "notes.txt", "download.jpg"):
        assert name in rejected


def test_first_model_is_blessed_and_pushed_without_baseline(e2e):
    first = e2e["first"]
    assert first.had_baseline is False
    assert first.accuracy is not None and first.accuracy >= e2e["config"].eval.min_accuracy
    assert first.blessed is True
    assert first.pushed_to and os.path.isdir(first.pushed_to)
    assert first.pushed_to.startswith(e2e["config"].serving_dir)


def _real_jpeg() -> bytes:
    from PIL import Image
    from skimage import data as skdata

    buf = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_pushed_model_serves_encoded_bytes(e2e):
    model = tf.saved_model.load(e2e["first"].pushed_to)
    assert {"serving_default", "serving_tf_example", "transform_features"} <= set(model.signatures)
    out = model.signatures["serving_default"](image_bytes=tf.constant([_real_jpeg()]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (1, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    names = [n.decode() for n in out["top_k_class_names"].numpy()[0]]
    assert set(names) == {"0", "1", "2"}
    assert out["top_k_class_ids"].numpy()[0][0] == np.argmax(probabilities[0])


def test_rerun_is_cached_upstream_and_finds_the_first_model_as_baseline(e2e):
    second = e2e["second"]
    assert {second.executions[c] for c in UPSTREAM} == {"CACHED"}
    # The baseline lookup is never cached: it found what the first run pushed, which is
    # the very model the cached Trainer hands on, so that model was evaluated alone.
    assert second.executions["LatestBlessedModel"] == "COMPLETE"
    assert second.had_baseline is True and second.baseline_version == 1
    assert second.baseline_is_candidate is True
    assert second.accuracy == pytest.approx(e2e["first"].accuracy)
    assert "baseline version 1 is this same model" in "\n".join(second.lines())


def _first(root: str, component: str, output: str) -> str:
    """The first run's output of `component` (execution ids grow with each run)."""
    folder = os.path.join(root, component, output)
    return os.path.join(folder, min(os.listdir(folder), key=int))


def test_reported_metrics_are_the_pushed_models_own_on_the_eval_split(e2e):
    """Accuracy and top-k accuracy as TFMA reports them equal what the pushed model
    predicts for the eval split's serialized examples, scored here with NumPy."""
    from components.artifacts import evaluation, model_contract
    from components.evaluator import metrics
    from components.artifacts.metric_names import ACCURACY, EXAMPLE_COUNT, RECALL, TOP_K_ACCURACY
    from trainer import features

    config, first = e2e["config"], e2e["first"]
    root = config.pipeline_root
    model = tf.saved_model.load(first.pushed_to)
    labels = model_contract.read_labels(first.pushed_to)
    files = tf.io.gfile.glob(os.path.join(_first(root, "ImageExampleGen", "examples"),
                                          "Split-eval", "*"))
    scores, truth = [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(64):
        scores.append(model.signatures["serving_tf_example"](examples=batch)
                      ["probabilities"].numpy())
        for record in batch.numpy():
            label = tf.train.Example.FromString(record).features.feature[features.LABEL_KEY]
            truth.append(labels.index(label.bytes_list.value[0].decode()))
    scores, truth = np.concatenate(scores), np.array(truth)
    ranks = np.array([metrics.label_rank(t, s) for t, s in zip(truth, scores)])
    k = min(config.train.top_k, len(labels))

    reported = evaluation.read_evaluation(_first(root, "Evaluator", "evaluation"))
    assert reported.metrics[EXAMPLE_COUNT] == len(truth)
    assert reported.metrics[ACCURACY] == pytest.approx(
        np.mean(np.argmax(scores, axis=1) == truth))
    assert reported.metrics[TOP_K_ACCURACY] == pytest.approx(np.mean(ranks < k))
    assert first.accuracy == pytest.approx(reported.metrics[ACCURACY])
    for class_id in range(len(labels)):  # the label slice's accuracy is the class's recall
        name = f"{features.LABEL_KEY}={labels[class_id]}"
        by_label = next(s for s in reported.slices if s["slice"] == name)
        assert by_label[ACCURACY] == pytest.approx(reported.per_class[class_id][RECALL])


def test_accuracy_and_recall_carry_bootstrap_intervals_everywhere(e2e):
    """The summary, the model card and the MLflow run all state the same 95% intervals,
    computed from the Evaluator's own confusion matrix, around the reported values."""
    from components.artifacts import confidence, evaluation, model_contract
    from components.serving import mlflow_registry, serving_root

    config, first = e2e["config"], e2e["first"]
    reported = evaluation.read_evaluation(_first(config.pipeline_root, "Evaluator", "evaluation"))
    intervals = confidence.bootstrap_intervals(reported.confusion)
    assert reported.intervals == intervals
    low, high = intervals.accuracy
    assert low <= first.accuracy <= high and high - low > 0
    assert first.accuracy_interval == [low, high]
    line = next(x for x in first.lines() if x.startswith("eval accuracy"))
    assert f"95% CI {low:.3f}-{high:.3f}" in line
    assert [name for name, _, _ in first.class_recall] == model_contract.read_labels(first.pushed_to)
    assert any(x.startswith("recall by class (95% CI)") for x in first.lines())

    with open(os.path.join(first.pushed_to, serving_root.CARD_FILE)) as f:
        card = json.load(f)
    assert card["confidence_intervals"]["accuracy"] == [low, high]
    assert set(card["confidence_intervals"]["recall"]) == set(card["per_class"])
    client = mlflow_registry.connect(config.registry_uri)
    run = client.get_run(mlflow_registry.champion(client, config.registry_model_name).run_id)
    assert run.data.metrics["accuracy_ci_low"] == pytest.approx(low)
    assert run.data.metrics["accuracy_ci_high"] == pytest.approx(high)
