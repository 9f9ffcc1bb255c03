"""WarmStartTrainer: TFX's Trainer (run_fn, examples, transform graph, schema,
custom_config) plus the exec property `warm_start`, a string that may come from an
upstream step (`listing.outputs["warm_start"].future()[0].value`): on Kubeflow it is a
parameter, so a new champion changes the Trainer's cache key and an unchanged one does
not."""
from typing import Any, Dict, Union

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.warm_start_trainer import executor
from trainer.warm_start import WARM_START_KEY


class WarmStartTrainerSpec(standard_component_specs.TrainerSpec):
    PARAMETERS = {**standard_component_specs.TrainerSpec.PARAMETERS,
                  WARM_START_KEY: ExecutionParameter(type=str, optional=True)}


class WarmStartTrainer(base_component.BaseComponent):
    SPEC_CLASS = WarmStartTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, run_fn: str, examples: types.BaseChannel,
                 transform_graph: types.BaseChannel, schema: types.BaseChannel,
                 custom_config: Union[Dict[str, Any], data_types.RuntimeParameter],
                 warm_start: Any):
        super().__init__(spec=WarmStartTrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema,
            train_args=trainer_pb2.TrainArgs(), eval_args=trainer_pb2.EvalArgs(),
            run_fn=run_fn,
            custom_config=(custom_config if isinstance(custom_config, data_types.RuntimeParameter)
                           else json_utils.dumps(custom_config)),
            warm_start=warm_start,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
