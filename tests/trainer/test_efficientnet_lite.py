"""EfficientNet-Lite0/1/2 port: structure vs. the checkpoints, numerical proof of the weights.

Every test that touches a model or checkpoint runs once per variant (the `variant`
fixture). The strongest check is `test_keras_matches_numpy_reference_forward`: an
independent NumPy forward pass written straight from the raw PyTorch state dict (torch
layouts, float64, the semantics of the lukemelas-derived implementation the checkpoints
came from: TF-"SAME" padding, BN eps 1e-3, ReLU6, inputs (x - 127) / 128) must give the
same logits as the Keras model. A wrong padding mode, eps, kernel layout, stride, skip
connection or normalisation shows up there as a logit error orders of magnitude above the
tolerance; `test_reference_catches_symmetric_padding` shows that for the subtlest of these.
"""
import time
from typing import Dict, List

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data

from trainer import backbones, user_cache
from trainer import efficientnet_lite as lite
from trainer import efficientnet_lite_spec as arch
from trainer.torch_checkpoint import load_state_dict

# Standard ImageNet-1k class indices (no class-name file ships with the installed packages).
IMAGENET_CLASSES = {
    281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat",
    285: "Egyptian cat", 504: "coffee mug", 657: "missile", 665: "moped",
    670: "motor scooter", 744: "projectile, missile", 812: "space shuttle", 967: "espresso",
    968: "cup",
}
# photo -> classes of which at least one must be in the top 5
EXPECTED_TOP5 = {
    "chelsea": {281, 282, 283, 284, 285},
    "coffee": {967, 968, 504},
    "rocket": {657, 744, 812},
    "motorcycle": {665, 670},
}
LOGIT_TOLERANCE = 1e-4  # float32 Keras vs float64 NumPy; observed ~5e-6

# Read off the checkpoints: MBConv blocks and weights (BN counters excluded).
CHECKPOINT_BLOCKS = {"lite0": 16, "lite1": 21, "lite2": 21}
CHECKPOINT_PARAMS = {"lite0": 4_694_024, "lite1": 5_470_344, "lite2": 6_150_168}


@pytest.fixture(scope="module", autouse=True)
def weights_cache(tmp_path_factory):
    """Convert into a private cache dir, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        directory = tmp_path_factory.mktemp("imgpipe_cache")
        mp.setenv(user_cache.CACHE_ENV_VAR, str(directory))
        yield directory


@pytest.fixture(scope="module", params=list(arch.VARIANTS))
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def state_dict(variant) -> Dict[str, np.ndarray]:
    return load_state_dict(lite.checkpoint_path(variant))


@pytest.fixture(scope="module")
def photos(variant) -> Dict[str, np.ndarray]:
    """scikit-image photos at the variant's native size, float [0, 255], resized like
    trainer.image_ops."""
    images = {"chelsea": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(),
              "motorcycle": data.stereo_motorcycle()[0], "astronaut": data.astronaut()}
    size = (arch.VARIANTS[variant].resolution,) * 2
    return {name: tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear",
                                  antialias=True).numpy()
            for name, image in images.items()}


@pytest.fixture(scope="module")
def logits_model(variant) -> keras.Model:
    return lite.build_efficientnet_lite(variant, weights="imagenet", classifier_activation=None)


# ----------------------------------------------------------- NumPy reference (torch layouts)

# From the lite block strings r1_k3_s11 ... r1_k3_s11: each stage's stride (taken by its
# first block only) and, per variant, its repeats: ceil(depth multiplier * B0 repeats)
# except the first and last stage, which "lite" keeps at one block.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STAGE_REPEATS = {"lite0": (1, 2, 2, 3, 3, 4, 1), "lite1": (1, 3, 3, 4, 4, 5, 1),
                 "lite2": (1, 3, 3, 4, 4, 5, 1)}


def reference_strides(variant: str) -> List[int]:
    return [stride if repeat == 0 else 1
            for stride, repeats in zip(STAGE_STRIDES, STAGE_REPEATS[variant])
            for repeat in range(repeats)]


def _tf_same_windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(H, W, C) -> (Ho, Wo, C, k, k) windows with Conv2dStaticSamePadding's padding."""
    def pad(size: int):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    x = np.pad(x, (pad(x.shape[0]), pad(x.shape[1]), (0, 0)))
    return sliding_window_view(x, (kernel, kernel), axis=(0, 1))[::stride, ::stride]


