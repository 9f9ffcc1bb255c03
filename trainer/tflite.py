"""Optional TFLite export (train.tflite): decoded pixels in, probabilities out.

TFLite has no image decoder among its builtin ops, so this model starts after
`image_ops.decode_and_resize`: a float32 [batch, size, size, 3] RGB tensor in [0, 255],
resized to a square without cropping (bilinear, antialiased). Normalisation is inside.
labels.txt beside the model maps output indices to class names.
"""
import os
from typing import List

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import \
    convert_variables_to_constants_v2

from trainer import contract


def convert(model: keras.Model, image_size: int, mode: str) -> bytes:
    """mode: float32, float16 (weights stored as float16) or dynamic_range (int8 weights)."""
    call = tf.function(lambda image: model(image, training=False), input_signature=[
        tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="image")])
    # Frozen first: TF 2.16's converter aborts on the variable reads of Keras 3 layers
    # ("missing attribute 'value'", tensorflow/tensorflow#63987).
    frozen = convert_variables_to_constants_v2(call.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if mode in ("float16", "dynamic_range"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def export_tflite(model: keras.Model, image_size: int, labels: List[str], output_dir: str,
                  mode: str) -> str:
    """Writes model.tflite and labels.txt into output_dir; returns the model's path."""
    tf.io.gfile.makedirs(output_dir)
    path = os.path.join(output_dir, contract.TFLITE_MODEL_FILE)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(convert(model, image_size, mode))
    with tf.io.gfile.GFile(os.path.join(output_dir, contract.LABELS_FILE), "w") as f:
        f.write("\n".join(labels) + "\n")
    return path
