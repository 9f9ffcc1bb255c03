"""Warm start (train.warm_start): the Trainer starts from the champion's weights.

The champion comes as the WARM_START_KEY entry of the Trainer's custom_config, a JSON
string {"champion": {"version": N, "path": "<serving dir>/N"} or null, "window": "<the
data's listing digest>"} the pipeline's listing step builds (components/span_listing):
a parameter, so that a new champion changes the Trainer's cache key, and the same string
when nothing changed, so that it does not.

Weights are taken only when they fit: the champion exported WEIGHTS_FILE, was trained on
the same set of labels and with the same architecture (ARCHITECTURE_FIELDS). The label
vocabulary is ordered by frequency, so the same labels may come in another order: the
output layer's columns are then permuted to the new class ids. Otherwise the Trainer starts as a cold run does
(train.weights: ImageNet by default) and says why. Every exported model records what it
started from in START_FILE, beside its SavedModel (the pushed version keeps it, the model
card and the run summary read it).
"""
import dataclasses
import json
import logging
import os
import tempfile
from typing import Any, Dict, List, Optional

import keras
import tensorflow as tf

from trainer.train_config import TrainConfig

WARM_START_KEY = "warm_start"  # custom_config key: the listing step's parameter
START_FILE = "started_from.json"  # in the exported model folder
WEIGHTS_FILE = os.path.join("warm_start", "classifier.weights.h5")  # in the same folder
ARCHITECTURE_FIELDS = ("backbone", "image_size", "pooling", "conv_block_filters",
                       "dense_units")


@dataclasses.dataclass
class Start:
    started_from: str  # "champion", or train.weights ("imagenet", "none", a file)
    reason: str
    champion_version: Optional[int] = None
    parameter: str = ""  # the warm_start parameter as received
    champion_labels: Optional[List[str]] = None  # in the champion's class id order


def architecture(cfg: TrainConfig) -> Dict[str, Any]:
    values = {name: getattr(cfg, name) for name in ARCHITECTURE_FIELDS}
    values["image_size"] = cfg.input_size
    return values


def read_start(model_dir: str) -> Optional[Dict[str, Any]]:
    """A model folder's START_FILE, None when it has none (pushed before warm starts)."""
    path = os.path.join(model_dir, START_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def decide(cfg: TrainConfig, parameter: str, labels: List[str]) -> Start:
    """Where training starts, and why."""
    cold = cfg.weights
    if cfg.warm_start == "none":
        return Start(cold, "train.warm_start is none", parameter=parameter)
    champion = json.loads(parameter).get("champion") if parameter else None
    if not champion:
        return Start(cold, "no champion yet", parameter=parameter)
    version, path = champion["version"], champion["path"]
    record = read_start(path)
    if record is None or not tf.io.gfile.exists(os.path.join(path, WEIGHTS_FILE)):
        return Start(cold, f"champion version {version} has no warm-start weights",
                     parameter=parameter)
    if sorted(record.get("labels") or []) != sorted(labels):
        return Start(cold, f"the labels differ from champion version {version}'s "
                     f"({sorted(record.get('labels') or [])} vs {sorted(labels)})",
                     parameter=parameter)
    if record.get("architecture") != architecture(cfg):
        return Start(cold, f"the architecture differs from champion version {version}'s "
                     f"({record.get('architecture')} vs {architecture(cfg)})",
                     parameter=parameter)
    return Start("champion", f"champion version {version}, same labels and architecture",
                 champion_version=version, parameter=parameter,
                 champion_labels=list(record["labels"]))


def load(model: keras.Model, output_layer: keras.layers.Layer, start: Start,
         labels: List[str]) -> None:
    """Loads the champion's weights into `model` when `start` says so, the output layer's
    classes reordered from the champion's class ids to `labels`."""
    if start.started_from != "champion":
        return
    path = json.loads(start.parameter)["champion"]["path"]
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(WEIGHTS_FILE))
        tf.io.gfile.copy(os.path.join(path, WEIGHTS_FILE), local)
        model.load_weights(local)
    if start.champion_labels != list(labels):
        order = [start.champion_labels.index(label) for label in labels]
        kernel, bias = output_layer.get_weights()
        output_layer.set_weights([kernel[:, order], bias[order]])
    logging.info("warm start: %s", start.reason)


def save(model: keras.Model, cfg: TrainConfig, start: Start, labels: List[str],
         export_dir: str) -> None:
    """WEIGHTS_FILE and START_FILE into the exported model folder."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(WEIGHTS_FILE))
        model.save_weights(local)
        target = os.path.join(export_dir, WEIGHTS_FILE)
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(local, target, overwrite=True)
    record = {**dataclasses.asdict(start), "labels": list(labels),
              "architecture": architecture(cfg)}
    with tf.io.gfile.GFile(os.path.join(export_dir, START_FILE), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
