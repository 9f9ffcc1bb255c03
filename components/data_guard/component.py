"""DataGuard: stops a run whose data the champion's would not recognise.

    guard = DataGuard(statistics=statistics_gen.outputs["statistics"],
                      serving_dir="/serving/image_classifier", guard=config.guard)
    transform.add_upstream_node(guard)   # nothing trains on data the guard stopped

Never cached (pipeline.NEVER_CACHED): its answer depends on the serving root (the
champion and its recorded data), not only on its input.
"""
import dataclasses
import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data_guard import executor
from components.artifacts import data_guard as guard_report
from components.data_guard.config import GuardConfig


class DataGuardSpec(types.ComponentSpec):
    PARAMETERS = {executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
                  executor.GUARD_CONFIG_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.STATISTICS_KEY: ChannelParameter(
        type=standard_artifacts.ExampleStatistics)}
    OUTPUTS = {guard_report.OUTPUT_KEY: ChannelParameter(
        type=standard_artifacts.ExampleAnomalies)}


class DataGuard(base_component.BaseComponent):
    SPEC_CLASS = DataGuardSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics: types.BaseChannel, serving_dir: str, guard: GuardConfig):
        super().__init__(spec=DataGuardSpec(
            statistics=statistics, serving_dir=serving_dir,
            guard_config=json.dumps(dataclasses.asdict(guard), sort_keys=True),
            report=types.Channel(type=standard_artifacts.ExampleAnomalies)))
