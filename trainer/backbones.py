"""Backbones by name: builder, input normalisation, default size, where the top starts.

Every backbone takes float images in [0, 255] (what `image_ops.decode_and_resize` gives)
and normalises them itself, so the exported model needs nothing but decoded pixels.
"""
import dataclasses
import os
from typing import Callable, Dict, Optional, Tuple

import keras

WEIGHTS_CHOICES = ("imagenet", "none")


@dataclasses.dataclass(frozen=True)
class Backbone:
    name: str
    # (input_shape, weights or None) -> headless keras.Model
    build_headless: Callable[[Tuple[int, int, int], Optional[str]], keras.Model]
    # float [0, 255] RGB -> what the pretrained weights expect
    preprocess: Callable
    default_size: int
    # First layer of the "top of the base": phase 2 unfreezes from here upwards.
    top_block_start: str


def _keras_app(app_fn: Callable, **kwargs) -> Callable:
    def build(input_shape, weights):
        return app_fn(include_top=False, weights=weights, input_shape=input_shape, **kwargs)
    return build


def _efficientnet_lite0(input_shape, weights):
    from trainer import efficientnet_lite  # local: only loaded when chosen
    return efficientnet_lite.build_efficientnet_lite0(
        input_shape=input_shape, include_top=False, weights=weights)


def _lite_preprocess(x):
    from trainer import efficientnet_lite
    return efficientnet_lite.preprocess_input(x)


def _lite_top_block() -> str:
    from trainer import efficientnet_lite
    return efficientnet_lite.TOP_BLOCK_START


_apps = keras.applications
BACKBONES: Dict[str, Backbone] = {
    b.name: b for b in (
        Backbone("mobilenet_v2", _keras_app(_apps.MobileNetV2),
                 _apps.mobilenet_v2.preprocess_input, 224, "block_16_expand"),
        Backbone("resnet50", _keras_app(_apps.ResNet50),
                 _apps.resnet.preprocess_input, 224, "conv5_block1_1_conv"),
        Backbone("resnet50v2", _keras_app(_apps.ResNet50V2),
                 _apps.resnet_v2.preprocess_input, 224, "conv5_block1_preact_bn"),
        Backbone("vgg16", _keras_app(_apps.VGG16),
                 _apps.vgg16.preprocess_input, 224, "block5_conv1"),
        # Keras' EfficientNet rescales inside the model: its preprocess_input is identity.
        Backbone("efficientnet_b0", _keras_app(_apps.EfficientNetB0),
                 _apps.efficientnet.preprocess_input, 224, "block7a_expand_conv"),
        Backbone("efficientnet_lite0", _efficientnet_lite0, _lite_preprocess, 224,
                 "<efficientnet_lite.TOP_BLOCK_START>"),
    )
}


def get_backbone(name: str) -> Backbone:
    try:
        backbone = BACKBONES[name]
    except KeyError:
        raise ValueError(f"config field 'train.backbone': unknown backbone {name!r}; "
                         f"expected one of {', '.join(sorted(BACKBONES))}") from None
    if name == "efficientnet_lite0":
        backbone = dataclasses.replace(backbone, top_block_start=_lite_top_block())
    return backbone


def build_base(backbone: Backbone, image_size: int, weights: str) -> keras.Model:
    """Builds the headless base; weights is 'imagenet', 'none' or a weights file path."""
    shape = (image_size, image_size, 3)
    if weights == "imagenet":
        return backbone.build_headless(shape, "imagenet")
    base = backbone.build_headless(shape, None)
    if weights != "none":
        if not os.path.exists(weights):
            raise FileNotFoundError(f"config field 'train.weights': no weights file at {weights}")
        base.load_weights(weights)
    return base
