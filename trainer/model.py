"""Backbone + head, built so the base can be frozen, unfrozen, split and bypassed.

    image [0, 255] -> normalise -> base (always in inference mode)
                   -> head: [3x3 conv block] -> gap | flatten -> dense layers -> softmax

The base always runs in inference mode: BatchNorm keeps its pretrained statistics and
the backbone's own dropout / drop-connect stay off, in both phases. (Keras 3 functional
models overwrite a `training=False` written at graph-building time with the outer call's
value, so the base is wrapped in a layer whose call has no `training` argument.)

When the head starts with global average pooling, the pooling is moved in front of it:
the `features` model then ends in a vector, which is what phase 1 caches (schedule.py).
`split_base` cuts the base below its unfrozen top the same way for phase 2.
"""
import dataclasses
from typing import List, Optional, Sequence, Tuple

import keras

from trainer import backbones
from trainer.train_config import TrainConfig


class InferenceMode(keras.layers.Layer):
    """Calls the wrapped model with training=False, whatever the enclosing call says."""

    def __init__(self, inner: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs):
        return self.inner(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


@dataclasses.dataclass
class ImageClassifier:
    model: keras.Model  # image -> probabilities
    base: keras.Model  # the headless backbone inside `model`
    normalise: keras.layers.Layer  # image [0, 255] -> the base's input
    features: keras.Model  # image -> head input (shares `model`'s layers)
    head: keras.Model  # head input -> probabilities (shares `model`'s layers)
    pool: Optional[keras.layers.Layer]  # the pooling moved in front of the head, if any


@dataclasses.dataclass
class Split:
    """A model cut in two: `frozen` feeds `trainable`; both share the classifier's layers."""
    frozen: keras.Model  # image -> trainable's inputs
    trainable: keras.Model  # frozen's outputs -> probabilities
    # frozen's outputs -> the head's input: the part of `trainable` below the head
    # (for a cut inside the base; None when the cut is the head's input itself)
    below_head: Optional[keras.Model] = None


OUTPUT_LAYER = "probabilities"  # the head's softmax layer: one unit per class id


def build_head(input_shape: Tuple[int, ...], num_classes: int, cfg: TrainConfig
               ) -> keras.Model:
    """Dropout feeds every Dense layer; L2 (if any) applies to every kernel."""
    l2 = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    inputs = keras.Input(input_shape, name="head_input")
    x = inputs
    if len(input_shape) == 3:  # a feature map: conv block and pooling are the head's
        if cfg.conv_block_filters:
            x = keras.layers.Conv2D(cfg.conv_block_filters, 3, padding="same",
                                    activation="relu", kernel_regularizer=l2,
                                    name="head_conv")(x)
        x = (keras.layers.GlobalAveragePooling2D(name="head_pool") if cfg.pooling == "gap"
             else keras.layers.Flatten(name="head_flatten"))(x)
    for i, units in enumerate(cfg.dense_units):
        x = _dropout(x, cfg.dropout, f"head_dropout_{i}")
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=l2,
                               name=f"head_dense_{i}")(x)
    x = _dropout(x, cfg.dropout, "head_dropout_out")
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=l2,
                                 name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name="head")


def _dropout(x, rate: float, name: str):
    return keras.layers.Dropout(rate, name=name)(x) if rate else x


def build_classifier(cfg: TrainConfig, num_classes: int) -> ImageClassifier:
    backbone = backbones.get_backbone(cfg.backbone)
    base = backbones.build_base(backbone, cfg.input_size, cfg.weights)
    # From scratch every layer trains, BatchNorm included: its statistics are the
    # data's own, not pretrained ones to protect.
    base.trainable = cfg.from_scratch

    images = keras.Input((cfg.input_size, cfg.input_size, 3), name="image")
    normalise = keras.layers.Lambda(backbone.preprocess, name="normalise")
    x = base(normalise(images)) if cfg.from_scratch else \
        InferenceMode(base, name="base_inference")(normalise(images))
    pool = None
    if cfg.pooling == "gap" and not cfg.conv_block_filters:
        pool = keras.layers.GlobalAveragePooling2D(name="pool")
        x = pool(x)
    head = build_head(tuple(x.shape[1:]), num_classes, cfg)
    return ImageClassifier(
        model=keras.Model(images, head(x), name=f"{cfg.backbone}_classifier"),
        base=base, normalise=normalise,
        features=keras.Model(images, x, name="features"),
        head=head, pool=pool,
    )


def top_start_index(base: keras.Model, start: str, top_layers: int) -> int:
    """Index in base.layers of the first layer of the top to unfreeze.

    `top_layers` > 0: that many layers from the end; otherwise the first layer whose name
    equals `start` or starts with it (a block prefix such as "conv5_" or "block6d").
    """
    names = [layer.name for layer in base.layers]
    if top_layers > 0:
        return max(1, len(names) - top_layers)  # never the InputLayer
    if start in names:
        return names.index(start)
    for i, name in enumerate(names):
        if name.startswith(start):
            return i
    raise ValueError(f"config field 'train.unfreeze_from': no layer named or starting with "
                     f"{start!r} in {base.name}; its last layers are {names[-5:]}")


def unfreeze_top(base: keras.Model, first: int) -> List[str]:
    """Makes base.layers[first:] trainable except BatchNorm; returns the layers with
    weights that became trainable."""
    base.trainable = True
    unfrozen = []
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def cut_tensors(base: keras.Model, first: int) -> List[keras.KerasTensor]:
    """The tensors computed below base.layers[first] that the layers from there use."""
    top = base.layers[first:]
    top_ids = {id(layer) for layer in top}
    producer = {id(layer.output): layer for layer in base.layers}
    cut: List[keras.KerasTensor] = []
    for layer in top:
        for tensor in keras.tree.flatten(layer.input):
            below = id(producer[id(tensor)]) not in top_ids
            if below and all(tensor is not c for c in cut):
                cut.append(tensor)
    return cut


def split_base(classifier: ImageClassifier, first: int) -> Optional[Split]:
    """Cuts the classifier below base.layers[first]: frozen = image -> the tensors the top
    needs, trainable = those tensors -> probabilities. None when the top needs the base's
    input itself (nothing below it to cache)."""
    base = classifier.base
    cut = cut_tensors(base, first)
    if any(t is i for t in cut for i in base.inputs):
        return None
    bottom = keras.Model(base.inputs[0], _one_or(cut), name="base_bottom")
    top = keras.Model(_one_or(cut), base.outputs[0], name="base_top")

    images = keras.Input(classifier.model.inputs[0].shape[1:], name="image")
    frozen_out = InferenceMode(bottom, name="bottom_inference")(classifier.normalise(images))
    frozen = keras.Model(images, frozen_out, name="frozen_bottom")

    cut_inputs = [keras.Input(t.shape[1:], name=f"cut_{i}") for i, t in enumerate(cut)]
    x = InferenceMode(top, name="base_inference")(_one_or(cut_inputs))
    if classifier.pool is not None:
        x = classifier.pool(x)
    return Split(
        frozen=frozen,
        trainable=keras.Model(_one_or(cut_inputs), classifier.head(x), name="trainable_top"),
        below_head=keras.Model(_one_or(cut_inputs), x, name="top_features"))


def _one_or(tensors: Sequence):
    """A single tensor, or a tuple (the structure tf.data yields for several inputs)."""
    return tensors[0] if len(tensors) == 1 else tuple(tensors)
