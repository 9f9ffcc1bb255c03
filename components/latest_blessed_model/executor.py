"""LatestBlessedModel executor: the served version, as a Model.

The baseline is the version TF Serving's `stable` label names in
<serving_root>/models.config (the registry's champion: the Pusher, `registry promote` and
`rollback` write it), so after a rollback new candidates are compared with the model
actually served. Without that file, or when its version is gone, it is the newest version
under <serving_dir>: the Pusher publishes only blessed models. It is read from the serving
directory rather than from ML Metadata so that the same step works on every runner: the
open-source Kubeflow Pipelines backend
does not run TFX's metadata-query Resolver. A version without saved_model.pb is skipped:
on an object store the Pusher writes that file last, so such a version is still being
pushed (or was abandoned).

Output `baseline_model` (Model): its custom properties are the ones the Evaluator reads
(components/artifacts/baseline.py). Unless the version is the candidate itself, its
SavedModel is copied to <uri>/Format-Serving, the layout of a Trainer's Model: the
evaluation stays reproducible if the version is later deleted.
"""
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.artifacts import baseline as properties
from components.serving import serving_config, serving_root
from components.serving.model_card import ModelCard

MODEL_KEY = "model"  # the candidate
BASELINE_MODEL_KEY = "baseline_model"
SERVING_DIR_KEY = "serving_dir"


def _card(version_dir: str) -> ModelCard:
    try:
        return serving_root.read_card(version_dir)
    except (OSError, ValueError, TypeError) as e:  # a version pushed by something else
        logging.warning("no readable model card in %s (%s)", version_dir, e)
        return ModelCard()


class Executor(base_executor.BaseExecutor):
    """Finds the served (else the newest) version and hands it on as the baseline Model."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        baseline = artifact_utils.get_single_instance(output_dict[BASELINE_MODEL_KEY])
        candidate = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        serving_dir = exec_properties[SERVING_DIR_KEY]
        newest = self._served_version(serving_dir)
        if newest is None:
            logging.info("no blessed model in %s yet: the candidate is evaluated alone",
                         serving_dir)
            baseline.set_int_custom_property(properties.FOUND, 0)
            return
        version, path = newest
        source = _card(path).lineage.model_uri
        same = source == candidate.uri
        baseline.set_int_custom_property(properties.FOUND, 1)
        baseline.set_int_custom_property(properties.SERVING_VERSION, version)
        baseline.set_string_custom_property(properties.SERVING_PATH, path)
        baseline.set_string_custom_property(properties.SOURCE_MODEL_URI, source)
        baseline.set_int_custom_property(properties.SAME_AS_CANDIDATE, int(same))
        if same:
            logging.info("the newest blessed model, version %d, is the candidate itself", version)
            return
        top_level_extras = [f"^{re.escape(os.path.join(path, name))}$" for name in serving_root.PUSHER_FILES]
        io_utils.copy_dir(path, path_utils.serving_model_dir(baseline.uri),
                          deny_regex_patterns=top_level_extras)
        logging.info("baseline: version %d (%s)", version, path)

    def _served_version(self, serving_dir: str) -> Optional[Tuple[int, str]]:
        """(version, path) of the `stable` version, else of the newest complete one."""
        versions = list(self._complete_versions(serving_dir))
        stable = serving_config.stable_version(serving_dir)
        for version, path in versions:
            if version == stable:
                return version, path
        if stable is not None:
            logging.warning("models.config labels version %d stable, but it is not in %s: "
                            "the newest version is the baseline", stable, serving_dir)
        return versions[0] if versions else None

    @staticmethod
    def _complete_versions(serving_dir: str):
        for version, path in serving_root.serving_versions(serving_dir):
            if fileio.exists(os.path.join(path, serving_root.SAVED_MODEL_FILE)):
                yield version, path
            else:
                logging.warning("version %d in %s has no %s yet: skipped (a push in progress?)",
                                version, serving_dir, serving_root.SAVED_MODEL_FILE)
