"""The nightly schedule on the compiled spec, with KFP's cache decided by KFP's cache key.

Four runs of the compiled tasks (local_launcher.py), each a new run (new artifact names,
as KFP makes them), over one ExecutionCache that outlives them:
1. span 1: every task runs;
2. nothing new: ImageExampleGen to Trainer are cache hits (SpanListing and
   LatestBlessedModel are never cached; the Evaluator takes the baseline's new artifact);
3. span 2 arrives: ImageExampleGen runs and ingests span 2 only; Transform, Trainer and
   the Evaluator run, against the model run 1 pushed;
4. span 3 arrives, compiled with data.window_spans=2: span 3 ingested, span 1 left out.
ImageExampleGen runs without TFX's preCacheCheck hook, as open-source KFP runs it.
"""
import shutil
from pathlib import Path

import pytest

from local_launcher import ExecutionCache, LocalLauncher
from pipeline.runners import kubeflow
from pipeline.config import load_config
from pipeline.data_source import write_demo_digits
from pipeline.pipeline import runtime_parameter_values

pytestmark = pytest.mark.slow  # four runs of the compiled tasks

TINY = ("train.backbone=efficientnet_lite0", "train.weights=imagenet", "train.image_size=32",
        "train.phase1_epochs=2", "train.phase2_epochs=0", "train.batch_size=32",
        "eval.min_accuracy=0", "eval.max_accuracy_drop=1", "eval.max_class_recall_drop=1",
        "registry.enabled=false", "beam.kubeflow_direct_num_workers=1")
UPSTREAM = ("ImageExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
            "Trainer")
PER_SPAN = 20


@pytest.fixture(scope="module")
def schedule(tmp_path_factory):
    work = tmp_path_factory.mktemp("kfp_schedule")
    digits = Path(write_demo_digits(str(work / "digits"), classes=(0, 1)))
    photos = work / "photos"
    for span in ("1", "2", "3"):
        for label in ("0", "1"):
            files = sorted((digits / label).iterdir())[(int(span) - 1) * PER_SPAN:][:PER_SPAN]
            (work / "arriving" / span / label).mkdir(parents=True)
            for f in files:
                shutil.copy2(f, work / "arriving" / span / label / f.name)
    cluster = (f"kubeflow.pipeline_root={work / 'root'}",
               f"serving_root={work / 'serving'}",
               "data.source=/compiled/default/{SPAN}")
    cache = ExecutionCache(work / "kfp_cache.json")
    runs = []

    def run(*overrides):
        config = kubeflow.cluster_config(load_config(overrides=TINY + cluster + overrides))
        spec = kubeflow.compile_spec(config)["pipelineSpec"]
        values = runtime_parameter_values(config, str(photos))
        launcher = LocalLauncher(spec, values, work / f"run{len(runs) + 1}",
                                 cache=ExecutionCache(cache.path))
        runs.append(launcher.run())

    photos.mkdir()
    shutil.move(str(work / "arriving" / "1"), str(photos / "1"))
    run()
    run()
    shutil.move(str(work / "arriving" / "2"), str(photos / "2"))
    run()
    shutil.move(str(work / "arriving" / "3"), str(photos / "3"))
    run("data.window_spans=2")
    for i, results in enumerate(runs, 1):
        print(f"run {i}: " + ", ".join(f"{k} {'cached' if r.cached else f'{r.seconds:.0f} s'}"
                                       for k, r in results.items()))
    return runs


def _examples(results) -> dict:
    return results["ImageExampleGen"].outputs["examples"]["metadata"]


def test_first_run_runs_every_task(schedule):
    first = schedule[0]
    assert not any(r.cached for r in first.values())
    assert _examples(first)["newly_ingested_count"] == 2 * PER_SPAN
    assert _examples(first)["ingested_spans"] == "1"


def test_nothing_new_takes_ingestion_to_training_from_kfps_cache(schedule):
    second = schedule[1]
    assert {name for name, r in second.items() if r.cached} == set(UPSTREAM)
    assert second["SpanListing"].parameters == schedule[0]["SpanListing"].parameters
    baseline = second["LatestBlessedModel"].outputs["baseline_model"]["metadata"]
    assert baseline["found"] == 1 and baseline["same_as_candidate"] == 1


def test_a_new_span_is_ingested_alone_and_compared_with_the_champion(schedule):
    third = schedule[2]
    assert not any(r.cached for r in third.values())
    assert _examples(third)["ingested_spans"] == "2"
    assert _examples(third)["newly_ingested_count"] == 2 * PER_SPAN
    assert _examples(third)["ingested_count"] == 4 * PER_SPAN
    blessing = third["Evaluator"].outputs["blessing"]["metadata"]
    assert blessing["baseline_serving_version"] == 1 and blessing["baseline_is_candidate"] == 0


def test_the_window_of_two_leaves_the_first_span_out(schedule):
    fourth = schedule[3]
    assert _examples(fourth)["window_spans"] == "2,3"
    assert _examples(fourth)["ingested_spans"] == "3"
    assert _examples(fourth)["ingested_count"] == 4 * PER_SPAN
    assert not fourth["Trainer"].cached and not fourth["Evaluator"].cached
