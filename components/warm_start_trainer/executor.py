"""WarmStartTrainer executor: TFX's generic Trainer executor, with the warm-start
parameter handed to run_fn in custom_config (trainer.warm_start.WARM_START_KEY)."""
import json
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import standard_component_specs

from trainer.warm_start import WARM_START_KEY


class Executor(trainer_executor.GenericExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        properties = dict(exec_properties)
        parameter = properties.pop(WARM_START_KEY, None) or ""
        key = standard_component_specs.CUSTOM_CONFIG_KEY
        custom = json.loads(properties.get(key) or "{}")
        properties[key] = json.dumps({**custom, WARM_START_KEY: parameter}, sort_keys=True)
        super().Do(input_dict, output_dict, properties)
