"""What each training phase compiles and calls back: a fresh optimizer and loss, the
plateau callbacks, TensorBoard and checkpoint paths, best-epoch tracking and restore, and
validation on cached inputs (schedule.py runs the phases)."""
import os
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer.train_config import TrainConfig


def compile_model(model: keras.Model, learning_rate: float, label_smoothing: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),  # fresh: no state from a phase before
        # The head ends in softmax: the loss takes probabilities, not logits.
        loss=keras.losses.CategoricalCrossentropy(from_logits=False,
                                                  label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def plateau_callbacks(cfg: TrainConfig) -> List[keras.callbacks.Callback]:
    callbacks: List[keras.callbacks.Callback] = []
    if cfg.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.early_stopping_patience))
    if cfg.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=cfg.reduce_lr_factor, patience=cfg.reduce_lr_patience,
            min_lr=1e-7))
    return callbacks


def log_callbacks(cfg: TrainConfig, log_dir: Optional[str], phase: str
                   ) -> List[keras.callbacks.Callback]:
    if not (log_dir and cfg.tensorboard):
        return []
    return [keras.callbacks.TensorBoard(os.path.join(log_dir, phase), write_graph=False)]


def checkpoint_path(cfg: TrainConfig, log_dir: Optional[str], phase: str) -> Optional[str]:
    if not (log_dir and cfg.checkpoints):
        return None
    directory = os.path.join(log_dir, "checkpoints")
    tf.io.gfile.makedirs(directory)
    return os.path.join(directory, f"{phase}_best.weights.h5")


class Recorder(keras.callbacks.Callback):
    """Epoch numbers and the learning rate the optimizer starts each epoch with."""

    def __init__(self):
        super().__init__()
        self.epochs: List[int] = []
        self.learning_rates: List[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.learning_rates.append(
            float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class KeepBest(keras.callbacks.Callback):
    """Tracks the lowest val_loss and the trained variables' values at that epoch. At the
    end they go back to those values (or to their starting values when no epoch beat
    `baseline`) if `restore`, and the whole model with them is written to checkpoint_path
    once: saving the full model at every new best cost ~3 s of the demo's phase 1, whose
    head alone changes."""

    def __init__(self, baseline: float, restore: bool, full_model: keras.Model,
                 checkpoint_path: Optional[str]):
        super().__init__()
        self.best, self.best_epoch = baseline, None
        self._restore, self._full_model, self._path = restore, full_model, checkpoint_path
        self._best_values: List[np.ndarray] = []

    def _snapshot(self) -> List[np.ndarray]:
        return [np.array(v.numpy()) for v in self.model.trainable_variables]

    def _assign(self, values: List[np.ndarray]) -> None:
        for variable, value in zip(self.model.trainable_variables, values):
            variable.assign(value)

    def on_train_begin(self, logs=None):
        self._best_values = self._snapshot() if self._restore else []

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is None or not loss < self.best:
            return
        self.best, self.best_epoch = float(loss), epoch
        if self._restore or self._path:
            self._best_values = self._snapshot()

    def on_train_end(self, logs=None):
        save = bool(self._path) and self.best_epoch is not None
        if not (self._restore or save):
            return
        last = None if self._restore else self._snapshot()
        self._assign(self._best_values)
        if save:
            self._full_model.save_weights(self._path)
        if last is not None:
            self._assign(last)


class CachedValidation(keras.callbacks.Callback):
    """Adds val_* to the epoch's logs by evaluating the trainable part on cached inputs."""

    def __init__(self, evaluator: keras.Model, dataset: tf.data.Dataset):
        super().__init__()
        self._evaluator, self._dataset = evaluator, dataset

    def on_epoch_end(self, epoch, logs=None):
        scores = self._evaluator.evaluate(self._dataset, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": float(value) for name, value in scores.items()})
