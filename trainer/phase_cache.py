"""The feature caches of the two-phase schedule (schedule.py): the outputs of the layers a
phase does not train, computed once per image.

Before phase 1 the base's bottom (everything below the top phase 2 unfreezes) runs once
per image (cache_bottom); in the same pass, phase 1's features are computed from the
bottom's float32 outputs by the rest of the frozen base (a Derived cache). Phase 2 trains
on the bottom's cache itself. A cache is held in memory while it fits
train.feature_cache_max_mb (eval first), the rest in files under a work directory
(trainer/feature_cache.py): the same batches in the same order either way. Phase 2's
feature maps are stored as float16 (half the bytes, a relative rounding error of at most
2**-11); phase 1's pooled vectors stay float32.

A cached input cannot be augmented afresh every epoch; with train.views phase 1's train
cache also holds augmented views of each training image (views.py), computed from images
by the whole frozen base, and each epoch draws one row per image.
"""
import dataclasses
import logging
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from trainer import backbones, contract, data, feature_cache, views
from trainer import model as model_lib
from trainer.features import EVAL_SPLIT, TRAIN_SPLIT
from trainer.train_config import TrainConfig

# How each phase's cache stores its rows (see the module docstring).
CACHE_DTYPES = {contract.PHASE1: np.float32, contract.PHASE2: np.float16}


@dataclasses.dataclass
class Examples:
    """The two splits' TFRecord file patterns and their labels in file order."""
    train_files: List[str]
    eval_files: List[str]
    train_labels: np.ndarray
    eval_labels: np.ndarray

    @classmethod
    def read(cls, train_files: List[str], eval_files: List[str]) -> "Examples":
        return cls(list(train_files), list(eval_files), data.labels_of(train_files),
                   data.labels_of(eval_files))

    def files(self, split: str) -> List[str]:
        return self.train_files if split == TRAIN_SPLIT else self.eval_files

    def labels(self, split: str) -> np.ndarray:
        return self.train_labels if split == TRAIN_SPLIT else self.eval_labels


@dataclasses.dataclass
class Cache:
    """Outputs of a phase's frozen layers, computed once; None: that split runs on images."""
    train: Optional[feature_cache.Store] = None
    eval: Optional[feature_cache.Store] = None
    # Another model's outputs for the same splits, computed in the same pass from these
    # outputs' float32 values before they were stored (phase 1's features, from the bottom).
    derived: Optional["Derived"] = None
    # Rows of `train` per training example: its plain image, then its views (views.py).
    train_rows_per_example: int = 1

    def split(self, name: str) -> Optional[feature_cache.Store]:
        return self.train if name == TRAIN_SPLIT else self.eval

    def close(self) -> None:
        """Frees the stored rows (spilled ones: their files)."""
        for store in (self.train, self.eval):
            if store is not None:
                store.close()
        if self.derived is not None:
            self.derived.cache.close()


@dataclasses.dataclass
class Derived:
    """`cache` holds `model`'s outputs for the rows of the cache it derives from."""
    model: keras.Model
    cache: Cache


@dataclasses.dataclass
class FromCache:
    """Outputs computed by `model` from the rows of `cache`, instead of from images."""
    model: keras.Model
    cache: Cache


@dataclasses.dataclass
class DeriveRequest:
    """Also compute `model`'s outputs, as phase `phase`'s cache, in the same pass."""
    phase: str
    model: keras.Model


@dataclasses.dataclass
class Bottom:
    """Where phase 2 cuts the base, and the outputs of the frozen bottom. Computed before
    phase 1, which derives its features from them: the bottom runs once per image."""
    first: int  # index in base.layers of the first layer phase 2 unfreezes
    split: Optional[model_lib.Split]  # None: the top needs the base's input itself
    cache: Cache


def cache_bottom(classifier: model_lib.ImageClassifier, cfg: TrainConfig,
                 examples: Examples, work_dir: Optional[str] = None) -> Bottom:
    """Phase 2's cut; caches the bottom's outputs for eval, and for train when phase 2
    trains without augmentation, and with them phase 1's features of the same splits."""
    start = cfg.unfreeze_from or backbones.get_backbone(cfg.backbone).top_start
    first = model_lib.top_start_index(classifier.base, start, cfg.unfreeze_top_layers)
    split = model_lib.split_base(classifier, first)
    if split is None or not cfg.cache_features:
        return Bottom(first, split, Cache())
    cache = cache_outputs(contract.PHASE2, split.frozen, cfg, examples,
                          with_train=not cfg.augment,
                          derive=DeriveRequest(contract.PHASE1, split.below_head),
                          work_dir=work_dir)
    return Bottom(first, split, cache)


