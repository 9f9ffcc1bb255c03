"""RegistryPusher executor: push a blessed model atomically, write its card, register it.

1. Not blessed: nothing is written; the PushedModel says pushed=0.
2. A model already published (a version's card names the same model artifact URI, e.g. a
   re-run whose Trainer was cached) is not pushed again and the registry is not touched:
   a scheduled re-run must not undo a human's rollback.
3. Otherwise the SavedModel, labels.txt and model_card.json are copied into a hidden
   staging folder beside the versions (each file fsync'ed), then renamed to
   <serving_dir>/<version>: a reader sees the whole version or none of it. The version
   is one more than the highest present; an existing version is never overwritten (a
   rename onto one fails and the next number is tried). On failure the staging folder
   is removed and nothing is published. On a remote filesystem (gs://...), where a
   folder cannot be renamed, files are copied in place with saved_model.pb last: TF
   Serving's marker of a complete model.
4. The version is registered in MLflow and becomes `champion`. A registry failure is
   logged and recorded on the PushedModel (registry_status=failed, registry_error); the
   push stands, and `imgpipe registry sync` registers it later.

The model card (JSON) holds: model_name, version, serving_path, pushed_at, labels,
metrics / per_class (the candidate's overall and per-class TFMA metrics), baseline
(the model compared with: ids, its serving version, its metrics) or null, thresholds (the
eval config and whether change thresholds applied), blessed, data (ingestion counts and
evaluated examples), config_hash, params (the flattened config) and lineage (pipeline
name, run id, this execution's id, the input artifacts' ids and URIs).
"""
import datetime
import errno
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from pipeline import evaluation, registry

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

# PushedModel custom properties (the first three as TFX's own Pusher sets them).
PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
PUSH_STATUS = "push_status"  # pushed | already_pushed | not_blessed
REGISTRY_STATUS = "registry_status"  # registered | failed | disabled | unchanged
REGISTRY_VERSION = "registry_version"
REGISTRY_ERROR = "registry_error"

STAGING_PREFIX = ".staging-"  # TF Serving loads numeric folders only
PUBLISH_ATTEMPTS = 5


# -- files ---------------------------------------------------------------------------------
def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_file(src: str, dst: str) -> str:
    shutil.copy2(src, dst)
    _fsync(dst)
    return dst


def _is_remote(path: str) -> bool:
    return "://" in path


def _write_file(path: str, text: str) -> None:
    if _is_remote(path):
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def next_version(serving_dir: str) -> int:
    return 1 + max([v for v, _ in registry.serving_versions(serving_dir)] or [0])


def _stage(model_dir: str, staging: str, labels: List[str]) -> None:
    shutil.copytree(model_dir, staging, copy_function=_copy_file)
    _write_file(os.path.join(staging, registry.LABELS_FILE), "\n".join(labels) + "\n")


def _finalize_card(card: Dict[str, Any], version: int, path: str) -> Dict[str, Any]:
    return {**card, "version": version, "serving_path": path,
            "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def _fsync_tree(root: str) -> None:
    for folder, _, _ in os.walk(root):
        _fsync(folder)


def publish_local(model_dir: str, serving_dir: str, card: Dict[str, Any],
                  labels: List[str]) -> Dict[str, Any]:
    """Stages a copy beside the versions and renames it to the next version number."""
    os.makedirs(serving_dir, exist_ok=True)
    staging_root = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=serving_dir)
    staged = os.path.join(staging_root, "model")
    try:
        _stage(model_dir, staged, labels)
        for _ in range(PUBLISH_ATTEMPTS):
            version = next_version(serving_dir)
            target = os.path.join(serving_dir, str(version))
            final = _finalize_card(card, version, target)
            _write_file(os.path.join(staged, registry.CARD_FILE), json.dumps(final, indent=1))
            _fsync_tree(staged)
            try:
                os.rename(staged, target)
            except OSError as e:  # another push took this number first
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                logging.warning("version %d appeared while pushing; trying the next", version)
                continue
            _fsync(serving_dir)
            return final
        raise RuntimeError(f"could not claim a version under {serving_dir} in "
                           f"{PUBLISH_ATTEMPTS} attempts: concurrent pushes?")
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def publish_remote(model_dir: str, serving_dir: str, card: Dict[str, Any],
                   labels: List[str]) -> Dict[str, Any]:
    """Copies in place with saved_model.pb last (object stores cannot rename folders)."""
    version = next_version(serving_dir)
    target = os.path.join(serving_dir, str(version))
    if tf.io.gfile.exists(target):
        raise RuntimeError(f"{target} already exists: not overwriting a version")
    final = _finalize_card(card, version, target)
    io_utils.copy_dir(model_dir, target, deny_regex_patterns=[r"saved_model\.pb"])
    _write_file(os.path.join(target, registry.LABELS_FILE), "\n".join(labels) + "\n")
    _write_file(os.path.join(target, registry.CARD_FILE), json.dumps(final, indent=1))
    io_utils.copy_file(os.path.join(model_dir, registry.SAVED_MODEL_FILE),
                       os.path.join(target, registry.SAVED_MODEL_FILE))
    return final


# -- the model card ------------------------------------------------------------------------
def _int_property(artifact: types.Artifact, name: str) -> Optional[int]:
    return artifact.get_int_custom_property(name) if artifact.has_custom_property(name) \
        else None


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def _named(per_class: Dict[int, Dict[str, float]],
           labels: List[str]) -> Dict[str, Dict[str, float]]:
    return {labels[i] if i < len(labels) else f"#{i}": values
            for i, values in sorted(per_class.items())}


def _baseline(blessing: types.Artifact, result: Optional[evaluation.Evaluation],
              labels: List[str]) -> Optional[Dict[str, Any]]:
    # The Evaluator records the model it compared with (TFX's keys: the baseline
    # artifact) and its serving version (ours), when there was one.
    uri_key = evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY
    if not blessing.has_custom_property(uri_key):
        return None
    return {
        "model_id": _int_property(blessing,
                                  evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY),
        "model_uri": blessing.get_string_custom_property(uri_key),
        "serving_version": _int_property(blessing, evaluation.BASELINE_SERVING_VERSION),
        "metrics": result.baseline if result else {},
        "per_class": _named(result.baseline_per_class, labels) if result else {},
    }


def _thresholds(config: Dict[str, Any], has_baseline: bool) -> Dict[str, Any]:
    ev = config.get("eval", {})
    keys = ("min_accuracy", "min_class_recall", "max_accuracy_drop", "max_class_recall_drop")
    mode = "value and change thresholds" if has_baseline else \
        "value thresholds only (no baseline yet)"
    return {"mode": mode, **{k: ev.get(k) for k in keys}}


def _data_counts(examples: Optional[types.Artifact],
                 result: Optional[evaluation.Evaluation]) -> Dict[str, Any]:
    counts: Dict[str, Any] = {}
    if examples is not None:
        for name, key in (("files_seen", "files_seen"), ("ingested", "ingested_count"),
                          ("rejected", "rejected_count")):
            counts[name] = _int_property(examples, key)
    if result is not None:
        counts["eval_examples"] = result.metrics.get(evaluation.EXAMPLE_COUNT)
    return counts


def _optional(input_dict: Dict[str, List[types.Artifact]], key: str) -> Optional[types.Artifact]:
    artifacts = input_dict.get(key) or []
    return artifacts[0] if artifacts else None


def build_card(input_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any],
               labels: List[str], pipeline_name: str, run_id: Optional[str],
               execution_id: Optional[str]) -> Dict[str, Any]:
    """The model card without version / serving_path / pushed_at (set when published)."""
    model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
    blessing = artifact_utils.get_single_instance(input_dict[MODEL_BLESSING_KEY])
    evaluated = _optional(input_dict, MODEL_EVALUATION_KEY)
    examples = _optional(input_dict, EXAMPLES_KEY)
    result = evaluation.read_evaluation(evaluated.uri) if evaluated is not None else None
    config = json.loads(exec_properties.get(CONFIG_JSON_KEY) or "{}")
    baseline = _baseline(blessing, result, labels)
    return {
        "format": 1,
        "model_name": exec_properties[MODEL_NAME_KEY],
        "labels": labels,
        "metrics": result.metrics if result else {},
        "per_class": _named(result.per_class, labels) if result else {},
        "baseline": baseline,
        "thresholds": _thresholds(config, baseline is not None),
        "blessed": True,
        "data": _data_counts(examples, result),
        "config_hash": exec_properties.get(CONFIG_HASH_KEY, ""),
        "params": _flatten({k: v for k, v in config.items() if k in ("data", "train", "eval")}),
        "lineage": {
            "pipeline_name": pipeline_name,
            "pipeline_run_id": run_id,
            "pusher_execution_id": execution_id,
            "model_id": model.id, "model_uri": model.uri,
            "blessing_id": blessing.id,
            "evaluation_id": evaluated.id if evaluated is not None else None,
            "examples_id": examples.id if examples is not None else None,
        },
    }


