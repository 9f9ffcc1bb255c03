"""RegistryPusher: the real executor on tiny SavedModels, a real sqlite MLflow registry."""
import json
import os
from pathlib import Path
from typing import List

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import mlflow.pyfunc  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from components.registry_pusher import executor  # noqa: E402
from components.serving import (mlflow_model, mlflow_registry, publish,  # noqa: E402
                                serving_config, serving_root)
from components.serving import versions as registry  # noqa: E402
from components.serving.model_card import ModelCard  # noqa: E402
from pusher_helpers import (LABELS, blessing, prop, push,  # noqa: E402
                            version_names)


# -- blessing and layout -------------------------------------------------------------------
def test_unblessed_model_is_not_pushed(tmp_path, models):
    serving = tmp_path / "serving" / "pets"
    pushed = push(tmp_path, models[0], blessing(tmp_path, False), serving)
    assert prop(pushed, "pushed") == 0 and prop(pushed, "push_status") == "not_blessed"
    assert version_names(serving) == []


def test_blessed_model_becomes_the_next_version_with_labels_and_card(tmp_path, models):
    serving = tmp_path / "serving" / "pets"
    examples = standard_artifacts.Examples()
    examples.id = 7
    for key, value in (("files_seen", 12), ("ingested_count", 10), ("rejected_count", 2)):
        examples.set_int_custom_property(key, value)
    pushed = push(tmp_path, models[0], blessing(tmp_path, True), serving, examples=examples)
    assert version_names(serving) == ["1"]
    version = serving / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    assert (version / "labels.txt").read_text().split() == LABELS
    card = json.loads((version / "model_card.json").read_text())
    assert card["version"] == 1 and card["serving_path"] == str(version)
    assert card["labels"] == LABELS and card["config_hash"] == "abc123"
    assert card["data"] == {"files_seen": 12, "ingested": 10, "rejected": 2}
    assert card["baseline"] is None and "value thresholds only" in card["thresholds"]["mode"]
    assert card["lineage"] == {
        "pipeline_name": "imgpipe", "pipeline_run_id": "run-1", "pusher_execution_id": "42",
        "model_id": 10, "model_uri": models[0].uri, "blessing_id": 100, "evaluation_id": None,
        "examples_id": 7}
    assert prop(pushed, "pushed") == 1 and prop(pushed, "pushed_version") == "1"
    assert prop(pushed, "pushed_destination") == str(version)
    assert prop(pushed, "registry_status") == "disabled"
    assert json.loads(Path(pushed.uri, "model_card.json").read_text()) == card
    # The served copy works like the trained one.
    out = tf.saved_model.load(str(version)).signatures["serving_default"](
        image_bytes=tf.constant([b"x"]))
    assert out["probabilities"].shape == (1, 3)


def test_same_model_again_is_not_pushed_twice(tmp_path, models):
    serving = tmp_path / "serving" / "pets"
    push(tmp_path, models[0], blessing(tmp_path, True), serving)
    again = push(tmp_path, models[0], blessing(tmp_path, True), serving)
    assert version_names(serving) == ["1"]
    assert prop(again, "push_status") == "already_pushed"
    assert prop(again, "pushed_version") == "1" and prop(again, "registry_status") == "unchanged"


def test_existing_versions_are_never_overwritten(tmp_path, models, monkeypatch):
    serving = tmp_path / "serving" / "pets"
    for name in ("1", "7"):
        (serving / name).mkdir(parents=True)
        (serving / name / "saved_model.pb").write_bytes(b"an existing model " + name.encode())
    # A concurrent push claims 8 between our numbering and our rename: we move on to 9.
    claimed = []

    def racing_next_version(serving_dir: str) -> int:
        if not claimed:
            claimed.append(8)
            (serving / "8").mkdir()
            (serving / "8" / "saved_model.pb").write_bytes(b"the racing push")
            return 8
        return real_next_version(serving_dir)

    real_next_version = serving_root.next_version
    monkeypatch.setattr(serving_root, "next_version", racing_next_version)
    pushed = push(tmp_path, models[0], blessing(tmp_path, True), serving)
    assert prop(pushed, "pushed_version") == "9"
    assert version_names(serving) == ["1", "7", "8", "9"]
    for name in ("1", "7"):
        assert (serving / name / "saved_model.pb").read_bytes().endswith(name.encode())
    assert (serving / "8" / "saved_model.pb").read_bytes() == b"the racing push"