def cache_outputs(phase: str, frozen: keras.Model, cfg: TrainConfig, examples: Examples,
                  with_train: bool, source: Optional[FromCache] = None,
                  derive: Optional[DeriveRequest] = None,
                  work_dir: Optional[str] = None, num_views: int = 0) -> Cache:
    """`frozen`'s outputs for the eval split (and the train split), stored as
    CACHE_DTYPES[phase]: in memory while they fit train.feature_cache_max_mb (eval
    first), the rest in files under work_dir (None: a temporary directory of its own).

    `source`: where its cache holds a split, the outputs are `source.model` applied to
    the cached rows instead of `frozen` to images (or taken from the cache's own derived
    outputs of that model, when it has them). `derive`: also stores `derive.model`'s
    outputs of the same splits, computed in the same pass from the float32 values, as
    the returned cache's `derived`. `num_views` > 0: the train split's rows are each
    image and its augmented views (views.py), computed by `frozen` from images (neither
    `source` nor `derive` applies to them)."""
    if cfg.feature_cache_max_mb <= 0:
        return Cache()
    splits = [EVAL_SPLIT] + ([TRAIN_SPLIT] if with_train else [])
    rows = {name: len(examples.labels(name)) * (num_views + 1 if name == TRAIN_SPLIT else 1)
            for name in splits}
    memory = _placement(phase, frozen, rows, cfg)
    derived_memory = _placement(derive.phase, derive.model, rows, cfg) if derive else {}
    cached = source.cache if source is not None else Cache()
    reuse = cached.derived.cache if cached.derived and cached.derived.model is source.model \
        else Cache()

    stores: Dict[str, feature_cache.Store] = {}
    derived_stores: Dict[str, feature_cache.Store] = {}
    for name in splits:
        num_examples = len(examples.labels(name))
        with_views = num_views > 0 and name == TRAIN_SPLIT
        if reuse.split(name) is not None and derive is None and not with_views:
            stores[name] = reuse.split(name)
            continue
        writer = _writer(phase, frozen, rows[name], memory[name], work_dir, name)
        derived_writer = _writer(derive.phase, derive.model, rows[name], derived_memory[name],
                                 work_dir, name) if derive and not with_views else None
        if with_views:
            model, inputs = frozen, views.view_dataset(examples.files(name), cfg,
                                                       num_examples, num_views)
        elif cached.split(name) is not None:
            model, inputs = source.model, feature_cache.dataset(cached.split(name),
                                                                cfg.batch_size)
        else:
            model, inputs = frozen, data.image_dataset(
                examples.files(name), cfg.input_size, cfg.batch_size, num_examples=num_examples
            ).map(lambda x, _: x)
        _run_frozen(model, inputs, writer, derive.model if derived_writer is not None else None,
                    derived_writer)
        stores[name] = writer.finish()
        if derived_writer is not None:
            derived_stores[name] = derived_writer.finish()
    derived = Derived(derive.model, Cache(train=derived_stores.get(TRAIN_SPLIT),
                                          eval=derived_stores[EVAL_SPLIT])) if derive else None
    return Cache(train=stores.get(TRAIN_SPLIT), eval=stores[EVAL_SPLIT], derived=derived,
                 train_rows_per_example=num_views + 1 if TRAIN_SPLIT in stores else 1)


def _placement(phase: str, model: keras.Model, rows: Dict[str, int], cfg: TrainConfig
               ) -> Dict[str, bool]:
    """Split name -> whether its cache (of `rows[name]` rows) is held in memory: eval
    while it fits the budget, train while both do."""
    per_row = feature_cache.row_bytes(_output_shapes(model), CACHE_DTYPES[phase])
    budget = cfg.feature_cache_max_mb * 2 ** 20
    sizes = {name: per_row * count for name, count in rows.items()}
    memory = {EVAL_SPLIT: sizes[EVAL_SPLIT] <= budget}
    if TRAIN_SPLIT in sizes:
        memory[TRAIN_SPLIT] = sizes[EVAL_SPLIT] + sizes[TRAIN_SPLIT] <= budget
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
                derived_model: Optional[keras.Model] = None,
                derived_writer: Optional[feature_cache.Writer] = None) -> None:
    """Writes model's outputs for every batch, in order, and derived_model's outputs of
    those float32 outputs to derived_writer.

    Outside the distribution strategy: every worker computes every example, as each trains
    on the whole cache."""
    call = _traced(model)
    call_derived = _traced(derived_model) if derived_model is not None else None
    try:
        for x in inputs:
            outputs = call(x)
            writer.append([t.numpy() for t in outputs])
            if call_derived is not None:
                derived = call_derived(outputs[0] if len(outputs) == 1 else tuple(outputs))
                derived_writer.append([t.numpy() for t in derived])
    except BaseException:
        writer.abort()
        if derived_writer is not None:
            derived_writer.abort()
        raise
