"""input_fn: transformed TFRecords -> decoded (and, for training, augmented) batches."""
from typing import List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from trainer import features, image_ops


def _files(file_patterns: Sequence[str]) -> List[str]:
    return sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))


def image_dataset(file_patterns: Sequence[str], image_size: int, batch_size: int,
                  num_classes: Optional[int] = None, shuffle_seed: Optional[int] = None,
                  augmenter: Optional[keras.Sequential] = None, repeat: bool = False,
                  num_examples: Optional[int] = None) -> tf.data.Dataset:
    """(image float [0, 255], label) batches in file order unless `shuffle_seed` is set.

    Labels are ids, or one-hot vectors when `num_classes` is given. `repeat`: endless
    (for a fixed number of steps per epoch). `num_examples`, when known, lets Keras count
    the steps of an epoch up front.
    """
    files = _files(file_patterns)
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {list(file_patterns)}")
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if num_examples is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
    if shuffle_seed is not None:
        ds = ds.shuffle(2048, seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    spec = {
        features.TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.LABEL_ID_KEY: tf.io.FixedLenFeature([], tf.int64),
    }

    def decode(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        image = image_ops.decode_and_resize(parsed[features.TRANSFORMED_IMAGE_KEY], image_size)
        label = parsed[features.LABEL_ID_KEY]
        return image, (label if num_classes is None else tf.one_hot(label, num_classes))

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def encoded_images(file_patterns: Sequence[str], num_examples: Optional[int] = None
                   ) -> tf.data.Dataset:
    """The encoded image bytes of every example, in file order."""
    spec = {features.TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(_files(file_patterns), compression_type="GZIP")
    if num_examples is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
    return ds.map(lambda s: tf.io.parse_single_example(s, spec)[features.TRANSFORMED_IMAGE_KEY],
                  num_parallel_calls=tf.data.AUTOTUNE)


def labels_of(file_patterns: Sequence[str]) -> np.ndarray:
    """All label ids in file order (cheap: images are not decoded)."""
    files = _files(file_patterns)
    spec = {features.LABEL_ID_KEY: tf.io.FixedLenFeature([], tf.int64)}
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024).map(
        lambda s: tf.io.parse_example(s, spec)[features.LABEL_ID_KEY])
    return np.concatenate([b.numpy() for b in ds]) if files else np.zeros([0], np.int64)
