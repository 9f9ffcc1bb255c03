"""The registry section of the config: where the Pusher registers what it publishes."""
from __future__ import annotations

from dataclasses import dataclass

from trainer.config_fields import check


@dataclass
class RegistryConfig:
    # MLflow tracking / model registry URI, e.g. http://mlflow:5000 in production;
    # "" means a sqlite file under home (see PipelineConfig.registry_uri).
    tracking_uri: str = ""
    # Registered model name; "" means the pipeline's model_name.
    model_name: str = ""
    # false: push without registering (the summary says so).
    enabled: bool = True

    def validate(self) -> None:
        check("/" not in self.model_name, "registry.model_name", "a name without '/'")
