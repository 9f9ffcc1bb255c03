"""Augmented views of the training images, for a cached phase 1.

A cached input cannot be augmented afresh every epoch, but a few augmented views of each
training image can be sent through the frozen base once and cached beside the plain
image: phase 1 then draws one of them per image each epoch (feature_cache.dataset with
rows_per_example). A view is a random resized crop (a random part of the image covering
train.view_min_area to all of it, aspect ratio 3/4 to 4/3) scaled to the input size,
flipped as train.augment_flip says. Row i * (views + 1) holds image i as evaluation and
serving see it (image_ops.decode_and_resize); the next `views` rows its views.

The views are a function of (train.seed, image index, view index) alone (stateless
random ops): the same run caches the same views.
"""
from typing import Sequence

import tensorflow as tf

from trainer import data, image_ops
from trainer.train_config import TrainConfig

ASPECT_RATIOS = (3 / 4, 4 / 3)


def random_view(image: tf.Tensor, image_size: int, min_area: float, flip: str,
                seed: tf.Tensor) -> tf.Tensor:
    """A decoded [h, w, 3] image -> a random resized crop [size, size, 3], maybe flipped;
    `seed`: a shape [2] int tensor."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=ASPECT_RATIOS,
        area_range=(min_area, 1.0), max_attempts=20, use_image_if_no_bounding_boxes=True)
    view = image_ops.resize(tf.slice(image, begin, size), image_size)
    if flip in ("horizontal", "horizontal_and_vertical"):
        view = tf.image.stateless_random_flip_left_right(view, seed=seed + 1)
    if flip in ("vertical", "horizontal_and_vertical"):
        view = tf.image.stateless_random_flip_up_down(view, seed=seed + 2)
    return view


def view_dataset(file_patterns: Sequence[str], cfg: TrainConfig, num_examples: int,
                 views: int) -> tf.data.Dataset:
    """Batches of [0, 255] images in row order: per example its plain image, then `views`
    views (num_examples * (views + 1) rows), cropped and flipped as `cfg` says."""
    size = cfg.input_size

    def expand(index, image_bytes):
        image = image_ops.decode(image_bytes)
        plain = image_ops.resize(image, size)  # = image_ops.decode_and_resize
        seeds = tf.stack([tf.fill([views], tf.cast(cfg.seed, tf.int64)) * 1_000_003 + index,
                          tf.range(views, dtype=tf.int64)], axis=1)
        augmented = tf.map_fn(
            lambda s: random_view(image, size, cfg.view_min_area, cfg.augment_flip, s),
            seeds, fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
        return tf.concat([plain[None], augmented], axis=0)

    ds = data.encoded_images(file_patterns, num_examples).enumerate()
    ds = ds.map(expand, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch().batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)
