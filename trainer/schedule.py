"""The two-phase fine-tuning schedule.

Phase 1: the base is frozen and runs in inference mode; the head trains at
learning_rate. Phase 2: the top of the base is unfrozen (BatchNorm stays frozen and in
inference mode), the model is recompiled with a fresh optimizer at learning_rate *
phase2_lr_factor, and epoch numbering carries on from phase 1. Each phase has early
stopping, ReduceLROnPlateau, best-weights restore (phase 2 keeps phase 1's weights when
it never beats them on val_loss), checkpoints and TensorBoard logs.

Caching (train.cache_features): the layers a phase does not train are a fixed function
of the image, so their outputs are computed once and only the trainable part runs every
epoch. Before phase 1 the base's bottom (everything below the top phase 2 unfreezes) is
run once per image; phase 1 trains the head on features computed from that cache by the
rest of the frozen base, and phase 2 trains the top and the head on the cache itself. The
trade-off: a cached input cannot be augmented (an augmented image would need fresh
features every epoch), so phase 1 trains without augmentation, and with train.augment
phase 2 trains on augmented images while validating from the cache (validation images
are never augmented). A cache above train.feature_cache_max_mb is not built: that phase
runs on images, as with cache_features=false.

Call inside the distribution strategy's scope (see strategy.py), where the classifier
was built.
"""
import dataclasses
import json
import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from trainer import augment, backbones, contract, data, model as model_lib
from trainer.train_config import TrainConfig

Arrays = Tuple[np.ndarray, ...]  # cached outputs of a phase's frozen part


@dataclasses.dataclass
class PhaseResult:
    name: str
    epochs: List[int]  # epoch numbers run; phase 2 continues phase 1's
    history: Dict[str, List[float]]
    learning_rates: List[float]  # the optimizer's rate at the start of each epoch
    trainable_layers: List[str]  # layers with weights the phase trained
    cached_train: bool  # trained on cached outputs of the frozen part
    cached_eval: bool  # validated on cached outputs of the frozen part
    best_val_loss: float
    best_epoch: Optional[int]  # None: no epoch beat the weights the phase started with

    @property
    def next_epoch(self) -> int:
        return self.epochs[-1] + 1


@dataclasses.dataclass
class Examples:
    """The two splits' TFRecord file patterns and their labels in file order."""
    train_files: List[str]
    eval_files: List[str]
    train_labels: np.ndarray
    eval_labels: np.ndarray

    @classmethod
    def read(cls, train_files: Sequence[str], eval_files: Sequence[str]) -> "Examples":
        return cls(list(train_files), list(eval_files), data.labels_of(train_files),
                   data.labels_of(eval_files))


@dataclasses.dataclass
class Cache:
    """Outputs of a phase's frozen layers, computed once; None: that split runs on images."""
    train: Optional[Arrays] = None
    eval: Optional[Arrays] = None


@dataclasses.dataclass
class Bottom:
    """Where phase 2 cuts the base, and the outputs of the frozen bottom. Computed before
    phase 1, which derives its features from them: the bottom runs once per image."""
    first: int  # index in base.layers of the first layer phase 2 unfreezes
    split: Optional[model_lib.Split]  # None: the top needs the base's input itself
    cache: Cache


@dataclasses.dataclass
class _Phase:
    name: str
    split: Optional[model_lib.Split]
    learning_rate: float
    epochs: int
    steps_per_epoch: int
    initial_epoch: int
    baseline: float  # val_loss the phase must beat to replace its starting weights
    trainable_layers: List[str]


def train_two_phases(classifier: model_lib.ImageClassifier, cfg: TrainConfig,
                     num_classes: int, train_files: Sequence[str],
                     eval_files: Sequence[str], log_dir: Optional[str] = None
                     ) -> List[PhaseResult]:
    """Phase 1, then phase 2 when train.phase2_epochs > 0; writes history.json to log_dir."""
    keras.utils.set_random_seed(cfg.seed)
    examples = Examples.read(train_files, eval_files)
    if cfg.from_scratch:
        results = [run_from_scratch(classifier, cfg, num_classes, examples, log_dir)]
    else:
        bottom = cache_bottom(classifier, cfg, examples) if cfg.phase2_epochs > 0 else None
        results = [run_phase1(classifier, cfg, num_classes, examples, log_dir, bottom)]
        if bottom is not None:
            results.append(run_phase2(classifier, cfg, num_classes, examples, results[0],
                                      log_dir, bottom))
    if log_dir:
        _write_history(results, os.path.join(log_dir, contract.HISTORY_FILE))
    return results


