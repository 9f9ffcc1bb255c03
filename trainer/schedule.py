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
are never augmented).

Where the cache lives (trainer/feature_cache.py): in memory while a phase's cache fits
train.feature_cache_max_mb, otherwise written batch by batch to files in a temporary
directory the run removes, and read back from there every epoch: the same batches in the
same order either way, so the same training. Feature maps (phase 2's cache) are stored
as float16: half the bytes, a relative rounding error of at most 2**-11. Phase 1's
features are computed from the bottom's float32 outputs in the same pass, before that
rounding, and stay float32: they are the pooled vectors (1/7 of a Lite0 map at 224 px),
and phase 1 trains on the very features the base computes from images.
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
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from trainer import augment, backbones, contract, data, feature_cache, fit_callbacks
from trainer import model as model_lib
from trainer.train_config import TrainConfig

# How each phase's cache stores its rows (see the module docstring).
CACHE_DTYPES = {"phase1": np.float32, "phase2": np.float16}


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
    train: Optional[feature_cache.Store] = None
    eval: Optional[feature_cache.Store] = None
    # (model, its outputs for the same splits), computed in the same pass from the
    # outputs' float32 values before they were stored: phase 1's features from the bottom
    derived: Optional[Tuple[keras.Model, "Cache"]] = None

    def close(self) -> None:
        """Frees the stored rows (spilled ones: their files)."""
        for store in (self.train, self.eval):
            if store is not None:
                store.close()
        if self.derived is not None:
            self.derived[1].close()


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


def cache_bottom(classifier: model_lib.ImageClassifier, cfg: TrainConfig,
                 examples: Examples, work_dir: Optional[str] = None) -> Bottom:
    """Phase 2's cut; caches the bottom's outputs for eval, and for train when phase 2
    trains without augmentation, and with them phase 1's features of the same splits."""
    start = cfg.unfreeze_from or backbones.get_backbone(cfg.backbone).top_start
    first = model_lib.top_start_index(classifier.base, start, cfg.unfreeze_top_layers)
    split = model_lib.split_base(classifier, first)
    if split is None or not cfg.cache_features:
        return Bottom(first, split, Cache())
    return Bottom(first, split, cache_outputs("phase2", split.frozen, cfg, examples,
                                              with_train=not cfg.augment,
                                              derive=("phase1", split.below_head),
                                              work_dir=work_dir))


def run_phase1(classifier: model_lib.ImageClassifier, cfg: TrainConfig, num_classes: int,
               examples: Examples, log_dir: Optional[str] = None,
               bottom: Optional[Bottom] = None, work_dir: Optional[str] = None
               ) -> PhaseResult:
    """Base frozen, head trained at learning_rate."""
    cache = Cache()
    if cfg.cache_features:
        source = (bottom.split.below_head, bottom.cache) if bottom and bottom.split else None
        cache = cache_outputs("phase1", classifier.features, cfg, examples, True, source,
                              work_dir=work_dir)
    phase = _Phase("phase1", model_lib.Split(classifier.features, classifier.head),
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
                                      num_classes, shuffle_seed=cfg.seed, repeat=repeat)
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


# -- caching ----------------------------------------------------------------------------
def cache_outputs(phase: str, frozen: keras.Model, cfg: TrainConfig, examples: Examples,
                  with_train: bool, source: Optional[Tuple[keras.Model, Cache]] = None,
                  derive: Optional[Tuple[str, keras.Model]] = None,
                  work_dir: Optional[str] = None) -> Cache:
    """`frozen`'s outputs for the eval split (and the train split), stored as
    CACHE_DTYPES[phase]: in memory while they fit train.feature_cache_max_mb (eval
    first), the rest in files under work_dir (None: a temporary directory of its own).

    `source` = (model, cache): where the cache holds a split, its outputs are `model`
    applied to the cached outputs instead of `frozen` to images (those the cache derived
    with `model` in its own pass, when it did). `derive` = (phase, model): also stores
    `model`'s outputs of the same splits, computed in the same pass from the float32
    values, as that phase's cache: the returned cache's `derived`."""
    if cfg.feature_cache_max_mb <= 0:
        return Cache()
    splits = {"eval": (examples.eval_files, examples.eval_labels)}
    if with_train:
        splits["train"] = (examples.train_files, examples.train_labels)
    memory = _placement(phase, frozen, splits, cfg)
    derived_memory = _placement(derive[0], derive[1], splits, cfg) if derive else {}
    cached = source[1] if source is not None else Cache()
    reuse = cached.derived[1] if cached.derived and cached.derived[0] is source[0] else Cache()

    stores, derived_stores = {}, {}
    for name, (files, labels) in splits.items():
        if getattr(reuse, name) is not None and derive is None:
            stores[name] = getattr(reuse, name)
            continue
        writer = _writer(phase, frozen, len(labels), memory[name], work_dir, name)
        also = (derive[1], _writer(derive[0], derive[1], len(labels), derived_memory[name],
                                   work_dir, name)) if derive else None
        if source is not None and getattr(cached, name) is not None:
            model, inputs = source[0], feature_cache.dataset(getattr(cached, name),
                                                             cfg.batch_size)
        else:
            model, inputs = frozen, data.image_dataset(
                files, cfg.input_size, cfg.batch_size, num_examples=len(labels)
            ).map(lambda x, _: x)
        _run_frozen(model, inputs, writer, also)
        stores[name] = writer.finish()
        if also is not None:
            derived_stores[name] = also[1].finish()
    return Cache(train=stores.get("train"), eval=stores["eval"],
                 derived=(derive[1], Cache(train=derived_stores.get("train"),
                                           eval=derived_stores["eval"])) if derive else None)


def _placement(phase: str, model: keras.Model, splits: Dict[str, Tuple[Any, np.ndarray]],
               cfg: TrainConfig) -> Dict[str, bool]:
    """Split name -> whether its cache is held in memory: eval while it fits the budget,
    train while both do."""
    per_example = feature_cache.row_bytes(_output_shapes(model), CACHE_DTYPES[phase])
    budget = cfg.feature_cache_max_mb * 2 ** 20
    sizes = {name: per_example * len(labels) for name, (_, labels) in splits.items()}
    memory = {"eval": sizes["eval"] <= budget}
    if "train" in sizes:
        memory["train"] = sizes["eval"] + sizes["train"] <= budget
    on_disk = [name for name, held in memory.items() if not held]
    logging.info("%s: feature cache of %.1f MB (%s)%s", phase, sum(sizes.values()) / 2 ** 20,
                 np.dtype(CACHE_DTYPES[phase]).name,
                 f", {' and '.join(on_disk)} on disk: above train.feature_cache_max_mb"
                 if on_disk else ", in memory")
    return memory


def _output_shapes(model: keras.Model) -> List[Tuple[int, ...]]:
    return [tuple(t.shape[1:]) for t in model.outputs]


def _writer(phase: str, model: keras.Model, num_rows: int, in_memory: bool,
            work_dir: Optional[str], split: str) -> feature_cache.Writer:
    return feature_cache.Writer(_output_shapes(model), num_rows, in_memory, work_dir,
                                CACHE_DTYPES[phase], name=f"{phase}_{split}")


def _traced(model: keras.Model):
    """model's outputs, flattened, by one traced function for every batch size (Keras'
    predict would trace again for the last, smaller batch)."""
    structure = model.inputs[0] if len(model.inputs) == 1 else tuple(model.inputs)
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), structure)
    return tf.function(lambda x: tf.nest.flatten(model(x, training=False)),
                       input_signature=[spec])


def _run_frozen(model: keras.Model, inputs: tf.data.Dataset, writer: feature_cache.Writer,
                also: Optional[Tuple[keras.Model, feature_cache.Writer]] = None) -> None:
    """Writes model's outputs for every batch, in order; `also` = (model, writer): that
    model's outputs of the float32 outputs too.

    Outside the distribution strategy: every worker computes every example, as each trains
    on the whole cache."""
    call = _traced(model)
    call_also = _traced(also[0]) if also is not None else None
    try:
        for x in inputs:
            outputs = call(x)
            writer.append([t.numpy() for t in outputs])
            if call_also is not None:
                derived = call_also(outputs[0] if len(outputs) == 1 else tuple(outputs))
                also[1].append([t.numpy() for t in derived])
    except BaseException:
        writer.abort()
        if also is not None:
            also[1].abort()
        raise


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
