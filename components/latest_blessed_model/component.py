"""LatestBlessedModel: the baseline for the Evaluator, on every runner.

    baseline = LatestBlessedModel(model=trainer.outputs["model"],
                                  serving_dir="/serving/image_classifier")
    evaluator = Evaluator(..., baseline_model=baseline.outputs["baseline_model"])

Takes the candidate only to recognise it (see executor.py). It must run every time: the
pipeline turns caching off for this node (pipeline.NEVER_CACHED), since its answer
depends on the serving directory, not on its inputs.
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.latest_blessed_model import executor


class LatestBlessedModelSpec(types.ComponentSpec):
    PARAMETERS = {executor.SERVING_DIR_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}


class LatestBlessedModel(base_component.BaseComponent):
    """The newest version under serving_dir (all pushed versions are blessed)."""

    SPEC_CLASS = LatestBlessedModelSpec
    # By class: it compiles to its import path.
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, serving_dir: str):
        super().__init__(spec=LatestBlessedModelSpec(
            model=model, serving_dir=serving_dir,
            baseline_model=types.Channel(type=standard_artifacts.Model)))