# -- atomicity -----------------------------------------------------------------------------
def test_interrupted_push_publishes_nothing_and_a_rerun_succeeds(tmp_path, models, monkeypatch):
    serving = tmp_path / "serving" / "pets"
    seen_by_reader: List[List[str]] = []
    real_copy = publish._copy_file

    def failing_copy(src: str, dst: str) -> str:
        # What a reader (TF Serving polling the folder) sees at each step of the copy.
        seen_by_reader.append([n for n in os.listdir(serving) if n.isdigit()])
        if len(seen_by_reader) == 3:
            raise OSError(28, "No space left on device (injected)")
        return real_copy(src, dst)

    monkeypatch.setattr(publish, "_copy_file", failing_copy)
    with pytest.raises(OSError, match="injected"):
        push(tmp_path, models[0], blessing(tmp_path, True), serving)
    assert len(seen_by_reader) >= 3 and all(v == [] for v in seen_by_reader)
    assert version_names(serving) == []  # no version, and no staging folder left behind

    monkeypatch.setattr(publish, "_copy_file", real_copy)
    pushed = push(tmp_path, models[0], blessing(tmp_path, True), serving)
    assert version_names(serving) == ["1"] and prop(pushed, "pushed_version") == "1"
    copied = {p.relative_to(serving / "1") for p in (serving / "1").rglob("*")}
    source = Path(models[0].uri, "Format-Serving")
    assert {p.relative_to(source) for p in source.rglob("*")} <= copied


def test_remote_filesystem_push_writes_saved_model_last(tmp_path, models, monkeypatch):
    order: List[str] = []
    real_copy_file = publish.io_utils.copy_file

    def recording_copy_file(src: str, dst: str, *args, **kwargs):
        order.append(os.path.basename(dst))
        return real_copy_file(src, dst, *args, **kwargs)

    monkeypatch.setattr(publish.io_utils, "copy_file", recording_copy_file)
    card = publish.publish_remote(os.path.join(models[0].uri, "Format-Serving"),
                                   "ram://serving/pets", ModelCard(model_name="pets"), LABELS)
    assert card.serving_path == "ram://serving/pets/1"
    assert tf.io.gfile.exists("ram://serving/pets/1/model_card.json")
    assert tf.io.gfile.exists("ram://serving/pets/1/variables")
    assert order[-1] == "saved_model.pb"


# -- the registry --------------------------------------------------------------------------
def test_pushed_versions_are_registered_and_the_newest_is_champion(tmp_path, models,
                                                                   registry_uri):
    serving = tmp_path / "serving" / "pets"
    first = push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri)
    second = push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
                   registry_uri)
    assert [prop(p, "registry_status") for p in (first, second)] == ["registered"] * 2
    client = mlflow_registry.connect(registry_uri)
    champion = mlflow_registry.champion(client, "pets")
    assert champion.version == int(prop(second, "registry_version"))
    assert champion.tags[mlflow_registry.SERVING_VERSION_TAG] == "2"
    assert champion.tags[mlflow_registry.SERVING_PATH_TAG] == str(serving / "2")
    assert champion.tags[mlflow_registry.PREVIOUS_CHAMPION_TAG] == prop(first, "registry_version")
    assert champion.tags["baseline_serving_version"] == "1"
    assert champion.tags["model_uri"] == models[1].uri
    # The source is the logged MLflow model, a copy of the SavedModel that serves.
    assert champion.source.startswith("models:/m-")
    assert champion.tags[mlflow_registry.MLFLOW_MODEL_TAG] == "logged"
    with mlflow_model.tracking(registry_uri):
        served = mlflow.pyfunc.load_model("models:/pets@champion").predict(
            pd.DataFrame({"image_bytes": [b"any bytes"]}))
    assert served["class_name"].tolist() == ["cat"]
    assert served["top_k_scores"][0] == pytest.approx([0.7, 0.2])
    run = client.get_run(champion.run_id)
    assert run.data.params["eval.min_accuracy"] == "0.5"
    assert client.list_artifacts(champion.run_id, mlflow_registry.CARD_ARTIFACT_PATH)


def test_registry_failure_keeps_the_pushed_model_and_sync_registers_it(tmp_path, models,
                                                                        registry_uri, caplog):
    serving = tmp_path / "serving" / "pets-outage"
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the registry's folder should be")
    broken = "sqlite:///" + str(blocker / "mlflow.db")
    pushed = push(tmp_path, models[0], blessing(tmp_path, True), serving, broken)
    # The pending record stays: the registry is owed this version.
    assert version_names(serving) == [".push-pending.json", "1"]
    assert (serving / "1" / "saved_model.pb").is_file()
    assert prop(pushed, "pushed") == 1 and prop(pushed, "registry_status") == "failed"
    assert "not_a_folder" in prop(pushed, "registry_error")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "NOT registered" in logged and "imgpipe registry sync" in logged

    client = mlflow_registry.connect(registry_uri)
    # The push labelled version 1 stable: sync makes the registry agree.
    assert registry.sync(client, registry_uri, "pets-outage", str(serving)) == ([1], 1)
    assert version_names(serving) == ["1"]
    rows = registry.entries(client, "pets-outage", str(serving))
    assert [(r.serving_version, r.registered, r.aliases) for r in rows] == [
        (1, True, ["champion"])]
    assert registry.sync(client, registry_uri, "pets-outage", str(serving)) == ([], 1)


