"""The compiled spec, run: every container task's command and arguments executed on this
machine (outside containers) in DAG order with KFP-style executor input, on a tiny
dataset, with run-time parameter values that differ from the compiled defaults.

Every task is a container, the baseline lookup too: on the first run LatestBlessedModel
finds nothing and the Evaluator runs alone; a second run (a new Trainer model, upstream
as cached) finds the first run's pushed model and the Evaluator compares with it.
ImageExampleGen runs as open-source KFP runs it (without the lifecycle preCacheCheck
hook), and once more after the hook, as Vertex AI runs it."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from local_launcher import LocalLauncher
from pipeline.runners import kubeflow
from pipeline.config import load_config
from pipeline.data_source import write_demo_digits
from pipeline.pipeline import runtime_parameter_values

pytestmark = pytest.mark.slow  # 10-15 minutes on 2 cores: thirteen TFX task processes

TINY = ("train.backbone=efficientnet_lite0", "train.weights=imagenet", "train.image_size=32",
        "train.phase1_epochs=1", "train.phase2_epochs=1", "train.augment=false",
        "train.batch_size=32", "registry.enabled=false", "beam.kubeflow_direct_num_workers=1")
# Compiled defaults a run must override for the assertions below to hold.
COMPILED = ("data.source=gs://imgpipe-data/not-this-one", "train.top_k=5",
            "eval.min_accuracy=1.0")
AT_RUN_TIME = ("train.top_k=1", "eval.min_accuracy=0.0")
SECOND_RUN = ("Trainer", "LatestBlessedModel", "Evaluator", "Pusher")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("kfp_local")
    data = Path(write_demo_digits(str(work / "data"), classes=(0, 1)))
    cluster = (f"kubeflow.pipeline_root={work / 'root'}",
               f"serving_root={work / 'serving'}")
    config = kubeflow.cluster_config(load_config(overrides=TINY + COMPILED + cluster))
    spec = kubeflow.compile_spec(config)["pipelineSpec"]
    values = runtime_parameter_values(load_config(overrides=TINY + AT_RUN_TIME), str(data))
    results = LocalLauncher(spec, values, work / "tasks").run()
    # A second run from the first's upstream results, retraining with another seed.
    retrain = runtime_parameter_values(
        load_config(overrides=TINY + AT_RUN_TIME + ("train.seed=7",)), str(data))
    upstream = {k: v for k, v in results.items() if k not in SECOND_RUN}
    second = LocalLauncher(spec, retrain, work / "tasks2", previous=upstream).run(SECOND_RUN)
    for name, result in [*results.items(), *((f"{k} (2nd)", second[k]) for k in SECOND_RUN)]:
        print(f"{name}: {result.seconds:.1f} s")
    return {"results": results, "second": second, "data": data, "serving": work / "serving",
            "spec": spec}


def _uri(run, task, key, which="results"):
    return Path(run[which][task].outputs[key]["uri"])


def test_every_task_ran(run):
    assert set(run["results"]) == set(run["spec"]["root"]["dag"]["tasks"])
    assert {"ImageExampleGen", "Transform", "Trainer", "LatestBlessedModel"} <= set(
        run["results"])


def test_examples_are_readable_and_came_from_the_run_time_data_root(run):
    examples = _uri(run, "ImageExampleGen", "examples")
    files = list(examples.glob("Split-*/*.gz"))
    assert {f.parent.name for f in files} == {"Split-train", "Split-eval"}
    records = list(tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP"))
    images = sum(1 for p in run["data"].rglob("*.png"))
    assert len(records) == images
    example = tf.train.Example.FromString(records[0].numpy())
    assert example.features.feature  # tf.Example with features
    metadata = run["results"]["ImageExampleGen"].outputs["examples"]["metadata"]
    assert metadata["files_seen"] == images and metadata["ingested_count"] == images


def test_transform_graph_loads(run):
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(str(_uri(run, "Transform", "transform_graph")))
    assert output.transformed_feature_spec()
    assert list(_uri(run, "Transform", "transformed_examples").glob("Split-train/*"))


def _png_bytes(run) -> bytes:
    buf = io.BytesIO()
    Image.open(next(run["data"].rglob("*.png"))).save(buf, "PNG")
    return buf.getvalue()


def test_trained_model_loads_and_serves_with_the_run_time_train_config(run):
    model = tf.saved_model.load(str(_uri(run, "Trainer", "model") / "Format-Serving"))
    out = model.signatures["serving_default"](image_bytes=tf.constant([_png_bytes(run)]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (1, 2)
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-5)
    assert out["top_k_class_ids"].shape[-1] == 1  # train.top_k=1 came from the run


def test_evaluator_used_the_run_time_thresholds_and_the_model_was_pushed(run):
    blessing = _uri(run, "Evaluator", "blessing")
    assert (blessing / "BLESSED").exists(), "min_accuracy=0.0 from the run should bless"
    pushed = run["results"]["Pusher"].outputs["pushed_model"]["metadata"]
    assert pushed.get("pushed") in (1, 1.0, True), json.dumps(pushed)
    assert pushed.get("pushed_version") == "1", json.dumps(pushed)
    tf.saved_model.load(str(run["serving"] / "image_classifier" / "1"))


def test_example_gen_also_runs_after_its_pre_cache_check_hook(run, tmp_path):
    """Vertex AI runs TFX's span/fingerprint driver (lifecycle.preCacheCheck) before the
    executor, which then reads the driver's exec properties from the output file."""
    launcher = LocalLauncher(run["spec"], {"data_root": str(run["data"])}, tmp_path,
                             run_pre_cache_check=True)
    result = launcher.run(only=["SpanListing", "ImageExampleGen"])["ImageExampleGen"]
    log = result.log.read_text()
    assert "Traceback" not in log
    assert "'input_fingerprint'" in log  # the executor saw the driver's fingerprint
    assert list(Path(result.outputs["examples"]["uri"]).glob("Split-train/*.gz"))


def test_first_run_found_no_baseline(run):
    baseline = run["results"]["LatestBlessedModel"].outputs["baseline_model"]["metadata"]
    assert baseline["found"] == 0
    assert not list(_uri(run, "LatestBlessedModel", "baseline_model").glob("**/*.pb"))


def test_second_run_compares_with_the_first_runs_pushed_model(run):
    from components.artifacts import evaluation as results
    from components.artifacts.metric_names import ACCURACY

    baseline = run["second"]["LatestBlessedModel"].outputs["baseline_model"]
    assert baseline["metadata"]["found"] == 1 and baseline["metadata"]["serving_version"] == 1
    assert baseline["metadata"]["same_as_candidate"] == 0
    assert baseline["metadata"]["source_model_uri"] == str(_uri(run, "Trainer", "model"))
    # The copy is the pushed SavedModel, in a Model artifact's layout.
    tf.saved_model.load(str(Path(baseline["uri"]) / "Format-Serving"))
    result = results.read_evaluation(str(_uri(run, "Evaluator", "evaluation", "second")))
    assert result.has_baseline and ACCURACY in result.baseline
    blessing = run["second"]["Evaluator"].outputs["blessing"]["metadata"]
    assert blessing["baseline_serving_version"] == 1
    assert blessing["baseline_is_candidate"] == 0
    pushed = run["second"]["Pusher"].outputs["pushed_model"]["metadata"]
    versions = sorted(p.name for p in (run["serving"] / "image_classifier").iterdir()
                      if p.name.isdigit())  # beside them: data_reference/
    assert versions == (["1", "2"] if blessing["blessed"] else ["1"]), json.dumps(pushed)
