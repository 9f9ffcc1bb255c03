"""DataReference executor: after the Pusher, the run's schema and training statistics
become the pushed version's data reference (components/serving/data_reference.py).

Runs every time (pipeline.NEVER_CACHED) and writes only what is missing, so a run that
stopped between the push and this step is repaired by the next: the Pusher then reports
the same model `already_pushed` at that version, trained on the same examples.
"""
from typing import Any, Dict, List

import tensorflow_data_validation as tfdv
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.serving import data_reference as reference
from components.artifacts.statistics import load_split_statistics
from components.artifacts import pushed_model as pusher

PUSHED_MODEL_KEY = "pushed_model"
STATISTICS_KEY = "statistics"
SCHEMA_KEY = "schema"
SERVING_DIR_KEY = "serving_dir"
SIZE_RANGE_FACTOR_KEY = "size_range_factor"
SCHEMA_FILE = "schema.pbtxt"  # SchemaGen's file


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        pushed = artifact_utils.get_single_instance(input_dict[PUSHED_MODEL_KEY])
        version = pushed.get_string_custom_property(pusher.PUSHED_VERSION) \
            if pushed.has_custom_property(pusher.PUSHED_VERSION) else ""
        if not version:
            logging.info("DataReference: nothing pushed, nothing to record")
            return
        schema_artifact = artifact_utils.get_single_instance(input_dict[SCHEMA_KEY])
        schema = tfdv.load_schema_text(f"{schema_artifact.uri}/{SCHEMA_FILE}")
        statistics = load_split_statistics(
            artifact_utils.get_single_instance(input_dict[STATISTICS_KEY]))
        written = reference.record_version(
            exec_properties[SERVING_DIR_KEY], int(version), schema, statistics,
            self._context.pipeline_run_id or "",
            float(exec_properties[SIZE_RANGE_FACTOR_KEY]))
        logging.info("DataReference: version %s %s", version,
                     f"recorded in {written}" if written else "already has its data recorded")
