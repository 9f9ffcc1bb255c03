"""run_fn as the TFX Trainer calls it: train, export the SavedModel (and TFLite), logs."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer import contract, task
from trainer.train_config import TrainConfig
from trainer_helpers import IMAGE_SIZE, LABELS, encode

pytestmark = pytest.mark.usefixtures("eager_steps")


def _fn_args(records, transform_dir, root, **train) -> FnArgs:
    overrides = {"backbone": "efficientnet_lite0", "image_size": IMAGE_SIZE, "batch_size": 12,
                 "phase1_epochs": 1, "phase2_epochs": 1, **train}
    cfg = TrainConfig(**overrides)
    cfg.validate()
    return FnArgs(train_files=records["train"], eval_files=records["eval"],
                  transform_output=transform_dir, serving_model_dir=str(root / "serving"),
                  model_run_dir=str(root / "logs"),
                  custom_config={"train": dataclasses.asdict(cfg)})


def test_run_fn_exports_a_serving_model_tflite_and_logs(records, transform_dir, tmp_path):
    args = _fn_args(records, transform_dir, tmp_path, tflite="float32")
    task.run_fn(args)
    model = tf.saved_model.load(args.serving_model_dir)
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[..., 2] = 255
    out = model.signatures["serving_default"](image_bytes=tf.constant([encode(pixels, "PNG")]))
    assert sorted(n.decode() for n in out["top_k_class_names"].numpy()[0]) == sorted(LABELS)
    tflite_dir = os.path.join(args.serving_model_dir, contract.TFLITE_DIR)
    assert os.path.getsize(os.path.join(tflite_dir, contract.TFLITE_MODEL_FILE)) > 0
    with open(os.path.join(args.model_run_dir, contract.HISTORY_FILE)) as f:
        history = json.load(f)
    assert [p["name"] for p in history] == ["phase1", "phase2"]


def test_only_the_chief_writes_where_the_pipeline_looks(records, transform_dir, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker", "index": 1}}))
    args = _fn_args(records, transform_dir, tmp_path, distribution="default",
                    phase2_epochs=0)
    task.run_fn(args)
    assert not os.path.exists(args.serving_model_dir)
    assert not os.path.exists(args.model_run_dir)


def test_run_fn_rejects_a_bad_train_section(records, transform_dir, tmp_path):
    args = _fn_args(records, transform_dir, tmp_path)
    args.custom_config["train"]["pooling"] = "max"
    with pytest.raises(ValueError, match="train.pooling"):
        task.run_fn(args)
