"""LatestBlessedModel: the real executor on a serving directory laid out as the Pusher
writes it (<n>/ = SavedModel + labels.txt + model_card.json)."""
import json
import os
from pathlib import Path
from typing import Optional

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from components.artifacts import baseline as properties  # noqa: E402
from components.latest_blessed_model import executor  # noqa: E402
from components.serving import serving_config, serving_root  # noqa: E402
from trainer import contract  # noqa: E402


def _version(serving: Path, number: int, model_uri: Optional[str]) -> Path:
    """A pushed version whose SavedModel returns `number`; its card names model_uri."""
    folder = serving / str(number)
    module = tf.Module()
    module.value = tf.Variable(float(number))
    module.serve = tf.function(lambda: {"value": module.value}, input_signature=[])
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    (folder / "assets").mkdir(exist_ok=True)
    (folder / "assets" / contract.LABELS_FILE).write_text("a\nb\n")
    (folder / contract.LABELS_FILE).write_text("a\nb\n")
    if model_uri is not None:
        card = {"version": number, "lineage": {"model_uri": model_uri}}
        (folder / serving_root.CARD_FILE).write_text(json.dumps(card))
    return folder


def _run(tmp_path: Path, serving: Path, candidate_uri: str) -> standard_artifacts.Model:
    candidate = standard_artifacts.Model()
    candidate.uri = candidate_uri
    baseline = standard_artifacts.Model()
    baseline.uri = str(tmp_path / "baseline_model")
    executor.Executor().Do({executor.MODEL_KEY: [candidate]},
                           {executor.BASELINE_MODEL_KEY: [baseline]},
                           {executor.SERVING_DIR_KEY: str(serving)})
    return baseline


def _files(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_nothing_pushed_yet_means_no_baseline(tmp_path):
    baseline = _run(tmp_path, tmp_path / "never_created", "/models/new")
    assert baseline.get_int_custom_property(properties.FOUND) == 0
    assert not baseline.has_custom_property(properties.SERVING_VERSION)
    assert not (tmp_path / "baseline_model").exists()


def test_the_newest_version_is_copied_as_a_model_artifact(tmp_path):
    serving = tmp_path / "serving"
    _version(serving, 1, "/models/one")
    _version(serving, 2, "/models/two")
    (serving / ".staging-x1y2").mkdir()  # a local push in progress, or an abandoned one
    (serving / "notes").mkdir()
    (serving / "3" / "variables").mkdir(parents=True)  # a remote push: saved_model.pb is last
    baseline = _run(tmp_path, serving, "/models/three")
    assert baseline.get_int_custom_property(properties.FOUND) == 1
    assert baseline.get_int_custom_property(properties.SERVING_VERSION) == 2
    assert baseline.get_string_custom_property(properties.SERVING_PATH) == str(serving / "2")
    assert baseline.get_string_custom_property(properties.SOURCE_MODEL_URI) == "/models/two"
    assert baseline.get_int_custom_property(properties.SAME_AS_CANDIDATE) == 0
    copy = Path(baseline.uri) / "Format-Serving"
    # The SavedModel and its assets, without what the Pusher put beside them.
    assert _files(copy) == _files(serving / "2") - {serving_root.CARD_FILE, contract.LABELS_FILE}
    assert "assets/labels.txt" in _files(copy)
    loaded = tf.saved_model.load(str(copy))
    assert loaded.signatures["serving_default"]()["value"].numpy() == 2.0


def test_the_candidate_itself_is_recognised_and_not_copied(tmp_path):
    serving = tmp_path / "serving"
    _version(serving, 1, "/models/one")
    baseline = _run(tmp_path, serving, "/models/one")
    assert baseline.get_int_custom_property(properties.FOUND) == 1
    assert baseline.get_int_custom_property(properties.SAME_AS_CANDIDATE) == 1
    assert not (tmp_path / "baseline_model").exists()


def test_a_version_pushed_by_something_else_is_still_a_baseline(tmp_path):
    serving = tmp_path / "serving"
    _version(serving, 7, model_uri=None)  # no model card
    baseline = _run(tmp_path, serving, "/models/new")
    assert baseline.get_int_custom_property(properties.SERVING_VERSION) == 7
    assert baseline.get_string_custom_property(properties.SOURCE_MODEL_URI) == ""
    assert baseline.get_int_custom_property(properties.SAME_AS_CANDIDATE) == 0
    assert (Path(baseline.uri) / "Format-Serving" / "saved_model.pb").exists()


def test_the_stable_version_of_models_config_is_the_baseline(tmp_path):
    serving = tmp_path / "serving"
    for number in (1, 2, 3):
        _version(serving, number, f"/models/{number}")
    serving_config.write(str(serving), [3], 2)  # rolled back from 3 to 2
    baseline = _run(tmp_path, serving, "/models/new")
    assert baseline.get_int_custom_property(properties.SERVING_VERSION) == 2
    assert baseline.get_string_custom_property(properties.SERVING_PATH) == str(serving / "2")
    serving_config.write(str(serving), [2], 9)  # a label naming a version that is gone
    baseline = _run(tmp_path / "again", serving, "/models/new")
    assert baseline.get_int_custom_property(properties.SERVING_VERSION) == 3
