"""The composed config: YAML and flags typed per section, errors that name the field
(the default config's pipeline: test_pipeline.py)."""
import pytest

from pipeline.config import load_config
from trainer.config_fields import ConfigError


def test_yaml_and_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  image_size: 96\n  dense_units: [64, 32]\n"
                    "eval:\n  min_accuracy: 0.7\n")
    config = load_config(str(path), ("train.phase2_epochs=0", "train.augment=false",
                                     "data.accepted_formats=JPEG,PNG"))
    assert config.train.image_size == 96 and config.train.dense_units == [64, 32]
    assert config.eval.min_accuracy == 0.7
    assert config.train.phase2_epochs == 0 and config.train.augment is False
    assert config.data.accepted_formats == ["JPEG", "PNG"]


@pytest.mark.parametrize("override, field, expected", [
    ("train.image_size=abc", "train.image_size", "expected int"),
    ("train.image_size=4", "train.image_size", "[16, 1024]"),
    ("train.phase2_lr_factor=2", "train.phase2_lr_factor", "(0, 1]"),
    ("train.bogus=1", "train.bogus", "unknown"),
    ("eval.min_accuracy=1.5", "eval.min_accuracy", "between 0 and 1"),
    ("data.accepted_formats=TIFF", "data.accepted_formats", "subset of"),
    ("train.augment=maybe", "train.augment", "expected bool"),
    ("beam.direct_running_mode=fast", "beam.direct_running_mode", "in_memory"),
    ("registry.tf_serving_url=tf-serving:8501", "registry.tf_serving_url", "http(s)://"),
    ("registry.tf_serving_timeout_s=0", "registry.tf_serving_timeout_s", "> 0"),
])
def test_errors_name_the_field_and_expected_form(override, field, expected):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=(override,))
    assert f"'{field}'" in str(err.value) and expected in str(err.value)


def test_bad_yaml_file_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_fingerprint_changes_with_any_knob():
    assert load_config().fingerprint() != load_config(overrides=("train.seed=1",)).fingerprint()
