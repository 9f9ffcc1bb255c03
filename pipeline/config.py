"""One typed, validated configuration for every runner, composed of the sections their
owners define:

  data      components/image_example_gen/config.py   DataConfig
  train     trainer/train_config.py                   TrainConfig
  eval      components/evaluator/config.py            EvalConfig
  registry  components/registry_pusher/config.py      RegistryConfig
  beam      pipeline/beam_config.py                    BeamConfig
  kubeflow  pipeline/kubeflow_config.py                KubeflowConfig
  notify    components/notify/config.py                NotifyConfig
  guard     components/data_guard/config.py            GuardConfig

Loaded from YAML (all keys optional: every knob has a default) and overridden by
`--set section.field=value` flags. Errors name the field and the expected form.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import yaml

from components.data_guard.config import GuardConfig
from components.evaluator.config import EvalConfig
from components.image_example_gen.config import DataConfig
from components.notify.config import REDACTED, NotifyConfig
from components.registry_pusher.config import RegistryConfig
from pipeline.beam_config import BeamConfig
from pipeline.kubeflow_config import KubeflowConfig
from trainer.config_fields import ConfigError, FlagText, build, check
from trainer.train_config import TrainConfig


@dataclass
class PipelineConfig:
    name: str = "imgpipe"
    # Everything a run writes (artifacts, MLMD sqlite, demo data) lives under home.
    home: str = "imgpipe_home"
    # Defaults to <home>/serving; models are pushed to <serving_root>/<model_name>/<version>.
    # On Kubeflow: required, a URI the task pods reach (gs://...) or an absolute path
    # mounted in every pod.
    serving_root: str = ""
    model_name: str = "image_classifier"
    enable_cache: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)

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
    def registry_uri(self) -> str:
        if self.registry.tracking_uri:
            return self.registry.tracking_uri
        return "sqlite:///" + os.path.abspath(os.path.join(self.home, "mlflow", "mlflow.db"))

    @property
    def registry_model_name(self) -> str:
        return self.registry.model_name or self.model_name

    @property
    def demo_data_dir(self) -> str:
        return os.path.join(self.home, "demo_data", "digits")

    def validate(self) -> "PipelineConfig":
        check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(),
               "name", "letters, digits, '-' or '_'")
        check(bool(self.home), "home", "a directory path")
        check(bool(self.model_name) and "/" not in self.model_name, "model_name",
               "a non-empty name without '/'")
        for section in (self.data, self.train, self.eval, self.registry, self.beam,
                        self.kubeflow, self.notify, self.guard):
            section.validate()
        return self

    def to_dict(self) -> Dict[str, Any]:
        """The config as plain values, the webhook URL (a secret) redacted: this is what
        model cards, compiled specs and fingerprints see."""
        values = dataclasses.asdict(self)
        if values["notify"]["webhook_url"]:
            values["notify"]["webhook_url"] = REDACTED
        return values

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


# -- loading ------------------------------------------------------------------------------
def _set_dotted(tree: Dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field '{dotted}': '{key}' is not a section")
    # Read as YAML only once the field's type is known: a path stays what was typed.
    node[keys[-1]] = FlagText(raw)


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
    return build(PipelineConfig, tree).validate()
