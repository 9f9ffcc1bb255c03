"""One typed, validated configuration for every runner.

Loaded from YAML (all keys optional: every knob has a default) and overridden by
`--set section.field=value` flags. Errors name the field and the expected form.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or malformed."""


DEMO_DATA = "demo"  # data.source value that selects the embedded digits dataset


@dataclass
class DataConfig:
    # A class-per-folder directory (root/<label>/<file>), a CSV manifest (path,label), or
    # "demo" for scikit-learn's digits written out as PNG files.
    source: str = DEMO_DATA
    # Split sizes in hash buckets out of their sum; the split of an image depends only on
    # its id (relative path), so adding images never moves existing ones.
    train_buckets: int = 8
    eval_buckets: int = 2
    image_extensions: List[str] = field(
        default_factory=lambda: [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"])
    # Formats the model decodes (sniffed from the bytes); others are rejected.
    accepted_formats: List[str] = field(default_factory=lambda: ["JPEG", "PNG"])
    max_pixels: int = 40_000_000
    min_side: int = 8
    max_aspect_ratio: float = 50.0
    # The run fails when more than this fraction of the files is rejected.
    max_rejected_fraction: float = 0.2

    def validate(self) -> None:
        _check(bool(self.source), "data.source", "a folder, a CSV manifest path, or 'demo'")
        _check(self.train_buckets > 0, "data.train_buckets", "a positive integer")
        _check(self.eval_buckets > 0, "data.eval_buckets", "a positive integer")
        _check(all(e.startswith(".") for e in self.image_extensions), "data.image_extensions",
               "a list of extensions starting with '.', e.g. ['.jpg', '.png']")
        _check(set(self.accepted_formats) <= {"JPEG", "PNG", "GIF", "BMP"},
               "data.accepted_formats", "a subset of JPEG, PNG, GIF, BMP")
        _check(self.max_pixels > 0, "data.max_pixels", "a positive integer")
        _check(self.min_side >= 1, "data.min_side", "an integer >= 1")
        _check(self.max_aspect_ratio >= 1, "data.max_aspect_ratio", "a number >= 1")
        _check(0 <= self.max_rejected_fraction <= 1, "data.max_rejected_fraction",
               "a fraction between 0 and 1")


@dataclass
class TrainConfig:
    backbone: str = "mobilenet_v2"
    # "imagenet", "none", or a path to a weights file.
    weights: str = "none"
    image_size: int = 64
    batch_size: int = 32
    # Phase 1: base frozen, head trained at learning_rate.
    phase1_epochs: int = 3
    learning_rate: float = 1e-3
    # Phase 2: top of the base unfrozen, learning_rate * phase2_lr_factor.
    phase2_epochs: int = 2
    phase2_lr_factor: float = 0.1
    # Phase 2 unfreezes the base from this layer upwards ("": the backbone's own top
    # block, see trainer/backbones.py), or the top N layers when unfreeze_top_layers > 0.
    unfreeze_from: str = ""
    unfreeze_top_layers: int = 0
    dense_units: List[int] = field(default_factory=lambda: [128])
    dropout: float = 0.2
    label_smoothing: float = 0.0
    augment: bool = True
    # Weight the loss by inverse class frequency (for imbalanced data).
    class_weighting: bool = False
    top_k: int = 5
    early_stopping_patience: int = 3
    seed: int = 42

    def validate(self) -> None:
        _check(self.weights in ("imagenet", "none") or bool(self.weights), "train.weights",
               "'imagenet', 'none' or a path to a weights file")
        _check(16 <= self.image_size <= 1024, "train.image_size", "an integer in [16, 1024]")
        _check(self.batch_size > 0, "train.batch_size", "a positive integer")
        _check(self.phase1_epochs >= 1, "train.phase1_epochs", "an integer >= 1")
        _check(self.phase2_epochs >= 0, "train.phase2_epochs", "an integer >= 0")
        _check(self.learning_rate > 0, "train.learning_rate", "a positive number")
        _check(0 < self.phase2_lr_factor <= 1, "train.phase2_lr_factor",
               "a number in (0, 1], e.g. 0.1")
        _check(self.unfreeze_top_layers >= 0, "train.unfreeze_top_layers", "an integer >= 0")
        _check(all(u > 0 for u in self.dense_units), "train.dense_units",
               "a list of positive integers")
        _check(0 <= self.dropout < 1, "train.dropout", "a number in [0, 1)")
        _check(0 <= self.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)")
        _check(self.top_k >= 1, "train.top_k", "an integer >= 1")


@dataclass
class EvalConfig:
    # The candidate is blessed only if eval accuracy >= min_accuracy and, when a blessed
    # baseline exists, accuracy >= baseline - max_accuracy_drop.
    min_accuracy: float = 0.5
    max_accuracy_drop: float = 0.01
    inference_batch_size: int = 64

    def validate(self) -> None:
        _check(0 <= self.min_accuracy <= 1, "eval.min_accuracy", "a fraction between 0 and 1")
        _check(0 <= self.max_accuracy_drop <= 1, "eval.max_accuracy_drop",
               "a fraction between 0 and 1")
        _check(self.inference_batch_size > 0, "eval.inference_batch_size", "a positive integer")


@dataclass
class BeamConfig:
    # "direct" runs Beam in this process (in_memory) or in worker processes
    # (multi_processing); see direct_running_mode.
    runner: str = "direct"
    direct_running_mode: str = "in_memory"
    direct_num_workers: int = 1
    extra_args: List[str] = field(default_factory=list)

    def validate(self) -> None:
        _check(self.runner in ("direct",), "beam.runner", "'direct'")
        _check(self.direct_running_mode in ("in_memory", "multi_threading", "multi_processing"),
               "beam.direct_running_mode", "in_memory, multi_threading or multi_processing")
        _check(self.direct_num_workers >= 0, "beam.direct_num_workers",
               "an integer >= 0 (0: one per core)")

    def pipeline_args(self) -> List[str]:
        return [f"--runner=DirectRunner",
                f"--direct_running_mode={self.direct_running_mode}",
                f"--direct_num_workers={self.direct_num_workers}", *self.extra_args]


@dataclass
class PipelineConfig:
    name: str = "imgpipe"
    # Everything a run writes (artifacts, MLMD sqlite, demo data) lives under home.
    home: str = "imgpipe_home"
    # Defaults to <home>/serving; models are pushed to <serving_root>/<model_name>/<version>.
    serving_root: str = ""
    model_name: str = "image_classifier"
    enable_cache: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)

    # -- derived locations -------------------------------------------------------------
    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.home, "pipelines", self.name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.home, "metadata", self.name, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.serving_root or os.path.join(self.home, "serving"),
                            self.model_name)

    @property
    def demo_data_dir(self) -> str:
        return os.path.join(self.home, "demo_data", "digits")

    def validate(self) -> "PipelineConfig":
        _check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(),
               "name", "letters, digits, '-' or '_'")
        _check(bool(self.home), "home", "a directory path")
        _check(bool(self.model_name) and "/" not in self.model_name, "model_name",
               "a non-empty name without '/'")
        for section in (self.data, self.train, self.eval, self.beam):
            section.validate()
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _check(ok: bool, name: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}': expected {expected}")


