"""RegistryPusher executor: push a blessed model atomically, write its card, register it.

1. Not blessed: nothing is written; the PushedModel says pushed=0.
2. A model already published (a version's card names the same model artifact URI, e.g. a
   re-run whose Trainer was cached) is not pushed again and the registry is not touched:
   a scheduled re-run must not undo a human's rollback.
3. Otherwise the SavedModel is published with labels.txt and its model card (card_builder.py)
   as the next version of the serving root (serving_root.py), complete or not at all
   (publish.py).
4. <serving_root>/models.config labels it `stable` for TF Serving, the previous stable
   version kept loaded (serving_config.py); with a running TF Serving to wait for, only
   once it has loaded the version (tf_serving.py). If it cannot load it, the version is
   withdrawn and the Pusher fails: nothing serves, labels or registers it.
5. The version is registered in MLflow, as an MLflow model whose input example is the
   first eval image, and becomes `champion` (mlflow_registry.py). A registry failure is
   logged and recorded on the PushedModel (registry_status=failed, registry_error); the
   push stands, and the next push (or `imgpipe registry sync`) registers it.

Steps 3-5 run between a pending record and its removal; every push starts by finishing
what a push cut short left (reconcile.py), so a crash at any point converges.
"""
import json
import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.artifacts.examples import split_files
from components.artifacts.model_contract import read_labels
from components.artifacts.pushed_model import (PUSH_STATUS, PUSHED, PUSHED_DESTINATION,
                                               PUSHED_VERSION, REGISTRY_ERROR, REGISTRY_STATUS,
                                               REGISTRY_VERSION)
from components.serving import (fault_points, mlflow_registry, publish, reconcile,
                                serving_config, serving_root, tf_serving)
from components.registry_pusher.card_builder import PusherRun, build_card
from components.serving.model_card import ModelCard
from trainer import features
from trainer.files import is_remote

# Input / output / parameter keys of RegistryPusherSpec.
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
MODEL_EVALUATION_KEY = "model_evaluation"
EXAMPLES_KEY = "examples"
PUSHED_MODEL_KEY = "pushed_model"
SERVING_DIR_KEY = "serving_dir"
MODEL_NAME_KEY = "model_name"
REGISTRY_URI_KEY = "registry_uri"  # "": registration disabled
CONFIG_JSON_KEY = "config_json"
CONFIG_HASH_KEY = "config_hash"
TF_SERVING_URL_KEY = "tf_serving_url"  # "": no running server to wait for
TF_SERVING_TIMEOUT_KEY = "tf_serving_timeout_s"


def _optional(input_dict: Dict[str, List[types.Artifact]], key: str) -> Optional[types.Artifact]:
    artifacts = input_dict.get(key) or []
    return artifacts[0] if artifacts else None


def _first_image(examples: Optional[types.Artifact]) -> Optional[bytes]:
    """The encoded image of the first eval example, None without eval examples."""
    files = split_files(examples, features.EVAL_SPLIT) if examples is not None else []
    if not files:
        return None
    import tensorflow as tf

    for record in tf.data.TFRecordDataset(files[:1], compression_type="GZIP").take(1):
        example = tf.train.Example.FromString(record.numpy())
        return example.features.feature[features.IMAGE_KEY].bytes_list.value[0]
    return None