def _conv(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:  # w: OIHW
    if w.shape[-1] == 1:
        return x @ w[:, :, 0, 0].T
    return np.einsum("hwcij,ocij->hwo", _tf_same_windows(x, w.shape[-1], stride), w,
                     optimize=True)


def _depthwise(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:  # w: (C, 1, k, k)
    return np.einsum("hwcij,cij->hwc", _tf_same_windows(x, w.shape[-1], stride), w[:, 0],
                     optimize=True)


def reference_forward(sd: Dict[str, np.ndarray], image: np.ndarray, strides: List[int],
                      stop_after_block: int = -1) -> np.ndarray:
    """Logits (or the output of block `stop_after_block`) for one HWC image in [0, 255];
    `strides` has one entry per block of the checkpoint."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}

    def bn(x, p):
        return ((x - sd[f"{p}.running_mean"]) / np.sqrt(sd[f"{p}.running_var"] + 1e-3)
                * sd[f"{p}.weight"] + sd[f"{p}.bias"])

    def relu6(x):
        return np.clip(x, 0.0, 6.0)

    x = (image.astype(np.float64) - 127.0) / 128.0
    x = relu6(bn(_conv(x, sd["_conv_stem.weight"], 2), "_bn0"))
    for i, stride in enumerate(strides):
        p, inputs = f"_blocks.{i}.", x
        if f"{p}_expand_conv.weight" in sd:
            x = relu6(bn(_conv(x, sd[f"{p}_expand_conv.weight"]), f"{p}_bn0"))
        x = relu6(bn(_depthwise(x, sd[f"{p}_depthwise_conv.weight"], stride), f"{p}_bn1"))
        x = bn(_conv(x, sd[f"{p}_project_conv.weight"]), f"{p}_bn2")
        if stride == 1 and x.shape == inputs.shape:
            x = x + inputs
        if i == stop_after_block:
            return x
    x = relu6(bn(_conv(x, sd["_conv_head.weight"]), "_bn1"))
    return x.mean(axis=(0, 1)) @ sd["_fc.weight"].T + sd["_fc.bias"]


def _top5(row: np.ndarray) -> List[int]:
    return [int(i) for i in np.argsort(-row)[:5]]


# --------------------------------------------------------------------------------- tests

def test_block_layout_matches_checkpoint(variant, state_dict):
    """The multipliers' widths and repeats are what the checkpoint's tensors have."""
    specs = arch.block_specs(variant)
    assert [s.name for s in specs] == [f"block{stage}{'abcde'[repeat]}"
                                       for stage, repeats in enumerate(STAGE_REPEATS[variant], 1)
                                       for repeat in range(repeats)]
    assert len(specs) == CHECKPOINT_BLOCKS[variant]
    assert f"_blocks.{len(specs)}._bn1.weight" not in state_dict
    assert state_dict["_conv_stem.weight"].shape == (arch.STEM_CHANNELS, 3, 3, 3)
    for spec in specs:
        p = f"_blocks.{spec.index}."
        hidden = spec.in_channels * spec.expand
        assert state_dict[f"{p}_depthwise_conv.weight"].shape == (hidden, 1, spec.kernel,
                                                                  spec.kernel)
        assert state_dict[f"{p}_project_conv.weight"].shape == (spec.out_channels, hidden, 1, 1)
        assert (f"{p}_expand_conv.weight" in state_dict) == (spec.expand != 1)
    assert state_dict["_conv_head.weight"].shape == (arch.HEAD_CHANNELS,
                                                     specs[-1].out_channels, 1, 1)
    assert [s.stride for s in specs] == reference_strides(variant)


def test_param_count_equals_checkpoint(variant, state_dict):
    model = lite.build_efficientnet_lite(variant, weights=None)
    checkpoint_total = sum(v.size for k, v in state_dict.items()
                           if not k.endswith("num_batches_tracked"))
    assert model.count_params() == checkpoint_total == CHECKPOINT_PARAMS[variant]


def test_conversion_consumes_every_tensor_exactly_once(variant, state_dict):
    converted = lite.convert_state_dict(state_dict, variant=variant)
    model = lite.build_efficientnet_lite(variant, weights=None)
    weighted = {layer.name: layer for layer in model.layers if layer.weights}
    assert set(converted) == set(weighted)
    for name, arrays in converted.items():
        assert [a.shape for a in arrays] == [tuple(w.shape) for w in weighted[name].weights]
    # All keys used (convert_state_dict checks) + equal element totals => none used twice.
    expected = sum(v.size for k, v in state_dict.items() if not k.endswith("num_batches_tracked"))
    assert sum(a.size for arrays in converted.values() for a in arrays) == expected

    extra = f"_blocks.{CHECKPOINT_BLOCKS[variant]}._bn1.weight"
    with pytest.raises(ValueError, match=f"unused=.*{extra}"):
        lite.convert_state_dict({**state_dict, extra: np.zeros(3)}, variant=variant)
    with pytest.raises(ValueError, match="missing=.*_blocks.3._bn2.running_var"):
        lite.convert_state_dict({k: v for k, v in state_dict.items()
                                 if k != "_blocks.3._bn2.running_var"}, variant=variant)
    headless = lite.convert_state_dict(state_dict, include_top=False, variant=variant)
    assert set(converted) - set(headless) == {arch.CLASSIFIER_LAYER}


def test_other_variants_checkpoint_is_refused(variant, state_dict):
    other = "lite0" if variant != "lite0" else "lite1"
    with pytest.raises(ValueError, match=f"does not match EfficientNet-{other.capitalize()}"):
        lite.convert_state_dict(state_dict, variant=other)


def test_imagenet_weights_are_converted_once_then_cached(variant, tmp_path, monkeypatch):
    monkeypatch.setenv(user_cache.CACHE_ENV_VAR, str(tmp_path))
    # One file per variant; Lite0's keeps the name it always had.
    path = tmp_path / f"efficientnet_{variant}_imagenet.weights.h5"
    start = time.perf_counter()
    first = lite.build_efficientnet_lite(variant, weights="imagenet")
    converted_in = time.perf_counter() - start
    mtime = path.stat().st_mtime_ns
    start = time.perf_counter()
    second = lite.build_efficientnet_lite(variant, weights="imagenet")
    cached_in = time.perf_counter() - start
    assert path.stat().st_mtime_ns == mtime and list(tmp_path.iterdir()) == [path]
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    print(f"{variant} build+load: first (converting) {converted_in:.2f}s, "
          f"cached {cached_in:.2f}s")


def test_a_seeded_build_is_the_same_whether_or_not_it_converts_first(tmp_path, monkeypatch):
    """The conversion builds a throwaway model: it must not use up the seeded random state
    the new layers' initial weights come from (a cold cache once gave another head)."""
    import keras

    def seeded_head():
        keras.utils.set_random_seed(7)
        lite.build_efficientnet_lite("lite0", input_shape=(32, 32, 3), include_top=False,
                                     weights="imagenet")
        return keras.layers.Dense(3)

    monkeypatch.setenv(user_cache.CACHE_ENV_VAR, str(tmp_path))
    cold = seeded_head()  # converts the checkpoint into tmp_path
    warm = seeded_head()  # loads the file
    for head in (cold, warm):
        head.build((None, 8))
    np.testing.assert_array_equal(cold.kernel.numpy(), warm.kernel.numpy())


def test_imagenet_predictions_on_photos(variant, photos):
    model = lite.build_efficientnet_lite(variant, weights="imagenet")
    probabilities = model.predict(np.stack(list(photos.values())), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    top5 = {name: _top5(row) for name, row in zip(photos, probabilities)}
    for name, row in zip(photos, probabilities):
        print(variant, name, [(i, IMAGENET_CLASSES.get(i, "?"), round(float(row[i]), 3))
                              for i in top5[name]])
    for name, expected in EXPECTED_TOP5.items():
        assert expected & set(top5[name]), (name, top5[name])
    assert top5["chelsea"][0] in EXPECTED_TOP5["chelsea"]
    assert top5["coffee"][0] == 967  # espresso


def test_keras_matches_numpy_reference_forward(variant, state_dict, photos, logits_model):
    """Same logits, hence same top-1/top-5, on every photo."""
    keras_logits = logits_model.predict(np.stack(list(photos.values())), verbose=0)
    for (name, image), got in zip(photos.items(), keras_logits):
        want = reference_forward(state_dict, image, reference_strides(variant))
        np.testing.assert_allclose(got, want, atol=LOGIT_TOLERANCE, rtol=0, err_msg=name)
        assert _top5(got) == _top5(want), name


def _first_block_output(model: keras.Model, image: np.ndarray) -> np.ndarray:
    tap = keras.Model(model.input, model.get_layer("block1a_project_bn").output)
    return tap.predict(image[None], verbose=0)[0]


def test_reference_catches_symmetric_padding(variant, state_dict, photos, logits_model,
                                             monkeypatch):
    """PyTorch-style symmetric k//2 padding (the tempting mistake) must fail the reference.

    Stride-2 convs on even sizes then shift every output by one input pixel (Lite0 at 224
    px: all five stride-2 convs; Lite2 at 260: the first two, later sizes are odd). On the
    photos that lowers every Lite0 top-1 confidence but moves Lite1's and Lite2's either
    way, so the checks are on values: the reference sees it after the first block already,
    and the logits move far beyond the tolerance.
    """
    image = photos["chelsea"]
    want = reference_forward(state_dict, image, reference_strides(variant), stop_after_block=0)
    np.testing.assert_allclose(_first_block_output(logits_model, image), want, atol=1e-4,
                               rtol=0)

    monkeypatch.setattr(lite, "_explicit_padding", lambda size, kernel, stride:
                        (kernel // 2, kernel // 2))
    wrong = lite.build_efficientnet_lite(variant, weights="imagenet", classifier_activation=None)
    assert np.abs(_first_block_output(wrong, image) - want).max() > 0.1
    right_logits, wrong_logits = (m.predict(image[None], verbose=0) for m in (logits_model, wrong))
    assert np.abs(right_logits - wrong_logits).max() > 100 * LOGIT_TOLERANCE


def test_normalisation_is_inside_the_model(logits_model, photos):
    """The TF lite builder's MEAN_RGB 127 / STDDEV_RGB 128, applied by the first layer."""
    layer = logits_model.get_layer("normalization")
    np.testing.assert_allclose(layer(np.array([[0.0, 127.0, 255.0]])), [[-127 / 128, 0, 1]],
                               atol=1e-6)
    image = photos["coffee"][None]
    np.testing.assert_allclose(layer(image), lite.preprocess_input(image), atol=1e-6)


def test_headless_small_input_loads_imagenet(variant, logits_model):
    model = lite.build_efficientnet_lite(variant, input_shape=(64, 64, 3), include_top=False,
                                         weights="imagenet")
    assert model.output_shape == (None, 2, 2, arch.HEAD_CHANNELS)
    assert arch.CLASSIFIER_LAYER not in {layer.name for layer in model.layers}
    for name in ("stem_conv", "block4c_dwconv", "block7a_project_bn", "top_conv"):
        for got, want in zip(model.get_layer(name).weights, logits_model.get_layer(name).weights):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    pooled = lite.build_efficientnet_lite(variant, input_shape=(64, 64, 3), include_top=False,
                                          pooling="avg", weights="imagenet")
    assert pooled.output_shape == (None, arch.HEAD_CHANNELS)
    features = pooled.predict(np.full((1, 64, 64, 3), 128.0, np.float32), verbose=0)
    assert np.isfinite(features).all()


def test_weights_path_loads_keras_weights_file(variant, tmp_path, logits_model):
    path = tmp_path / f"{variant}.weights.h5"
    logits_model.save_weights(path)
    model = lite.build_efficientnet_lite(variant, weights=path, classifier_activation=None)
    for got, want in zip(model.weights, logits_model.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_defaults_are_the_variants_own():
    """Native size, name and classifier dropout of the official definitions."""
    for variant, size, dropout in (("lite0", 224, 0.2), ("lite1", 240, 0.2),
                                   ("lite2", 260, 0.3)):
        model = lite.build_efficientnet_lite(variant)
        assert model.input_shape == (None, size, size, 3)
        assert model.name == f"efficientnet_{variant}"
        assert model.get_layer("top_dropout").rate == dropout
    # Lite0's names from before the variants, still used by callers.
    assert lite.build_efficientnet_lite0.func is lite.build_efficientnet_lite
    assert arch.TOP_BLOCK_PREFIXES == ("block6d_", "block7a_", "top_")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'lite3'"):
        lite.build_efficientnet_lite("lite3")


def test_imagenet_top_requires_1000_classes():
    with pytest.raises(ValueError, match="num_classes=1000"):
        lite.build_efficientnet_lite0(num_classes=5, weights="imagenet")


# The block just below the top, then the top's two: the last ones of stages 6 and 7.
TOP_BLOCKS = {"lite0": ("block6c", "block6d", "block7a"),
              "lite1": ("block6d", "block6e", "block7a"),
              "lite2": ("block6d", "block6e", "block7a")}


def test_top_layer_prefixes_select_the_last_blocks_and_head(variant):
    below, first, last = TOP_BLOCKS[variant]
    model = lite.build_efficientnet_lite(variant, input_shape=(64, 64, 3), weights=None)
    prefixes = arch.top_layer_prefixes(2, variant)
    top = [layer.name for layer in model.layers if arch.is_top_layer(layer.name, prefixes)]
    assert prefixes == (f"{first}_", f"{last}_", "top_")
    assert {name.split("_")[0] for name in top} == {first, last, "top"}
    assert "top_conv" in top and f"{first}_expand_conv" in top
    assert arch.CLASSIFIER_LAYER not in top and f"{below}_add" not in top
    assert arch.top_layer_prefixes(0, variant) == ("top_",)
    with pytest.raises(ValueError):
        arch.top_layer_prefixes(CHECKPOINT_BLOCKS[variant] + 1, variant)

    backbone = backbones.get_backbone(f"efficientnet_{variant}")
    assert backbone.top_start == f"{first}_"
    assert backbone.default_size == arch.VARIANTS[variant].resolution