def test_sync_after_an_outage_makes_the_stable_version_the_champion(tmp_path, models,
                                                                     registry_uri):
    serving = tmp_path / "serving" / "pets-drift"
    client = mlflow_registry.connect(registry_uri)
    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri,
         model_name="pets-drift")
    (tmp_path / "down").write_text("a file where the registry's folder should be")
    push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
         "sqlite:///" + str(tmp_path / "down" / "mlflow.db"), model_name="pets-drift")
    champion = mlflow_registry.champion(client, "pets-drift")
    assert champion.tags[mlflow_registry.SERVING_VERSION_TAG] == "1"  # the registry missed 2
    assert serving_config.stable_version(str(serving)) == 2  # what TF Serving serves

    assert registry.sync(client, registry_uri, "pets-drift", str(serving)) == ([2], 2)
    champion = mlflow_registry.champion(client, "pets-drift")
    assert champion.tags[mlflow_registry.SERVING_VERSION_TAG] == "2"
    assert champion.tags[mlflow_registry.PREVIOUS_CHAMPION_TAG] == "1"  # rollback works
    registry.rollback(client, "pets-drift", str(serving))
    assert serving_config.stable_version(str(serving)) == 1


def test_sync_writes_models_config_from_the_champion_when_there_is_none(tmp_path, models,
                                                                         registry_uri):
    serving = tmp_path / "serving" / "pets-nofile"
    client = mlflow_registry.connect(registry_uri)
    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri,
         model_name="pets-nofile")
    config_file = tmp_path / "serving" / serving_config.CONFIG_FILE
    config_file.unlink()  # e.g. a serving root from before the file existed
    assert registry.sync(client, registry_uri, "pets-nofile", str(serving)) == ([], 1)
    assert serving_config.stable_version(str(serving)) == 1


def test_every_push_labels_the_new_version_stable_in_models_config(tmp_path, models):
    serving = tmp_path / "serving" / "pets"
    push(tmp_path, models[0], blessing(tmp_path, True), serving)
    config_file = tmp_path / "serving" / "models.config"
    assert serving_config.stable_version(str(serving)) == 1
    push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving)
    parsed = serving_config.read(str(config_file))
    (entry,) = parsed.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("pets", str(serving),
                                                                   "tensorflow")
    assert list(entry.model_version_policy.specific.versions) == [1, 2]  # 1: rollback target
    assert dict(entry.version_labels) == {"stable": 2, "canary": 2}
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["models.config", "pets"]


def test_models_config_follows_the_champion_through_push_rollback_promote(tmp_path, models,
                                                                         registry_uri):
    serving = tmp_path / "serving" / "pets-labels"
    client = mlflow_registry.connect(registry_uri)

    def agree() -> int:
        champion = mlflow_registry.champion(client, "pets-labels")
        stable = serving_config.stable_version(str(serving))
        assert str(stable) == champion.tags[mlflow_registry.SERVING_VERSION_TAG]
        return stable

    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri,
          model_name="pets-labels")
    assert agree() == 1
    push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
          registry_uri, model_name="pets-labels")
    assert agree() == 2
    registry.rollback(client, "pets-labels", str(serving))
    assert agree() == 1
    registry.promote(client, "pets-labels", 2, str(serving))
    assert agree() == 2


def test_the_first_eval_image_is_the_input_example(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    split = tmp_path / "examples" / "Split-eval"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"),
                              options="GZIP") as writer:
        for image in (b"first", b"second"):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
            })).SerializeToString())
    assert executor._first_image(examples) == b"first"
    assert executor._first_image(None) is None


def test_new_sqlite_registries_start_from_one_cached_empty_database(tmp_path, monkeypatch):
    from trainer import user_cache

    monkeypatch.setenv(user_cache.CACHE_ENV_VAR, str(tmp_path / "cache"))
    first = mlflow_registry.connect(f"sqlite:///{tmp_path}/a/mlflow.db")
    assert len(list((tmp_path / "cache").glob("mlflow-*-empty.db"))) == 1
    second = mlflow_registry.connect(f"sqlite:///{tmp_path}/b/mlflow.db")
    for client in (first, second):
        # MLflow's own default experiment, made on first use as in a new database.
        assert [(e.experiment_id, e.name) for e in client.search_experiments()] == \
            [("0", "Default")]
    first.create_registered_model("only_in_a")
    assert [m.name for m in first.search_registered_models()] == ["only_in_a"]
    assert second.search_registered_models() == []