def cache_bottom(classifier: model_lib.ImageClassifier, cfg: TrainConfig,
                 examples: Examples) -> Bottom:
    """Phase 2's cut; caches the bottom's outputs for eval, and for train when phase 2
    trains without augmentation."""
    start = cfg.unfreeze_from or backbones.get_backbone(cfg.backbone).top_start
    first = model_lib.top_start_index(classifier.base, start, cfg.unfreeze_top_layers)
    split = model_lib.split_base(classifier, first)
    if split is None or not cfg.cache_features:
        return Bottom(first, split, Cache())
    return Bottom(first, split, cache_outputs("phase2", split.frozen, cfg, examples,
                                              with_train=not cfg.augment))


def run_phase1(classifier: model_lib.ImageClassifier, cfg: TrainConfig, num_classes: int,
               examples: Examples, log_dir: Optional[str] = None,
               bottom: Optional[Bottom] = None) -> PhaseResult:
    """Base frozen, head trained at learning_rate."""
    cache = Cache()
    if cfg.cache_features:
        source = (bottom.split.below_head, bottom.cache) if bottom and bottom.split else None
        cache = cache_outputs("phase1", classifier.features, cfg, examples, True, source)
    phase = _Phase("phase1", model_lib.Split(classifier.features, classifier.head),
                   cfg.learning_rate, cfg.phase1_epochs, cfg.phase1_steps_per_epoch,
                   initial_epoch=0, baseline=math.inf,
                   trainable_layers=_layers_with_weights(classifier.head))
    return _run_phase(phase, classifier, cfg, num_classes, examples, log_dir, cache)


def run_from_scratch(classifier: model_lib.ImageClassifier, cfg: TrainConfig,
                     num_classes: int, examples: Examples, log_dir: Optional[str] = None
                     ) -> PhaseResult:
    """weights=none: one phase, every layer trained on (augmented) images at learning_rate
    for phase2_epochs; nothing is frozen, so nothing is cached."""
    phase = _Phase("scratch", model_lib.Split(classifier.features, classifier.head),
                   cfg.learning_rate, cfg.phase2_epochs, cfg.phase2_steps_per_epoch,
                   initial_epoch=0, baseline=math.inf,
                   trainable_layers=_layers_with_weights(classifier.model))
    return _run_phase(phase, classifier, cfg, num_classes, examples, log_dir, Cache())


def run_phase2(classifier: model_lib.ImageClassifier, cfg: TrainConfig, num_classes: int,
               examples: Examples, phase1: PhaseResult, log_dir: Optional[str] = None,
               bottom: Optional[Bottom] = None) -> PhaseResult:
    """Top of the base unfrozen, fresh optimizer at learning_rate * phase2_lr_factor."""
    bottom = bottom or cache_bottom(classifier, cfg, examples)
    unfrozen = model_lib.unfreeze_top(classifier.base, bottom.first)
    phase = _Phase("phase2", bottom.split, cfg.learning_rate * cfg.phase2_lr_factor,
                   cfg.phase2_epochs, cfg.phase2_steps_per_epoch,
                   initial_epoch=phase1.next_epoch, baseline=phase1.best_val_loss,
                   trainable_layers=unfrozen + _layers_with_weights(classifier.head))
    return _run_phase(phase, classifier, cfg, num_classes, examples, log_dir, bottom.cache)


