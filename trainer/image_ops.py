"""Decode and resize: the ONE image function shared by training, evaluation and serving.

Training (data.py), the exported signatures (export.py) and ingestion's decodability
check all call `decode_and_resize`, so a served image is processed exactly as a trained
one. Backbone-specific normalisation happens inside the model (its first layers), so it
cannot drift either.
"""
import tensorflow as tf


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes (scalar string) -> float32 [size, size, 3] in [0, 255].

    Grayscale is replicated to RGB, the alpha channel is dropped, palette and 16-bit
    images are converted to 8-bit RGB by the decoder. The image is resized to a square
    without cropping (bilinear, antialiased when shrinking).
    """
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size),
                            method="bilinear", antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    return tf.ensure_shape(image, (image_size, image_size, 3))


def decode_batch(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """A [batch] string tensor -> float32 [batch, size, size, 3]."""
    return tf.map_fn(lambda b: decode_and_resize(b, image_size), image_bytes,
                     fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))
