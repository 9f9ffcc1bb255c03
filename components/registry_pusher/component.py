"""RegistryPusher: the Pusher of this pipeline.

    pusher = RegistryPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        model_evaluation=evaluator.outputs["evaluation"],  # metrics for the model card
        examples=example_gen.outputs["examples"],  # ingestion counts for the card
        serving_dir="/serving/image_classifier", model_name="image_classifier",
        registry_uri="sqlite:////home/me/imgpipe_home/mlflow/mlflow.db")

Outputs `pushed_model` (PushedModel): custom properties pushed / pushed_destination /
pushed_version like TFX's Pusher, plus push_status and registry_status / registry_version
/ registry_error; the model card JSON in its folder. See executor.py for the behaviour.
"""
import json
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.registry_pusher import executor
from components.serving import tf_serving


class RegistryPusherSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
        executor.MODEL_NAME_KEY: ExecutionParameter(type=str),
        executor.REGISTRY_URI_KEY: ExecutionParameter(type=str, optional=True),
        executor.CONFIG_JSON_KEY: ExecutionParameter(type=str, optional=True),
        executor.CONFIG_HASH_KEY: ExecutionParameter(type=str, optional=True),
        executor.TF_SERVING_URL_KEY: ExecutionParameter(type=str, optional=True),
        executor.TF_SERVING_TIMEOUT_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        executor.MODEL_EVALUATION_KEY: ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {
        executor.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
    }


class RegistryPusher(base_component.BaseComponent):
    """Pushes a blessed model to <serving_dir>/<version> atomically and registers it."""

    SPEC_CLASS = RegistryPusherSpec
    # By class: it compiles to its import path, components.registry_pusher.executor.Executor.
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 serving_dir: str, model_name: str, registry_uri: str = "",
                 model_evaluation: Optional[types.BaseChannel] = None,
                 examples: Optional[types.BaseChannel] = None,
                 config: Optional[Dict[str, Any]] = None, config_hash: str = "",
                 tf_serving_url: str = "",
                 tf_serving_timeout_s: int = tf_serving.LOAD_TIMEOUT_S):
        """Args:
          serving_dir: <serving_root>/<model_name>; versions are created inside it.
          model_name: the registered model's name in MLflow.
          registry_uri: MLflow tracking / registry URI; "" pushes without registering.
          config: the pipeline config as a dict (params of the MLflow run, the card).
          config_hash: its fingerprint, recorded in the card.
          tf_serving_url: a running TF Serving polling models.config, to wait for before
            the `stable` label moves (tf_serving.py); "": one write.
          tf_serving_timeout_s: how long it may take to load the version.
        """
        spec = RegistryPusherSpec(
            model=model, model_blessing=model_blessing, model_evaluation=model_evaluation,
            examples=examples, serving_dir=serving_dir, model_name=model_name,
            registry_uri=registry_uri, config_json=json.dumps(config or {}, sort_keys=True),
            config_hash=config_hash, tf_serving_url=tf_serving_url,
            tf_serving_timeout_s=tf_serving_timeout_s,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel))
        super().__init__(spec=spec)
