"""DataReference: the pushed version's training data, kept for the data guard.

    DataReference(pushed_model=pusher.outputs["pushed_model"],
                  statistics=statistics_gen.outputs["statistics"],
                  schema=schema_gen.outputs["schema"], serving_dir=..., size_range_factor=2.0)
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data_reference import executor


class DataReferenceSpec(types.ComponentSpec):
    PARAMETERS = {executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
                  executor.SIZE_RANGE_FACTOR_KEY: ExecutionParameter(type=float)}
    INPUTS = {
        executor.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
        executor.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {}


class DataReference(base_component.BaseComponent):
    SPEC_CLASS = DataReferenceSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, pushed_model: types.BaseChannel, statistics: types.BaseChannel,
                 schema: types.BaseChannel, serving_dir: str, size_range_factor: float):
        super().__init__(spec=DataReferenceSpec(
            pushed_model=pushed_model, statistics=statistics, schema=schema,
            serving_dir=serving_dir, size_range_factor=size_range_factor))
