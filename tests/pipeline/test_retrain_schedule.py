"""A nightly schedule on the local runner, on spans of tiny data: four runs.

1. span 1: everything runs;
2. nothing new: ingestion to training from the cache (only the baseline lookup and what
   depends on its answer run);
3. span 2 arrives: only it is ingested; Transform, training and evaluation run, against
   the model run 1 pushed;
4. span 3 arrives with data.window_spans=2: only span 3 is ingested and span 1 is left out.
Retrains start from the champion's weights (train.warm_start: champion).
"""
import os
import shutil
from pathlib import Path

import pytest
import tensorflow as tf

from trainer import features

TINY = ("train.backbone=efficientnet_lite0", "train.weights=imagenet", "train.image_size=32",
        "train.phase1_epochs=2", "train.phase2_epochs=0", "train.batch_size=32",
        "eval.min_accuracy=0", "eval.max_accuracy_drop=1", "eval.max_class_recall_drop=1",
        "registry.enabled=false")
INGESTION_TO_TRAINING = ("SpanListing", "ImageExampleGen", "StatisticsGen", "SchemaGen",
                         "ExampleValidator", "Transform", "Trainer")
PER_SPAN = 20  # images per class per span


def _write_spans(source: Path, spans_dir: Path) -> dict:
    """Digits 0 and 1 cut into three spans of PER_SPAN images per class."""
    from pipeline.data_source import write_demo_digits

    write_demo_digits(str(source), classes=(0, 1))
    counts = {}
    for span in ("1", "2", "3"):
        for label in ("0", "1"):
            files = sorted(os.listdir(source / label))
            start = (int(span) - 1) * PER_SPAN
            target = spans_dir / span / label
            target.mkdir(parents=True)
            for name in files[start:start + PER_SPAN]:
                shutil.copy2(source / label / name, target / name)
        counts[span] = 2 * PER_SPAN
    return counts


def _ids_by_split(examples_uri: str) -> dict:
    splits = {}
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
        splits[split] = {
            tf.train.Example.FromString(r.numpy()).features.feature[features.IMAGE_ID_KEY]
            .bytes_list.value[0].decode()
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")}
    return splits


def _latest_examples(config) -> str:
    folder = os.path.join(config.pipeline_root, "ImageExampleGen", "examples")
    return os.path.join(folder, max(os.listdir(folder), key=int))


@pytest.fixture(scope="module")
def schedule(tmp_path_factory):
    from pipeline.config import load_config
    from pipeline.runners.local import run_local

    work = tmp_path_factory.mktemp("schedule")
    waiting = work / "arriving"
    photos = work / "photos"
    photos.mkdir()
    counts = _write_spans(work / "digits", waiting)
    base = TINY + (f"home={work / 'home'}", f"data.source={photos}/{{SPAN}}")
    runs, splits = [], []

    def run(*overrides):
        config = load_config(overrides=base + overrides)
        runs.append(run_local(config))
        splits.append(_ids_by_split(_latest_examples(config)))

    shutil.move(str(waiting / "1"), str(photos / "1"))
    run()
    run()
    shutil.move(str(waiting / "2"), str(photos / "2"))
    run()
    shutil.move(str(waiting / "3"), str(photos / "3"))
    run("data.window_spans=2")
    return {"runs": runs, "splits": splits, "counts": counts,
            "store": work / "home" / "pipelines" / "imgpipe" / "spans"}


def test_first_run_ingests_the_first_span_and_runs_everything(schedule):
    first = schedule["runs"][0]
    assert set(first.executions.values()) == {"COMPLETE"}
    assert first.window_spans == ["1"] and first.ingested_this_run == schedule["counts"]["1"]
    assert first.blessed and first.pushed_version == 1
    assert first.started_from["started_from"] == "imagenet"
    assert first.started_from["reason"] == "no champion yet"


def test_nothing_new_takes_ingestion_to_training_from_the_cache(schedule):
    second = schedule["runs"][1]
    assert {second.executions[c] for c in INGESTION_TO_TRAINING} == {"CACHED"}
    assert second.executions["LatestBlessedModel"] == "COMPLETE"
    assert second.ingested_this_run == 0
    assert second.baseline_is_candidate  # the cached model is the one run 1 pushed
    assert any("all from the cache" in line for line in second.lines())


def test_a_new_span_is_ingested_alone_and_the_new_model_meets_the_champion(schedule):
    third = schedule["runs"][2]
    assert {third.executions[c] for c in INGESTION_TO_TRAINING} == {"COMPLETE"}
    assert third.window_spans == ["1", "2"]
    assert third.ingested_spans == ["2"]
    assert third.ingested_this_run == schedule["counts"]["2"]
    assert third.ingested == schedule["counts"]["1"] + schedule["counts"]["2"]
    assert third.had_baseline and third.baseline_version == 1
    assert not third.baseline_is_candidate and third.baseline_accuracy is not None
    # train.warm_start defaults to champion: the same labels, so from version 1's weights
    assert third.started_from["started_from"] == "champion"
    assert third.started_from["champion_version"] == 1
    assert "training started from champion version 1" in third.lines()


def test_the_window_leaves_the_oldest_span_out(schedule):
    fourth = schedule["runs"][3]
    assert fourth.window_spans == ["2", "3"] and fourth.ingested_spans == ["3"]
    assert fourth.ingested_this_run == schedule["counts"]["3"]
    assert fourth.ingested == schedule["counts"]["2"] + schedule["counts"]["3"]
    ids = schedule["splits"][3]
    assert not any(i.startswith("1/") for split in ids.values() for i in split)


def test_every_image_keeps_its_split_and_each_span_is_stored_once(schedule):
    splits = schedule["splits"]
    for earlier, later in zip(splits, splits[1:]):
        for split in earlier:
            other = next(s for s in later if s != split)
            assert not (earlier[split] & later[other])  # never moved to the other split
    assert splits[0][features.EVAL_SPLIT] and splits[0][features.TRAIN_SPLIT]
    assert sorted(os.listdir(schedule["store"])) == ["1", "2", "3"]
    assert all(len(os.listdir(schedule["store"] / s)) == 1 for s in ("1", "2", "3"))
