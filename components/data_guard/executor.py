"""DataGuard executor: this run's statistics against the reference
(components/serving/data_reference.py).

Anomalies (a new label, a format or size out of range, a missing feature) stop the run;
drift past a threshold stops it too, or only warns (guard.on_drift). Without a champion
there is nothing to compare with: the run goes on, and the first push records its data
as the reference. Output `report` (ExampleAnomalies): data_guard.json (anomalies and
every drift measurement) and the custom property `findings`.
"""
import json
import os
from typing import Any, Dict, List

import tensorflow_data_validation as tfdv
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.artifacts.statistics import load_split_statistics
from components.data_guard import checks
from components.serving import data_reference as reference
from components.artifacts import data_guard as guard_report
from components.data_guard.config import STOP, GuardConfig
from trainer.config_fields import section_from_dict

STATISTICS_KEY = "statistics"
SERVING_DIR_KEY = "serving_dir"
GUARD_CONFIG_KEY = "guard_config"  # the guard section as JSON


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        config = section_from_dict(GuardConfig, json.loads(exec_properties[GUARD_CONFIG_KEY]),
                                   "guard")
        out = artifact_utils.get_single_instance(output_dict[guard_report.OUTPUT_KEY])
        statistics = load_split_statistics(
            artifact_utils.get_single_instance(input_dict[STATISTICS_KEY]))
        serving_dir = exec_properties[SERVING_DIR_KEY]
        ref = reference.current(serving_dir)
        schema = tfdv.load_schema_text(config.schema) if config.schema else \
            (ref.schema if ref else None)
        against = ("imported schema " + config.schema) if config.schema else \
            (ref.describe() if ref else "nothing yet (no champion with recorded data)")
        if schema is None:
            result = checks.Result([], [])
        else:
            result = checks.check(statistics, schema, ref.statistics if ref else None, config)
        findings = result.anomalies + [d.describe() for d in result.breaches]
        fileio.makedirs(out.uri)  # a launcher need not create an output's folder
        with fileio.open(os.path.join(out.uri, guard_report.REPORT_FILE), "w") as f:
            f.write(json.dumps({"reference": against, **result.to_dict(),
                                "findings": findings}, indent=1))
        out.set_string_custom_property(guard_report.FINDINGS, json.dumps(findings))
        logging.info("DataGuard against %s: %s", against,
                     "; ".join(findings + [d.describe() for d in result.drift]) or "ok")
        stopping = result.anomalies + (
            [d.describe() for d in result.breaches] if config.on_drift == STOP else [])
        if stopping:
            raise guard_report.DataGuardStop(stopping, (
                f"checked against {against}. If the change is intended: `imgpipe schema "
                "accept` makes this run's data the reference, then run again"))
