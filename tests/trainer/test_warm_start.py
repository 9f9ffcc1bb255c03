"""Warm start: when the champion's weights are taken, and how its classes are reordered."""
import json

import keras
import numpy as np

from trainer import warm_start
from trainer.model import OUTPUT_LAYER
from trainer.train_config import TrainConfig

CFG = TrainConfig(backbone="efficientnet_lite0", image_size=32)


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax",
                                                  name=OUTPUT_LAYER)(hidden))


def _champion(tmp_path, labels, cfg=CFG, version=1):
    model = _model()
    folder = tmp_path / str(version)
    folder.mkdir()
    start = warm_start.Start("imagenet", "no champion yet",
                             parameter=json.dumps({"champion": None, "window": "w0"}))
    warm_start.save(model, cfg, start, labels, str(folder))
    return model, json.dumps({"champion": {"version": version, "path": str(folder)},
                              "window": "w1"})


def test_the_champion_is_taken_only_when_labels_and_architecture_fit(tmp_path):
    _, parameter = _champion(tmp_path, ["a", "b", "c"])
    assert warm_start.decide(CFG, parameter, ["c", "a", "b"]).started_from == "champion"
    other = warm_start.decide(CFG, parameter, ["a", "b", "d"])
    assert other.started_from == "imagenet" and "labels differ" in other.reason
    bigger = TrainConfig(backbone="efficientnet_lite0", image_size=64)
    assert "architecture differs" in warm_start.decide(bigger, parameter, ["a", "b", "c"]).reason
    off = TrainConfig(backbone="efficientnet_lite0", image_size=32, warm_start="none")
    assert warm_start.decide(off, parameter, ["a", "b", "c"]).started_from == "imagenet"
    none = json.dumps({"champion": None, "window": "w"})
    assert warm_start.decide(CFG, none, ["a", "b", "c"]).reason == "no champion yet"


def test_the_champions_classes_follow_the_new_class_ids(tmp_path):
    champion, parameter = _champion(tmp_path, ["a", "b", "c"])
    start = warm_start.decide(CFG, parameter, ["c", "a", "b"])
    model = _model()
    warm_start.load(model, model.get_layer(OUTPUT_LAYER), start, ["c", "a", "b"])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    before, after = champion.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_allclose(after, before[:, [2, 0, 1]], rtol=1e-5, atol=1e-6)
    record = warm_start.read_start(str(tmp_path / "1"))
    assert record["labels"] == ["a", "b", "c"] and record["started_from"] == "imagenet"
