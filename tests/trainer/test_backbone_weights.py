"""Weights by name: Keras' ImageNet cache (pre-seeded: no network), files, clear errors."""
import os
import urllib.error

import keras
import numpy as np
import pytest

from trainer import backbones

# The name keras.applications.MobileNetV2 looks up for include_top=False at alpha 1.0.
MOBILENET_V2_NOTOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A fresh Keras cache, and no download possible: any attempt fails loudly."""
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    def offline(url, *args, **kwargs):  # what urllib raises when the host cannot be reached
        raise urllib.error.URLError(f"no network: tried to download {url}")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # read at import time
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    return tmp_path


def _legacy_h5(model: keras.Model, path: str) -> None:
    """The HDF5 layout Keras' application weight files use (layer-name groups)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_imagenet_loads_a_preseeded_keras_cache_without_network(keras_home):
    backbone = backbones.get_backbone("mobilenet_v2")
    seeded = backbone.build_headless((32, 32, 3), None)
    os.makedirs(keras_home / "models")
    _legacy_h5(seeded, str(keras_home / "models" / MOBILENET_V2_NOTOP))

    base = backbones.build_base(backbone, 32, "imagenet")
    for got, want in zip(base.weights, seeded.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_imagenet_download_failure_says_how_to_work_offline(keras_home):
    with pytest.raises(RuntimeError, match="train.weights") as error:
        backbones.build_base(backbones.get_backbone("mobilenet_v2"), 32, "imagenet")
    message = str(error.value)
    assert str(keras_home / "models") in message and "efficientnet_lite0" in message


def test_weights_file_path(tmp_path):
    backbone = backbones.get_backbone("vgg16")
    trained = backbone.build_headless((32, 32, 3), None)
    path = str(tmp_path / "vgg16_base.weights.h5")
    trained.save_weights(path)
    base = backbones.build_base(backbone, 32, path)
    np.testing.assert_array_equal(base.weights[0].numpy(), trained.weights[0].numpy())
    with pytest.raises(FileNotFoundError, match="train.weights"):
        backbones.build_base(backbone, 32, str(tmp_path / "missing.weights.h5"))


def test_unknown_backbone_names_the_field():
    with pytest.raises(ValueError, match="train.backbone.*resnet18"):
        backbones.get_backbone("resnet18")
