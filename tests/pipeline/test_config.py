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


@pytest.mark.parametrize("flag, value", [
    ("--home", "0755"),                 # not the octal number 493
    ("--data", "/photos/good #2"),      # not a YAML comment
    ("--data", "[2024] photos"),        # not a YAML flow sequence
    ("--data", "yes"),
])
def test_path_flags_are_the_text_typed(flag, value):
    from pipeline.cli import _config_args
    from pipeline.cli_handlers import config_of
    import argparse

    parser = argparse.ArgumentParser()
    _config_args(parser)
    config = config_of(parser.parse_args([flag, value]))
    assert (config.home if flag == "--home" else config.data.source) == value


@pytest.mark.parametrize("raw", [".inf", "-.inf", ".nan", "inf", "nan", "1e999"])
def test_non_finite_numbers_are_refused(raw, tmp_path):
    with pytest.raises(ConfigError, match="'train.learning_rate': expected a finite number"):
        load_config(overrides=(f"train.learning_rate={raw}",))
    path = tmp_path / "c.yaml"
    path.write_text(f"train:\n  learning_rate: {raw}\n")
    with pytest.raises(ConfigError, match="'train.learning_rate': expected a finite number"):
        load_config(str(path))


def test_a_number_in_yaml_where_a_path_is_expected_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("home: 0755\n")  # YAML 1.1: the octal number 493
    with pytest.raises(ConfigError, match="'home': expected a string, got 493"):
        load_config(str(path))
