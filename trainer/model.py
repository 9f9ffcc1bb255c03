"""Backbone + head, built so the base can be frozen, unfrozen and bypassed.

    image [0, 255] -> normalise -> base (always called with training=False)
                   -> global average pooling -> head (dense layers, softmax)

The base is called in inference mode in both phases: BatchNorm keeps its pretrained
statistics even when the top of the base is unfrozen. Pooling sits before the head so
phase 1 can train the head on cached pooled features (schedule.py).
"""
import dataclasses
from typing import List

import keras

from trainer import backbones


@dataclasses.dataclass
class ImageClassifier:
    model: keras.Model  # image -> probabilities
    base: keras.Model  # the headless backbone inside `model`
    features: keras.Model  # image -> pooled base features (shares `model`'s layers)
    head: keras.Model  # pooled features -> probabilities (shares `model`'s layers)


def build_head(feature_dim: int, num_classes: int, dense_units: List[int], dropout: float
               ) -> keras.Model:
    inputs = keras.Input((feature_dim,), name="pooled_features")
    x = inputs
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def build_classifier(backbone_name: str, weights: str, image_size: int, num_classes: int,
                     dense_units: List[int], dropout: float) -> ImageClassifier:
    backbone = backbones.get_backbone(backbone_name)
    base = backbones.build_base(backbone, image_size, weights)
    base.trainable = False

    images = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Lambda(backbone.preprocess, name="normalise")(images)
    x = base(x, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    head = build_head(pooled.shape[-1], num_classes, dense_units, dropout)
    probabilities = head(pooled)
    return ImageClassifier(
        model=keras.Model(images, probabilities, name=f"{backbone_name}_classifier"),
        base=base,
        features=keras.Model(images, pooled, name="features"),
        head=head,
    )


def unfreeze_top(base: keras.Model, start_layer: str, top_layers: int) -> List[str]:
    """Makes the top of the base trainable; BatchNorm layers stay frozen.

    `top_layers` > 0 unfreezes that many layers from the top; otherwise everything from
    the layer named `start_layer` upwards. Returns the names of the unfrozen layers.
    """
    names = [layer.name for layer in base.layers]
    if top_layers > 0:
        first = max(0, len(names) - top_layers)
    elif start_layer in names:
        first = names.index(start_layer)
    else:
        raise ValueError(f"config field 'train.unfreeze_from': no layer {start_layer!r} in "
                         f"{base.name}; its last layers are {names[-5:]}")
    base.trainable = True
    unfrozen = []
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen
