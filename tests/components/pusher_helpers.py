"""The RegistryPusher's test helpers: tiny SavedModels with the serving signature, blessing
artifacts, and one executor run."""
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import tensorflow as tf
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.proto.orchestration import pipeline_pb2
from tfx.types import standard_artifacts

from components.artifacts import baseline as properties
from components.registry_pusher import executor

LABELS = ["cat", "dog", "bird"]


class _Constant(tf.Module):
    """A SavedModel with the project's serving signature, returning fixed probabilities."""

    def __init__(self, probabilities: List[float]):
        super().__init__()
        self.probabilities = tf.constant([probabilities])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        probabilities = tf.tile(self.probabilities, [tf.size(image_bytes), 1])
        top = tf.math.top_k(probabilities, k=2)
        return {"probabilities": probabilities, "top_k_class_ids": top.indices,
                "top_k_scores": top.values,
                "top_k_class_names": tf.gather(tf.constant(LABELS), top.indices)}


def model_artifact(root: Path, name: str, artifact_id: int) -> standard_artifacts.Model:
    """A Model artifact holding a tiny SavedModel (Format-Serving/, labels in assets/)."""
    serving = root / name / "Format-Serving"
    module = _Constant([0.7, 0.2, 0.1])
    tf.saved_model.save(module, str(serving), signatures={"serving_default": module.serve})
    (serving / "assets").mkdir(exist_ok=True)
    (serving / "assets" / "labels.txt").write_text("\n".join(LABELS) + "\n")
    model = standard_artifacts.Model()
    model.uri = str(root / name)
    model.id = artifact_id
    return model


def blessing(root: Path, blessed: bool, baseline: Optional[standard_artifacts.Model] = None,
              baseline_version: int = 1) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(root / f"blessing_{blessed}")
    blessing.id = 100
    blessing.set_int_custom_property("blessed", int(blessed))
    if baseline is not None:
        # As the Evaluator records the model it compared with: TFX's keys, and ours.
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY,
                                            baseline.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
                                         baseline.id)
        blessing.set_int_custom_property(properties.BASELINE_SERVING_VERSION, baseline_version)
    return blessing


def push(tmp_path: Path, model, blessing, serving_dir: Path, registry_uri: str = "",
          examples=None, model_name: str = "pets", tf_serving_url: str = "",
          tf_serving_timeout_s: int = 30) -> standard_artifacts.PushedModel:
    """Runs the executor once; returns the PushedModel it filled in."""
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed_{len(list(tmp_path.glob('pushed_*')))}")
    os.makedirs(pushed.uri)
    inputs: Dict[str, list] = {"model": [model], "model_blessing": [blessing]}
    if examples is not None:
        inputs["examples"] = [examples]
    context = base_executor.BaseExecutor.Context(
        pipeline_info=pipeline_pb2.PipelineInfo(id="imgpipe"), pipeline_run_id="run-1",
        unique_id="42")
    executor.Executor(context).Do(inputs, {"pushed_model": [pushed]}, {
        "serving_dir": str(serving_dir), "model_name": model_name, "registry_uri": registry_uri,
        "config_json": json.dumps({"eval": {"min_accuracy": 0.5}, "train": {"seed": 1}}),
        "config_hash": "abc123", "tf_serving_url": tf_serving_url,
        "tf_serving_timeout_s": tf_serving_timeout_s})
    return pushed


def version_names(serving_dir: Path) -> List[str]:
    return sorted(p.name for p in serving_dir.iterdir()) if serving_dir.exists() else []


def prop(artifact, name):
    return artifact.get_custom_property(name) if artifact.has_custom_property(name) else None
