"""The config machinery every section shares: typed fields from YAML or flag values, and
errors that name the field and the expected form.

A section is a dataclass with defaults for every field and a `validate()` that calls
`check` per field. `build` turns a dict (YAML, `--set` flags, a component's
custom_config) into the dataclass, converting each value to its declared type.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Dict, List

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or malformed."""


def check(ok: bool, name: str, expected: str) -> None:
    """Raises ConfigError naming field `name` and its expected form unless `ok`."""
    if not ok:
        raise ConfigError(f"config field '{name}': expected {expected}")


def _flag_text(value: Any, tp: Any) -> Any:
    """A flag's text (--set x=TEXT) is the string typed for a string field, and read as
    YAML for any other: `--home 0755` is the folder "0755", `train.seed=07` the number."""
    if isinstance(value, FlagText) and tp is not str and tp is not bool:
        try:
            return yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:  # not YAML: the type check names the field
            return str(value)
    return value


class FlagText(str):
    """A value as typed on the command line: not yet read as YAML (see _flag_text)."""


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Converts a YAML / flag value to the field's declared type, or names the field."""
    origin = typing.get_origin(tp)
    if origin is not typing.Union and not dataclasses.is_dataclass(tp):
        value = _flag_text(value, list if origin in (list, List) else tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}': expected a mapping of its fields")
        return build(tp, value, name + ".")
    if origin in (list, List):
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else \
                [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{name}': expected a list")
        return [coerce(v, item_tp, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        value = _flag_text(value, inner)
        return None if value is None else coerce(value, inner, name)
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
        converted = tp(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"config field '{name}': expected {getattr(tp, '__name__', tp)}, got {value!r}"
        ) from None
    if tp is str and isinstance(value, (int, float, bool)):
        raise ConfigError(f"config field '{name}': expected a string, got {value!r} "
                          "(YAML read a number; put it in quotes)")
    if tp is float and not math.isfinite(converted):
        raise ConfigError(f"config field '{name}': expected a finite number, got {value!r}")
    return converted


def build(cls: Any, values: Dict[str, Any], prefix: str = "") -> Any:
    """The dataclass `cls` from a dict of (some of) its fields; `prefix` names them."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"config field '{prefix}{unknown[0]}' is unknown; expected one of: "
                          + ", ".join(sorted(fields)))
    kwargs = {k: coerce(v, hints[k], prefix + k) for k, v in values.items()}
    for k, v in values.items():
        default = fields[k].default_factory  # type: ignore[misc]
        if dataclasses.is_dataclass(hints[k]) and default is not dataclasses.MISSING:
            # A partly given section keeps its field's own defaults for the rest (e.g.
            # kubeflow.resources.trainer.gpu=1 keeps the Trainer's CPU and memory).
            kwargs[k] = dataclasses.replace(default(), **{
                f: getattr(kwargs[k], f) for f in v})
    return cls(**kwargs)


def section_from_dict(cls: Any, values: Dict[str, Any], name: str) -> Any:
    """Rebuilds one config section from its dict form (e.g. inside a component)."""
    section = build(cls, values, name + ".")
    section.validate()
    return section
