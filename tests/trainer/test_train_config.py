"""The train section: every knob has a default, a type, and an error naming its field."""
import pytest

from pipeline.config import ConfigError, TrainConfig, load_config, section_from_dict

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
    with pytest.raises(ConfigError, match=f"'train.{name}'") as error:
        load_config(overrides=(f"train.{name}={value}",))
    assert expected in str(error.value)


def test_defaults_validate_and_every_knob_round_trips_through_custom_config():
    TrainConfig().validate()
    overrides = ("train.pooling=flatten", "train.conv_block_filters=32", "train.l2=0.001",
                 "train.phase1_steps_per_epoch=10", "train.augment_flip=none",
                 "train.distribution=default", "train.tflite=float16",
                 "train.unfreeze_from=block6d", "train.cache_features=false")
    train = load_config(overrides=overrides).train
    # run_fn rebuilds the section from the dict the Trainer's custom_config carries.
    assert section_from_dict(TrainConfig, load_config(overrides=overrides).to_dict()["train"],
                             "train") == train
    assert (train.pooling, train.conv_block_filters, train.l2, train.tflite) == \
        ("flatten", 32, 0.001, "float16")