def _run_phase(phase: _Phase, classifier: model_lib.ImageClassifier, cfg: TrainConfig,
               num_classes: int, examples: Examples, log_dir: Optional[str], cache: Cache
               ) -> PhaseResult:
    fit_model = phase.split.trainable if cache.train is not None else classifier.model
    _compile(fit_model, phase.learning_rate, cfg.label_smoothing)
    recorder = _Recorder()
    keep = _KeepBest(phase.baseline, cfg.restore_best_weights, classifier.model,
                     _checkpoint_path(cfg, log_dir, phase.name))
    callbacks: List[keras.callbacks.Callback] = [
        recorder, keep, *_plateau_callbacks(cfg), *_log_callbacks(cfg, log_dir, phase.name)]
    repeat = phase.steps_per_epoch > 0

    if cache.train is not None:
        train = _array_dataset(cache.train, cfg.batch_size, examples.train_labels, num_classes,
                               shuffle_seed=cfg.seed, repeat=repeat)
        validation = _array_dataset(cache.eval, cfg.batch_size, examples.eval_labels,
                                    num_classes)
    else:
        train = data.image_dataset(examples.train_files, cfg.input_size, cfg.batch_size,
                                   num_classes, shuffle_seed=cfg.seed,
                                   augmenter=augment.build_augmenter(cfg), repeat=repeat,
                                   num_examples=len(examples.train_labels))
        validation = None
        if cache.eval is not None:  # must run before the callbacks that read val_loss
            _compile(phase.split.trainable, phase.learning_rate, cfg.label_smoothing)
            callbacks.insert(0, _CachedValidation(phase.split.trainable, _array_dataset(
                cache.eval, cfg.batch_size, examples.eval_labels, num_classes)))
        else:
            validation = data.image_dataset(examples.eval_files, cfg.input_size,
                                            cfg.batch_size, num_classes,
                                            num_examples=len(examples.eval_labels))
    logging.info("%s: lr=%g, training on %s, validating on %s", phase.name,
                 phase.learning_rate, "the cache" if cache.train is not None else "images",
                 "the cache" if cache.eval is not None else "images")
    hist = fit_model.fit(
        train, validation_data=validation, initial_epoch=phase.initial_epoch,
        epochs=phase.initial_epoch + phase.epochs,
        steps_per_epoch=phase.steps_per_epoch or None,
        class_weight=(class_weights(examples.train_labels, num_classes)
                      if cfg.class_weighting else None),
        callbacks=callbacks, verbose=2)
    return PhaseResult(
        name=phase.name, epochs=recorder.epochs, history=_floats(hist.history),
        learning_rates=recorder.learning_rates, trainable_layers=phase.trainable_layers,
        cached_train=cache.train is not None, cached_eval=cache.eval is not None,
        best_val_loss=keep.best, best_epoch=keep.best_epoch)


# -- caching ----------------------------------------------------------------------------
def cache_outputs(phase: str, frozen: keras.Model, cfg: TrainConfig, examples: Examples,
                  with_train: bool, source: Optional[Tuple[keras.Model, Cache]] = None
                  ) -> Cache:
    """`frozen`'s outputs for the eval split (and the train split), within
    train.feature_cache_max_mb. `source` = (model, cache): where the cache holds a split,
    its outputs are `model` applied to the cached arrays instead of `frozen` to images."""
    per_example = 4 * sum(math.prod(t.shape[1:]) for t in frozen.outputs)
    budget = cfg.feature_cache_max_mb * 2 ** 20
    eval_bytes = per_example * len(examples.eval_labels)
    train_bytes = per_example * len(examples.train_labels) if with_train else 0
    if eval_bytes + train_bytes > budget:
        logging.warning("%s: caching would take %d MB > train.feature_cache_max_mb; %s",
                        phase, (eval_bytes + train_bytes) >> 20,
                        "running on images" if eval_bytes > budget else "training on images")
        with_train = False
        if eval_bytes > budget:
            return Cache()

    def outputs(files: List[str], labels: np.ndarray, cached: Optional[Arrays]) -> Arrays:
        if source is not None and cached is not None:
            return _run_frozen(source[0], _array_dataset(cached, cfg.batch_size))
        images = data.image_dataset(files, cfg.input_size, cfg.batch_size,
                                    num_examples=len(labels))
        return _run_frozen(frozen, images.map(lambda x, _: x))

    cached = source[1] if source is not None else Cache()
    return Cache(
        train=(outputs(examples.train_files, examples.train_labels, cached.train)
               if with_train else None),
        eval=outputs(examples.eval_files, examples.eval_labels, cached.eval))


