"""run_fn: the glue the TFX Trainer calls (`run_fn="trainer.task.run_fn"`)."""
import json
import logging

import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer import backbones, export, features, schedule
from trainer.model import build_classifier
from pipeline.config import TrainConfig, section_from_dict


def run_fn(fn_args: FnArgs) -> None:
    cfg = section_from_dict(TrainConfig, fn_args.custom_config["train"], "train")
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    num_classes = tft_output.vocabulary_size_by_name(features.LABEL_VOCABULARY)
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes to train, the label vocabulary has "
                         f"{num_classes}")
    classifier = build_classifier(cfg.backbone, cfg.weights, cfg.image_size, num_classes,
                                  cfg.dense_units, cfg.dropout)
    start = cfg.unfreeze_from or backbones.get_backbone(cfg.backbone).top_block_start
    results = schedule.train_two_phases(
        classifier, cfg, num_classes, fn_args.train_files, fn_args.eval_files, start,
        log_dir=fn_args.model_run_dir)
    for r in results:
        logging.info("%s: lr=%g, last val_accuracy=%s, %d trainable layers", r.name,
                     r.learning_rate, r.history.get("val_accuracy", [None])[-1],
                     len(r.trainable_layers))
    export.export_saved_model(classifier.model, tft_output, cfg.image_size,
                              fn_args.serving_model_dir, top_k=cfg.top_k)
    logging.info("exported %s", json.dumps({"serving_model_dir": fn_args.serving_model_dir}))
