"""The two-phase fine-tuning schedule.

Phase 1: the base is frozen, so its pooled features are a fixed function of the image.
They are computed once per image and the head is trained on them: an epoch costs a few
matrix products instead of a full forward pass. The price is no augmentation in phase 1
(augmented images would need fresh features every epoch).

Phase 2: the top of the base is unfrozen (BatchNorm stays frozen and in inference mode),
the whole model is recompiled with a fresh optimizer at learning_rate * phase2_lr_factor,
and training continues with augmentation, epoch numbering carrying on from phase 1.
"""
import dataclasses
import json
import logging
import os
from typing import Any, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer import data, model as model_lib


@dataclasses.dataclass
class PhaseResult:
    name: str
    first_epoch: int
    history: Dict[str, List[float]]
    learning_rate: float
    trainable_layers: List[str]


def _one_hot(ds: tf.data.Dataset, num_classes: int) -> tf.data.Dataset:
    return ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))


def _compile(model: keras.Model, learning_rate: float, label_smoothing: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        # The head ends in softmax: the loss takes probabilities, not logits.
        loss=keras.losses.CategoricalCrossentropy(from_logits=False,
                                                  label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def _callbacks(log_dir: Optional[str], patience: int, phase: str) -> List[keras.callbacks.Callback]:
    callbacks: List[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3,
                                          patience=max(1, patience - 1), min_lr=1e-7),
    ]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(log_dir, phase)))
    return callbacks


def class_weights(labels: np.ndarray, num_classes: int) -> Dict[int, float]:
    """Inverse-frequency weights, normalised so a balanced set gets 1.0 for every class."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0
            for i, c in enumerate(counts)}


def _features(classifier: model_lib.ImageClassifier, ds: tf.data.Dataset):
    xs, ys = [], []
    for images, labels in ds:
        xs.append(classifier.features(images, training=False).numpy())
        ys.append(labels.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def train_two_phases(classifier: model_lib.ImageClassifier, cfg: Any, num_classes: int,
                     train_files: List[str], eval_files: List[str], start_layer: str,
                     log_dir: Optional[str] = None) -> List[PhaseResult]:
    """Runs phase 1 (cached features, head only) then phase 2 (top of base unfrozen)."""
    keras.utils.set_random_seed(cfg.seed)
    size, batch = cfg.image_size, cfg.batch_size
    weights = (class_weights(data.labels_of(train_files), num_classes)
               if cfg.class_weighting else None)
    results: List[PhaseResult] = []

    # Phase 1: features once, then the head alone.
    train_x, train_y = _features(classifier, data.image_dataset(train_files, size, batch))
    eval_x, eval_y = _features(classifier, data.image_dataset(eval_files, size, batch))
    _compile(classifier.head, cfg.learning_rate, cfg.label_smoothing)
    hist = classifier.head.fit(
        train_x, keras.utils.to_categorical(train_y, num_classes),
        validation_data=(eval_x, keras.utils.to_categorical(eval_y, num_classes)),
        epochs=cfg.phase1_epochs, batch_size=batch, shuffle=True, class_weight=weights,
        callbacks=_callbacks(log_dir, cfg.early_stopping_patience, "phase1"), verbose=2)
    results.append(PhaseResult("phase1", 0, _floats(hist.history), cfg.learning_rate,
                               [l.name for l in classifier.head.layers if l.weights]))
    done = len(hist.history["loss"])

    if cfg.phase2_epochs > 0:
        unfrozen = model_lib.unfreeze_top(classifier.base, start_layer, cfg.unfreeze_top_layers)
        lr2 = cfg.learning_rate * cfg.phase2_lr_factor
        _compile(classifier.model, lr2, cfg.label_smoothing)
        augment = data.augmenter(cfg.seed) if cfg.augment else None
        train_ds = _one_hot(data.image_dataset(train_files, size, batch, shuffle_seed=cfg.seed,
                                               augmenter=augment), num_classes)
        eval_ds = _one_hot(data.image_dataset(eval_files, size, batch), num_classes)
        hist = classifier.model.fit(
            train_ds, validation_data=eval_ds, initial_epoch=done,
            epochs=done + cfg.phase2_epochs, class_weight=weights,
            callbacks=_callbacks(log_dir, cfg.early_stopping_patience, "phase2"), verbose=2)
        results.append(PhaseResult("phase2", done, _floats(hist.history), lr2, unfrozen))
    if log_dir:
        _write_history(results, os.path.join(log_dir, "history.json"))
    return results


def _floats(history: Dict[str, List[Any]]) -> Dict[str, List[float]]:
    return {k: [float(v) for v in vs] for k, vs in history.items()}


def _write_history(results: List[PhaseResult], path: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
    logging.info("training history written to %s", path)
