"""Helpers for the trainer tests: tiny synthetic data in the Transform output's format."""
import io
from pathlib import Path
from typing import Dict, List, Sequence, Set

import numpy as np

LABELS = ("red", "green", "blue")  # label id i tints channel i
NUM_CLASSES = len(LABELS)
IMAGE_SIZE = 32


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def synthetic_images(count: int, seed: int, size: int = 40) -> List[tuple]:
    """(PNG bytes, label): noise tinted by class (red, green, blue) so a head can learn it."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        label = i % NUM_CLASSES
        pixels = rng.integers(0, 120, (size, size + 6, 3))
        pixels[..., label] += 120
        out.append((encode(pixels.astype(np.uint8), "PNG"), label))
    return out


def write_records(path: Path, examples: Sequence[tuple]) -> str:
    """GZIP TFRecords of tf.Examples {image_bytes, label_id}, as Transform writes them."""
    import tensorflow as tf

    from trainer import features

    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for image, label in examples:
            example = tf.train.Example(features=tf.train.Features(feature={
                features.TRANSFORMED_IMAGE_KEY: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[image])),
                features.LABEL_ID_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[label])),
            }))
            writer.write(example.SerializeToString())
    return str(path)


def calibrate_batchnorm(base, images: np.ndarray) -> None:
    """Data-dependent BatchNorm statistics for a randomly initialised base.

    With weights=none every moving mean is 0 and variance 1, so in inference mode the
    activations of a deep random net shrink towards 0 (~1e-13 at the top) and no
    gradient is big enough to move a weight. One training-mode pass with momentum 0 sets
    each BatchNorm's statistics to its input's, as pretrained statistics would be.
    """
    import keras

    bns = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    trainable, momenta = base.trainable, [bn.momentum for bn in bns]
    base.trainable = True
    for bn in bns:
        bn.momentum = 0.0
    base(images, training=True)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    base.trainable = trainable


def weights_by_layer(model) -> Dict[str, Dict[str, np.ndarray]]:
    """layer name -> {variable path: value} for every variable, trainable or not."""
    return {layer.name: {v.path: np.array(v.numpy()) for v in layer.weights}
            for layer in model.layers if layer.weights}


def changed_layers(before, after) -> Set[str]:
    """Names of the layers with at least one variable that is not bit-identical."""
    return {layer for layer, values in before.items()
            if any(not np.array_equal(v, after[layer][path]) for path, v in values.items())}


def unfrozen_by(base, first: int) -> Set[str]:
    """What phase 2 may train in the base: layers from `first` on, BatchNorm excepted."""
    import keras

    return {layer.name for layer in base.layers[first:]
            if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)}
