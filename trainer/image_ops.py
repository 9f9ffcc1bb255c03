"""Decode and resize: the ONE image function shared by training, evaluation and serving.

Training (data.py), the exported signatures (export.py) and ingestion's decodability
check all call `decode_and_resize`, so a served image is processed exactly as a trained
one. Backbone-specific normalisation happens inside the model (its first layers), so it
cannot drift either. The augmented training views (views.py) use `decode` and `resize`.
"""
import tensorflow as tf

from trainer import contract


def _header_ints(image_bytes: tf.Tensor, start: int, length: int) -> tf.Tensor:
    """Bytes [start, start+length) of the (zero-padded) header as int64s."""
    padded = tf.strings.join([image_bytes, tf.constant(b"\0" * 32)])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, start, length), tf.uint8),
                   tf.int64)


def _number(digits: tf.Tensor, length: int, little_endian: bool) -> tf.Tensor:
    digits = tf.ensure_shape(digits, (length,))
    digits = digits[::-1] if little_endian else digits
    weights = tf.constant([256 ** i for i in range(length - 1, -1, -1)], tf.int64)
    return tf.reduce_sum(digits * weights)


def header_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """width * height from the header of encoded image bytes (int64 scalar), without
    decoding: JPEG's frame header, PNG's IHDR, GIF's screen, BMP's info header; 0 for
    anything else (the decoder then says what is wrong with it)."""
    magic = tf.strings.substr(tf.strings.join([image_bytes, tf.constant(b"\0" * 8)]), 0, 8)

    def sized(width_at: int, height_at: int, length: int, little: bool):
        def read():
            width = _number(_header_ints(image_bytes, width_at, length), length, little)
            height = _number(_header_ints(image_bytes, height_at, length), length, little)
            if length == 4 and little:  # BMP: signed; a negative height is top-down
                width = tf.where(width >= 2 ** 31, width - 2 ** 32, width)
                height = tf.where(height >= 2 ** 31, height - 2 ** 32, height)
            return tf.abs(width) * tf.abs(height)
        return read

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0] * shape[1]

    prefix = tf.strings.substr(magic, 0, 3)
    return tf.case([
        (tf.equal(prefix, b"\xff\xd8\xff"), jpeg),
        (tf.equal(magic, b"\x89PNG\r\n\x1a\n"), sized(16, 20, 4, False)),
        (tf.equal(prefix, b"GIF"), sized(6, 8, 2, True)),
        (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"), sized(18, 22, 4, True)),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes (scalar string) -> uint8 [h, w, 3].

    Grayscale is replicated to RGB, the alpha channel is dropped, palette and 16-bit
    images are converted to 8-bit RGB by the decoder. An image whose header declares more
    than contract.MAX_IMAGE_PIXELS pixels is refused before decoding, so that one input
    cannot take gigabytes.
    """
    pixels = header_pixels(image_bytes)
    too_large = tf.debugging.Assert(
        pixels <= contract.MAX_IMAGE_PIXELS,
        [tf.constant(f"image too large to decode: more than {contract.MAX_IMAGE_PIXELS} "
                     "pixels (width x height in its header):"), pixels])
    with tf.control_dependencies([too_large]):
        return tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8,
                                  expand_animations=False)


def resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """A decoded [h, w, 3] image (uint8, or float in [0, 255]) -> float32 [size, size, 3]
    in [0, 255], without cropping (bilinear, antialiased when shrinking). Squashing rather
    than centre-cropping: measured on flower_photos and hymenoptera (frozen Lite2
    features, 5 folds), the centred square scored no better."""
    # Resized from uint8 (the kernel reads any integer type): the same values as casting
    # first, without a float32 copy of the full-size image (4 bytes a channel).
    image = tf.image.resize(image, (image_size, image_size), method="bilinear",
                            antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    return tf.ensure_shape(image, (image_size, image_size, 3))


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded bytes (scalar string) -> float32 [size, size, 3] in [0, 255]: `decode`,
    then `resize`."""
    return resize(decode(image_bytes), image_size)


def decode_batch(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """A [batch] string tensor -> float32 [batch, size, size, 3]."""
    return tf.map_fn(lambda b: decode_and_resize(b, image_size), image_bytes,
                     fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))
