"""Which tf.distribute strategy the Trainer runs under, and who writes the outputs.

auto: MultiWorkerMirroredStrategy when TF_CONFIG names a cluster (a Kubeflow / TFJob
multi-worker run sets it), MirroredStrategy when several GPUs are visible, else the
default strategy (one device). Build and train the model inside `strategy.scope()`.
"""
import json
import os
from typing import Any, Dict

import tensorflow as tf


def _tf_config(raw: str) -> Dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    return parsed if isinstance(parsed, dict) else {}


def resolve(kind: str, tf_config: str, num_gpus: int) -> str:
    """'default', 'mirrored' or 'multi_worker' for the config value `kind`."""
    if kind != "auto":
        return kind
    if _tf_config(tf_config).get("cluster"):
        return "multi_worker"
    return "mirrored" if num_gpus > 1 else "default"


def choose(kind: str) -> tf.distribute.Strategy:
    """Call before any other TensorFlow work: MultiWorkerMirroredStrategy must start first."""
    # Listing physical devices does not initialise the runtime, so it is safe here.
    resolved = resolve(kind, os.environ.get("TF_CONFIG", ""),
                       len(tf.config.list_physical_devices("GPU")))
    if resolved == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if resolved == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(tf_config: str) -> bool:
    """Whether this process writes the model and logs: the chief task, else worker 0."""
    parsed = _tf_config(tf_config)
    task = parsed.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    has_chief = bool((parsed.get("cluster") or {}).get("chief"))
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and not has_chief
