"""tf.Transform preprocessing: the label vocabulary; the image passes through encoded.

Decoding and resizing belong to `image_ops.decode_and_resize`, inside the model, so the
transformed examples stay about the size of the encoded images and serving needs no
separate preprocessing step.
"""
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from trainer import features


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any] = None
                     ) -> Dict[str, tf.Tensor]:
    # custom_config carries the trainer code fingerprint only (to bust the cache when
    # this package changes); nothing here depends on it.
    del custom_config
    label = tf.strings.strip(_dense(inputs[features.LABEL_KEY]))
    return {
        features.TRANSFORMED_IMAGE_KEY: _dense(inputs[features.IMAGE_KEY]),
        features.LABEL_ID_KEY: tft.compute_and_apply_vocabulary(
            label, vocab_filename=features.LABEL_VOCABULARY),
    }


def _dense(feature: Any) -> tf.Tensor:
    """Raw features arrive as [batch, 1] (schema-fixed) or sparse; make them [batch]."""
    if isinstance(feature, tf.SparseTensor):
        feature = tf.sparse.to_dense(feature, default_value="")
    return tf.reshape(feature, [-1])
