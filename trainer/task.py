"""run_fn: the glue the TFX Trainer calls (`run_fn="trainer.task.run_fn"`)."""
import json
import logging
import os
import shutil
import tempfile

import keras
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer import contract, export, features, schedule, strategy as strategies, tflite
from trainer import warm_start
from trainer.config_fields import section_from_dict
from trainer.model import OUTPUT_LAYER, build_classifier
from trainer.train_config import TrainConfig


def run_fn(fn_args: FnArgs) -> None:
    cfg = section_from_dict(TrainConfig, fn_args.custom_config["train"], "train")
    strategy = strategies.choose(cfg.distribution)  # first: before any other TF work
    chief = strategies.is_chief(os.environ.get("TF_CONFIG", ""))
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    num_classes = tft_output.vocabulary_size_by_name(features.LABEL_VOCABULARY)
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes to train, the label vocabulary has "
                         f"{num_classes}")
    # Every worker trains and exports (saving may need all of them); only the chief's
    # outputs land where the pipeline looks, the others go to a scratch directory.
    scratch = None if chief else tempfile.mkdtemp(prefix="imgpipe_worker_")
    log_dir = fn_args.model_run_dir if chief else os.path.join(scratch, "logs")
    export_dir = fn_args.serving_model_dir if chief else os.path.join(scratch, "model")
    keras.utils.set_random_seed(cfg.seed)  # the head's initial weights too
    labels = export.label_names(tft_output)
    start = warm_start.decide(cfg, fn_args.custom_config.get(warm_start.WARM_START_KEY, ""),
                              labels)
    logging.info("training starts from %s: %s", start.started_from, start.reason)
    with strategy.scope():
        classifier = build_classifier(cfg, num_classes)
        warm_start.load(classifier.model, classifier.head.get_layer(OUTPUT_LAYER), start,
                        labels)
        results = schedule.train_two_phases(
            classifier, cfg, num_classes, fn_args.train_files, fn_args.eval_files, log_dir)
    for r in results:
        logging.info("%s: epochs %s, lr %s, best val_loss %.4f, %d trainable layers%s",
                     r.name, r.epochs, r.learning_rates, r.best_val_loss,
                     len(r.trainable_layers),
                     "" if r.best_epoch is not None else " (kept the previous weights)")
    export.export_saved_model(classifier.model, tft_output, cfg.input_size, export_dir,
                              top_k=cfg.top_k)
    if chief:
        warm_start.save(classifier.model, cfg, start, labels, export_dir)
    if cfg.tflite != "none":
        tflite.export_tflite(classifier.model, cfg.input_size, export.label_names(tft_output),
                             os.path.join(export_dir, contract.TFLITE_DIR), cfg.tflite)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    logging.info("exported %s", json.dumps({"serving_model_dir": export_dir}))
