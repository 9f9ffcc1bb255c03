"""An accepted image's tf.Example: its stored bytes and the properties the checks measured,
under the feature keys of trainer.features."""
from __future__ import annotations

from typing import Union

import tensorflow as tf

from components.image_example_gen import fingerprint as fp
from components.image_example_gen.image_checks import Outcome
from trainer import features


def _bytes_feature(value: Union[str, bytes]) -> tf.train.Feature:
    value = value.encode("utf-8") if isinstance(value, str) else value
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def to_example(outcome: Outcome) -> tf.train.Example:
    image = outcome.image
    feature = {
        features.IMAGE_KEY: _bytes_feature(image.encoded),
        features.LABEL_KEY: _bytes_feature(outcome.label),
        features.IMAGE_ID_KEY: _bytes_feature(outcome.image_id),
        features.HEIGHT_KEY: _int_feature(image.height),
        features.WIDTH_KEY: _int_feature(image.width),
        features.CHANNELS_KEY: _int_feature(image.channels),
        features.FORMAT_KEY: _bytes_feature(image.format),
        features.SIZE_BUCKET_KEY: _bytes_feature(image.size_bucket),
        features.SOURCE_DIR_KEY: _bytes_feature(outcome.source_dir),
        features.FINGERPRINT_KEY: _int_feature(fp.to_int64(image.fingerprint)),
        features.FILE_SIZE_KEY: _int_feature(image.file_size),
        features.BRIGHTNESS_KEY: tf.train.Feature(
            float_list=tf.train.FloatList(value=[image.brightness])),
        features.SHARPNESS_KEY: tf.train.Feature(
            float_list=tf.train.FloatList(value=[image.sharpness])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))