# -- the executor --------------------------------------------------------------------------
class Executor(base_executor.BaseExecutor):
    """Pushes a blessed model to <serving_dir>/<version> and registers it in MLflow."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[MODEL_BLESSING_KEY])
        if not model_utils.is_model_blessed(blessing):
            logging.info("model not blessed (%s): nothing pushed", blessing.uri)
            pushed.set_int_custom_property(PUSHED, 0)
            pushed.set_string_custom_property(PUSH_STATUS, "not_blessed")
            return
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        serving_dir = exec_properties[SERVING_DIR_KEY]
        published = registry.find_published(serving_dir, model.uri)
        if published is not None:
            logging.info("model %s is already serving version %d: not pushed again",
                         model.uri, published[0])
            self._mark(pushed, registry.read_card(published[1]), "already_pushed")
            pushed.set_string_custom_property(REGISTRY_STATUS, "unchanged")
            return
        model_dir = path_utils.serving_model_path(model.uri,
                                                  path_utils.is_old_model_artifact(model))
        labels = evaluation.read_labels(model_dir)
        card = build_card(input_dict, exec_properties, labels, *self._lineage())
        publish = publish_remote if _is_remote(serving_dir) else publish_local
        card = publish(model_dir, serving_dir, card, labels)
        logging.info("model pushed to %s", card["serving_path"])
        self._mark(pushed, card, "pushed")
        self._register(pushed, card, exec_properties)

    def _lineage(self) -> Tuple[str, Optional[str], Optional[str]]:
        context = self._context
        if context is None:
            return "", None, None
        name = context.pipeline_info.id if context.pipeline_info is not None else ""
        # Launchers pass the MLMD execution id as the context's unique id (no public getter).
        return name, context.pipeline_run_id, getattr(context, "_unique_id", None)

    @staticmethod
    def _mark(pushed: types.Artifact, card: Dict[str, Any], status: str) -> None:
        pushed.set_int_custom_property(PUSHED, 1)
        pushed.set_string_custom_property(PUSHED_DESTINATION, card["serving_path"])
        pushed.set_string_custom_property(PUSHED_VERSION, str(card["version"]))
        pushed.set_string_custom_property(PUSH_STATUS, status)
        io_utils.write_string_file(os.path.join(pushed.uri, registry.CARD_FILE),
                                   json.dumps(card, indent=1))

    @staticmethod
    def _register(pushed: types.Artifact, card: Dict[str, Any],
                  exec_properties: Dict[str, Any]) -> None:
        uri = exec_properties.get(REGISTRY_URI_KEY) or ""
        if not uri:
            pushed.set_string_custom_property(REGISTRY_STATUS, "disabled")
            return
        try:
            version = registry.register(uri, exec_properties[MODEL_NAME_KEY], card)
        except Exception as e:  # pylint: disable=broad-except
            # Whatever the registry's failure, the published version stays and the run
            # continues; the artifact and the log say what to do.
            logging.error("model pushed to %s but NOT registered in the MLflow registry at "
                          "%s: %s: %s. Register it later with `imgpipe registry sync`.",
                          card["serving_path"], uri, type(e).__name__, e)
            pushed.set_string_custom_property(REGISTRY_STATUS, "failed")
            pushed.set_string_custom_property(REGISTRY_ERROR, f"{type(e).__name__}: {e}"[:2000])
            return
        logging.info("registered as version %s of '%s' (champion)", version,
                     exec_properties[MODEL_NAME_KEY])
        pushed.set_string_custom_property(REGISTRY_STATUS, "registered")
        pushed.set_string_custom_property(REGISTRY_VERSION, version)
