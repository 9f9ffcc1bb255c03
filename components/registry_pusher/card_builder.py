"""The model card of a blessed model (components/serving/model_card.py), built from the
Pusher's inputs: the Evaluator's output and blessing, the ingestion counts, the config
and the run's lineage. The version, its path and the push time are set when published.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.utils import path_utils

from components.artifacts import baseline as baseline_properties
from components.artifacts import ingestion
from components.artifacts.evaluation import Evaluation, read_evaluation
from components.artifacts.metric_names import EXAMPLE_COUNT
from components.serving.model_card import Lineage, ModelCard
from trainer import warm_start
from trainer.contract import class_name


@dataclasses.dataclass
class PusherRun:
    """The run and execution a push happens in (empty outside a pipeline)."""
    pipeline_name: str = ""
    pipeline_run_id: Optional[str] = None
    execution_id: Optional[str] = None


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
    return {class_name(i, labels): values for i, values in sorted(per_class.items())}


def _baseline(blessing: types.Artifact, result: Optional[Evaluation],
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
        "serving_version": _int_property(blessing, baseline_properties.BASELINE_SERVING_VERSION),
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
                 result: Optional[Evaluation]) -> Dict[str, Any]:
    counts: Dict[str, Any] = {}
    if examples is not None:
        for name, key in (("files_seen", ingestion.FILES_SEEN),
                          ("ingested", ingestion.INGESTED_COUNT),
                          ("rejected", ingestion.REJECTED_COUNT)):
            counts[name] = _int_property(examples, key)
    if result is not None:
        counts["eval_examples"] = result.metrics.get(EXAMPLE_COUNT)
    return counts


def _intervals(result: Optional[Evaluation], labels: List[str]) -> Optional[Dict[str, Any]]:
    """Bootstrap intervals of accuracy and of each class's recall, classes by name."""
    if result is None or result.intervals is None:
        return None
    values = result.intervals.to_dict()
    values["recall"] = {class_name(int(c), labels): v for c, v in values["recall"].items()}
    return values


def _started_from(model: types.Artifact) -> Optional[Dict[str, Any]]:
    record = warm_start.read_start(path_utils.serving_model_dir(model.uri))
    if record is None:
        return None
    return {k: record.get(k) for k in ("started_from", "champion_version", "reason")}


def build_card(model: types.Artifact, blessing: types.Artifact,
               evaluated: Optional[types.Artifact], examples: Optional[types.Artifact],
               labels: List[str], model_name: str, config: Dict[str, Any], config_hash: str,
               run: PusherRun) -> ModelCard:
    """The model card without version / serving_path / pushed_at (set when published).

    `config` is the pipeline config as a dict."""
    result = read_evaluation(evaluated.uri) if evaluated is not None else None
    baseline = _baseline(blessing, result, labels)
    return ModelCard(
        model_name=model_name,
        labels=labels,
        metrics=result.metrics if result else {},
        per_class=_named(result.per_class, labels) if result else {},
        confidence_intervals=_intervals(result, labels),
        baseline=baseline,
        thresholds=_thresholds(config, baseline is not None),
        blessed=True,
        data=_data_counts(examples, result),
        started_from=_started_from(model),
        config_hash=config_hash,
        params=_flatten({k: v for k, v in config.items() if k in ("data", "train", "eval")}),
        lineage=Lineage(
            pipeline_name=run.pipeline_name, pipeline_run_id=run.pipeline_run_id,
            pusher_execution_id=run.execution_id, model_id=model.id, model_uri=model.uri,
            blessing_id=blessing.id,
            evaluation_id=evaluated.id if evaluated is not None else None,
            examples_id=examples.id if examples is not None else None))
