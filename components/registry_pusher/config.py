"""The registry section of the config: where the Pusher registers what it publishes."""
from __future__ import annotations

from dataclasses import dataclass

from components.serving.tf_serving import LOAD_TIMEOUT_S
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
    # REST address of a running TF Serving that polls <serving_root>/models.config, e.g.
    # http://tf-serving:8501. Set, a push (and `registry promote`/`rollback`) loads the new
    # champion first and moves the `stable` label once the server reports it AVAILABLE
    # (tf_serving.py); "": models.config is written in one step, for a server (re)started
    # on it.
    tf_serving_url: str = ""
    tf_serving_timeout_s: int = LOAD_TIMEOUT_S  # to load a version, then move the label

    def validate(self) -> None:
        check("/" not in self.model_name, "registry.model_name", "a name without '/'")
        check(not self.tf_serving_url or self.tf_serving_url.startswith(("http://", "https://")),
              "registry.tf_serving_url", "http(s)://host:port of TF Serving's REST API, or ''")
        check(self.tf_serving_timeout_s > 0, "registry.tf_serving_timeout_s",
              "a number of seconds > 0")
