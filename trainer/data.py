"""input_fn: transformed TFRecords -> decoded (and, for training, augmented) batches."""
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer import features, image_ops


def _parse_spec():
    return {
        features.TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.LABEL_ID_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


def image_dataset(file_patterns: List[str], image_size: int, batch_size: int,
                  shuffle_seed: Optional[int] = None,
                  augmenter: Optional[keras.Sequential] = None) -> tf.data.Dataset:
    """(image float [0, 255], label_id) batches, one pass over the files.

    `shuffle_seed` set: shuffled (training); None: file order (evaluation, caching).
    """
    files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {file_patterns}")
    ds = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
    if shuffle_seed is not None:
        ds = ds.shuffle(2048, seed=shuffle_seed, reshuffle_each_iteration=True)
    spec = _parse_spec()

    def decode(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        image = image_ops.decode_and_resize(parsed[features.TRANSFORMED_IMAGE_KEY], image_size)
        return image, parsed[features.LABEL_ID_KEY]

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def labels_of(file_patterns: List[str]) -> np.ndarray:
    """All label ids in file order (cheap: images are not decoded)."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    spec = {features.LABEL_ID_KEY: tf.io.FixedLenFeature([], tf.int64)}
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024).map(
        lambda s: tf.io.parse_example(s, spec)[features.LABEL_ID_KEY])
    return np.concatenate([b.numpy() for b in ds]) if files else np.zeros([0], np.int64)


def augmenter(seed: int) -> keras.Sequential:
    """Train-only augmentation, applied to [0, 255] batches before normalisation."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, seed=seed),
        keras.layers.RandomZoom(0.1, seed=seed),
        keras.layers.RandomContrast(0.1, seed=seed),
    ], name="augment")