def _run_frozen(model: keras.Model, inputs: tf.data.Dataset) -> Arrays:
    """model's outputs for every batch, in order.

    Outside the distribution strategy: every worker computes every example, as each trains
    on the whole cache. One traced function for every batch size, where Keras' predict
    would trace again for the last, smaller batch."""
    structure = model.inputs[0] if len(model.inputs) == 1 else tuple(model.inputs)
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), structure)
    call = tf.function(lambda x: tf.nest.flatten(model(x, training=False)),
                       input_signature=[spec])
    batches = [[t.numpy() for t in call(x)] for x in inputs]
    return tuple(np.concatenate(parts) for parts in zip(*batches))


def _array_dataset(arrays: Arrays, batch_size: int, labels: Optional[np.ndarray] = None,
                   num_classes: int = 0, shuffle_seed: Optional[int] = None,
                   repeat: bool = False) -> tf.data.Dataset:
    """Cached arrays as batches of inputs, or of (inputs, one-hot labels)."""
    inputs = arrays[0] if len(arrays) == 1 else arrays
    ds = tf.data.Dataset.from_tensor_slices(
        inputs if labels is None else (inputs, tf.one_hot(labels, num_classes)))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(arrays[0]), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# -- compile and callbacks ----------------------------------------------------------------
def _compile(model: keras.Model, learning_rate: float, label_smoothing: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),  # fresh: no state from a phase before
        # The head ends in softmax: the loss takes probabilities, not logits.
        loss=keras.losses.CategoricalCrossentropy(from_logits=False,
                                                  label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def _plateau_callbacks(cfg: TrainConfig) -> List[keras.callbacks.Callback]:
    callbacks: List[keras.callbacks.Callback] = []
    if cfg.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.early_stopping_patience))
    if cfg.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=cfg.reduce_lr_factor, patience=cfg.reduce_lr_patience,
            min_lr=1e-7))
    return callbacks


def _log_callbacks(cfg: TrainConfig, log_dir: Optional[str], phase: str
                   ) -> List[keras.callbacks.Callback]:
    if not (log_dir and cfg.tensorboard):
        return []
    return [keras.callbacks.TensorBoard(os.path.join(log_dir, phase), write_graph=False)]


def _checkpoint_path(cfg: TrainConfig, log_dir: Optional[str], phase: str) -> Optional[str]:
    if not (log_dir and cfg.checkpoints):
        return None
    directory = os.path.join(log_dir, "checkpoints")
    tf.io.gfile.makedirs(directory)
    return os.path.join(directory, f"{phase}_best.weights.h5")


class _Recorder(keras.callbacks.Callback):
    """Epoch numbers and the learning rate the optimizer starts each epoch with."""

    def __init__(self):
        super().__init__()
        self.epochs: List[int] = []
        self.learning_rates: List[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.learning_rates.append(
            float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class _KeepBest(keras.callbacks.Callback):
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


class _CachedValidation(keras.callbacks.Callback):
    """Adds val_* to the epoch's logs by evaluating the trainable part on cached inputs."""

    def __init__(self, evaluator: keras.Model, dataset: tf.data.Dataset):
        super().__init__()
        self._evaluator, self._dataset = evaluator, dataset

    def on_epoch_end(self, epoch, logs=None):
        scores = self._evaluator.evaluate(self._dataset, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": float(value) for name, value in scores.items()})


# -- helpers -------------------------------------------------------------------------------
def class_weights(labels: np.ndarray, num_classes: int) -> Dict[int, float]:
    """Inverse-frequency weights, normalised so a balanced set gets 1.0 for every class."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0
            for i, c in enumerate(counts)}


def _layers_with_weights(model: keras.Model) -> List[str]:
    return [layer.name for layer in model.layers if layer.weights]


def _floats(history: Dict[str, List[Any]]) -> Dict[str, List[float]]:
    return {k: [float(v) for v in vs] for k, vs in history.items()}


def _write_history(results: List[PhaseResult], path: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
    logging.info("training history written to %s", path)
