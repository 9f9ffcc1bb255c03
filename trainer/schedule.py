"""The two-phase fine-tuning schedule.

Phase 1: the base is frozen and runs in inference mode; the head trains at
learning_rate. Phase 2: the top of the base is unfrozen (BatchNorm stays frozen and in
inference mode), the model is recompiled with a fresh optimizer at learning_rate *
phase2_lr_factor, and epoch numbering carries on from phase 1. Each phase has early
stopping, ReduceLROnPlateau, best-weights restore (phase 2 keeps phase 1's weights when
it never beats them on val_loss), checkpoints and TensorBoard logs.

Caching (train.cache_features, phase_cache.py): the layers a phase does not train are a
fixed function of the image, so their outputs are computed once and only the trainable
part runs every epoch. The trade-off: a cached input cannot be augmented afresh (an
augmented image would need fresh features every epoch), so phase 1 trains without
augmentation but for the augmented views of each training image cached with it
(train.views, views.py), and with train.augment phase 2 trains on augmented images while
validating from the cache (validation images are never augmented).
train.feature_cache_max_mb=0 turns caching off, as cache_features=false.

Call inside the distribution strategy's scope (see strategy.py), where the classifier
was built.
"""
import dataclasses
import json
import logging
import math
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from trainer import augment, contract, data, feature_cache, fit_callbacks
from trainer import model as model_lib
from trainer.phase_cache import (Bottom, Cache, Examples, FromCache, cache_bottom,
                                 cache_outputs)
from trainer.train_config import TrainConfig


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
        # A cache beyond the memory budget spills here: local disk even when log_dir is
        # remote ($TMPDIR chooses where); removed when training ends.
        with tempfile.TemporaryDirectory(prefix="imgpipe_feature_cache_") as work_dir:
            bottom = (cache_bottom(classifier, cfg, examples, work_dir)
                      if cfg.phase2_epochs > 0 else None)
            try:
                results = [run_phase1(classifier, cfg, num_classes, examples, log_dir, bottom,
                                      work_dir)]
                if bottom is not None:
                    results.append(run_phase2(classifier, cfg, num_classes, examples,
                                              results[0], log_dir, bottom))
            finally:
                if bottom is not None:
                    bottom.cache.close()
    if log_dir:
        _write_history(results, os.path.join(log_dir, contract.HISTORY_FILE))
    return results


def run_phase1(classifier: model_lib.ImageClassifier, cfg: TrainConfig, num_classes: int,
               examples: Examples, log_dir: Optional[str] = None,
               bottom: Optional[Bottom] = None, work_dir: Optional[str] = None
               ) -> PhaseResult:
    """Base frozen, head trained at learning_rate."""
    cache = Cache()
    if cfg.cache_features:
        source = FromCache(bottom.split.below_head, bottom.cache) \
            if bottom and bottom.split else None
        cache = cache_outputs(contract.PHASE1, classifier.features, cfg, examples, True,
                              source, work_dir=work_dir, num_views=cfg.views)
    phase = _Phase(contract.PHASE1, model_lib.Split(classifier.features, classifier.head),
                   cfg.learning_rate, cfg.phase1_epochs, cfg.phase1_steps_per_epoch,
                   initial_epoch=0, baseline=math.inf,
                   trainable_layers=_layers_with_weights(classifier.head))
    try:
        return _run_phase(phase, classifier, cfg, num_classes, examples, log_dir, cache)
    finally:
        cache.close()  # phase 2 never reads phase 1's features


def run_from_scratch(classifier: model_lib.ImageClassifier, cfg: TrainConfig,
                     num_classes: int, examples: Examples, log_dir: Optional[str] = None
                     ) -> PhaseResult:
    """weights=none: one phase, every layer trained on (augmented) images at learning_rate
    for phase2_epochs; nothing is frozen, so nothing is cached."""
    phase = _Phase(contract.FROM_SCRATCH, model_lib.Split(classifier.features, classifier.head),
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
    phase = _Phase(contract.PHASE2, bottom.split, cfg.learning_rate * cfg.phase2_lr_factor,
                   cfg.phase2_epochs, cfg.phase2_steps_per_epoch,
                   initial_epoch=phase1.next_epoch, baseline=phase1.best_val_loss,
                   trainable_layers=unfrozen + _layers_with_weights(classifier.head))
    return _run_phase(phase, classifier, cfg, num_classes, examples, log_dir, bottom.cache)


def _run_phase(phase: _Phase, classifier: model_lib.ImageClassifier, cfg: TrainConfig,
               num_classes: int, examples: Examples, log_dir: Optional[str], cache: Cache
               ) -> PhaseResult:
    fit_model = phase.split.trainable if cache.train is not None else classifier.model
    fit_callbacks.compile_model(fit_model, phase.learning_rate, cfg.label_smoothing)
    recorder = fit_callbacks.Recorder()
    keep = fit_callbacks.KeepBest(phase.baseline, cfg.restore_best_weights, classifier.model,
                                  fit_callbacks.checkpoint_path(cfg, log_dir, phase.name))
    callbacks: List[keras.callbacks.Callback] = [
        recorder, keep, *fit_callbacks.plateau_callbacks(cfg),
        *fit_callbacks.log_callbacks(cfg, log_dir, phase.name)]
    repeat = phase.steps_per_epoch > 0

    if cache.train is not None:
        train = feature_cache.dataset(cache.train, cfg.batch_size, examples.train_labels,
                                      num_classes, shuffle_seed=cfg.seed, repeat=repeat,
                                      rows_per_example=cache.train_rows_per_example)
        validation = feature_cache.dataset(cache.eval, cfg.batch_size, examples.eval_labels,
                                           num_classes)
    else:
        train = data.image_dataset(examples.train_files, cfg.input_size, cfg.batch_size,
                                   num_classes, shuffle_seed=cfg.seed,
                                   augmenter=augment.build_augmenter(cfg), repeat=repeat,
                                   num_examples=len(examples.train_labels))
        validation = None
        if cache.eval is not None:  # must run before the callbacks that read val_loss
            fit_callbacks.compile_model(phase.split.trainable, phase.learning_rate,
                                        cfg.label_smoothing)
            cached_eval = feature_cache.dataset(cache.eval, cfg.batch_size,
                                                examples.eval_labels, num_classes)
            callbacks.insert(0, fit_callbacks.CachedValidation(phase.split.trainable,
                                                               cached_eval))
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
