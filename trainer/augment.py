"""Train-only augmentation from config, applied to [0, 255] batches before normalisation.

Never part of the exported model: serving and evaluation see the images as decoded.
Cached training inputs (schedule.py) cannot be augmented, so augmentation runs only
where the phase trains on images.
"""
from typing import List, Optional

import keras

from trainer.train_config import TrainConfig


def build_augmenter(cfg: TrainConfig) -> Optional[keras.Sequential]:
    """The configured random transforms in order, or None when augmentation is off."""
    if not cfg.augment:
        return None
    layers: List[keras.layers.Layer] = []
    if cfg.augment_flip != "none":
        layers.append(keras.layers.RandomFlip(cfg.augment_flip, seed=cfg.seed))
    if cfg.augment_rotation:
        layers.append(keras.layers.RandomRotation(cfg.augment_rotation, seed=cfg.seed))
    if cfg.augment_zoom:
        layers.append(keras.layers.RandomZoom(cfg.augment_zoom, seed=cfg.seed))
    if cfg.augment_contrast:  # clips to [0, 255], the range it is given
        layers.append(keras.layers.RandomContrast(cfg.augment_contrast, seed=cfg.seed))
    return keras.Sequential(layers, name="augment") if layers else None