class Executor(base_executor.BaseExecutor):
    """Pushes a blessed model to <serving_dir>/<version> and registers it in MLflow."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[MODEL_BLESSING_KEY])
        serving_dir = exec_properties[SERVING_DIR_KEY]
        server_url = exec_properties.get(TF_SERVING_URL_KEY) or ""
        timeout_s = exec_properties.get(TF_SERVING_TIMEOUT_KEY) or tf_serving.LOAD_TIMEOUT_S
        finished = reconcile.reconcile(serving_dir, exec_properties[MODEL_NAME_KEY],
                                       exec_properties.get(REGISTRY_URI_KEY) or "",
                                       server_url, timeout_s)
        if not model_utils.is_model_blessed(blessing):
            logging.info("model not blessed (%s): nothing pushed", blessing.uri)
            pushed.set_int_custom_property(PUSHED, 0)
            pushed.set_string_custom_property(PUSH_STATUS, "not_blessed")
            return
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        published = serving_root.find_published(serving_dir, model.uri)
        if published is not None:
            logging.info("model %s is already serving version %d: not pushed again",
                         model.uri, published[0])
            self._mark(pushed, serving_root.read_card(published[1]), "already_pushed")
            pushed.set_string_custom_property(
                REGISTRY_STATUS, "caught_up" if finished == published[0] else "unchanged")
            return
        model_dir = path_utils.serving_model_path(model.uri,
                                                  path_utils.is_old_model_artifact(model))
        labels = read_labels(model_dir)
        card = build_card(
            model, blessing, _optional(input_dict, MODEL_EVALUATION_KEY),
            _optional(input_dict, EXAMPLES_KEY), labels, exec_properties[MODEL_NAME_KEY],
            json.loads(exec_properties.get(CONFIG_JSON_KEY) or "{}"),
            exec_properties.get(CONFIG_HASH_KEY, ""), self._run())
        publish_version = publish.publish_remote if is_remote(serving_dir) \
            else publish.publish_local
        previous = serving_config.stable_version(serving_dir)
        if previous is None:  # no config yet: the newest version before this push
            previous = next((v for v, _ in serving_root.serving_versions(serving_dir)), None)
        reconcile.begin(serving_dir, model.uri, previous)
        try:
            card = publish_version(model_dir, serving_dir, card, labels)
        except BaseException:
            if serving_root.find_published(serving_dir, model.uri) is None:
                reconcile.end(serving_dir)  # nothing published: nothing to finish
            raise
        logging.info("model pushed to %s", card.serving_path)
        try:
            path = tf_serving.move_champion(serving_dir, card.version, [previous],
                                            server_url, timeout_s)
        except tf_serving.ServingError as e:
            publish.withdraw(card.serving_path)
            reconcile.end(serving_dir)
            raise tf_serving.ServingError(
                f"{e}. Version {card.version} was withdrawn ({card.serving_path} "
                f"removed); models.config, the server and the registry are unchanged") from e
        fault_points.reached("serving_config")
        self._mark(pushed, card, "pushed")
        logging.info("%s: stable = version %d", path, card.version)
        if self._register(pushed, card, exec_properties,
                          _first_image(_optional(input_dict, EXAMPLES_KEY))):
            fault_points.reached("registered")
            reconcile.finish(serving_dir, exec_properties[MODEL_NAME_KEY],
                             exec_properties.get(REGISTRY_URI_KEY) or "")
        # else the record stays: the next push registers it

    def _run(self) -> PusherRun:
        context = self._context
        if context is None:
            return PusherRun()
        name = context.pipeline_info.id if context.pipeline_info is not None else ""
        # Launchers pass the MLMD execution id as the context's unique id (no public getter).
        return PusherRun(name, context.pipeline_run_id, getattr(context, "_unique_id", None))

    @staticmethod
    def _mark(pushed: types.Artifact, card: ModelCard, status: str) -> None:
        pushed.set_int_custom_property(PUSHED, 1)
        pushed.set_string_custom_property(PUSHED_DESTINATION, card.serving_path)
        pushed.set_string_custom_property(PUSHED_VERSION, str(card.version))
        pushed.set_string_custom_property(PUSH_STATUS, status)
        io_utils.write_string_file(os.path.join(pushed.uri, serving_root.CARD_FILE),
                                   card.to_json())

    @staticmethod
    def _register(pushed: types.Artifact, card: ModelCard,
                  exec_properties: Dict[str, Any], example_image: Optional[bytes]) -> bool:
        """Registers the pushed version; False if the registry failed."""
        uri = exec_properties.get(REGISTRY_URI_KEY) or ""
        if not uri:
            pushed.set_string_custom_property(REGISTRY_STATUS, "disabled")
            return True
        try:
            version = mlflow_registry.register(uri, exec_properties[MODEL_NAME_KEY], card,
                                               example_image=example_image)
        except Exception as e:  # pylint: disable=broad-except
            # Whatever the registry's failure, the published version stays and the run
            # continues; the artifact and the log say what to do.
            logging.error("model pushed to %s but NOT registered in the MLflow registry at "
                          "%s: %s: %s. Register it later with `imgpipe registry sync`.",
                          card.serving_path, uri, type(e).__name__, e)
            pushed.set_string_custom_property(REGISTRY_STATUS, "failed")
            pushed.set_string_custom_property(REGISTRY_ERROR, f"{type(e).__name__}: {e}"[:2000])
            return False
        logging.info("registered as version %s of '%s' (champion)", version,
                     exec_properties[MODEL_NAME_KEY])
        pushed.set_string_custom_property(REGISTRY_STATUS, "registered")
        pushed.set_string_custom_property(REGISTRY_VERSION, version)
        return True