# -- loading ------------------------------------------------------------------------------
def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Converts a YAML / flag value to the field's declared type, or names the field."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}': expected a mapping of its fields")
        return _build(tp, value, name + ".")
    if origin in (list, List):
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else \
                [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{name}': expected a list")
        return [_coerce(v, item_tp, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return None if value is None else _coerce(value, inner, name)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if tp in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return tp(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config field '{name}': expected {getattr(tp, '__name__', tp)}, got {value!r}"
        ) from None


def _build(cls: Any, values: Dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config field '{prefix}{unknown[0]}' is unknown; expected one of: "
                          + ", ".join(sorted(known)))
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(tree: Dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field '{dotted}': '{key}' is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def section_from_dict(cls: Any, values: Dict[str, Any], name: str) -> Any:
    """Rebuilds one config section from its dict form (e.g. inside a component)."""
    section = _build(cls, values, name + ".")
    section.validate()
    return section


def load_config(path: Optional[str] = None, overrides: Tuple[str, ...] = ()) -> PipelineConfig:
    """Reads YAML at `path` (optional), applies `key.sub=value` overrides, validates."""
    tree: Dict[str, Any] = {}
    if path:
        try:
            with open(path) as f:
                tree = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected the form section.field=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), raw)
    return _build(PipelineConfig, tree).validate()
