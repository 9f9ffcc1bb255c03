"""`imgpipe predict IMAGE... [--model champion|ALIAS|VERSION|PATH]`: top-k class names.

--model picks the SavedModel: a registry alias (default `champion`), a serving version
number (<serving_root>/<model_name>/<N>), or a path to a SavedModel folder. `champion`
(and TF Serving's `stable`/`canary`) is the version models.config labels stable, which
the registry's champion follows: read from the file, without starting MLflow (seconds);
the registry answers for other aliases, or when there is no file. Images go
to the serving_default signature as their encoded bytes, exactly as TF Serving receives
them; an image the model cannot decode is reported and the others still predicted.
"""
import os
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from components.registry_pusher import mlflow_registry, serving_config
from trainer import contract


@dataclass
class Prediction:
    image: str
    top: List[Tuple[str, float]]  # (class name, probability), best first
    error: Optional[str] = None


def resolve_model(config: Any, spec: str) -> str:
    """The SavedModel folder `spec` names (see the module doc)."""
    if os.path.isdir(spec):
        return spec
    if spec.isdigit():
        path = os.path.join(config.serving_dir, spec)
        if not os.path.isdir(path):
            raise LookupError(f"serving version {spec} not found: {path} does not exist")
        return path
    if spec in (mlflow_registry.CHAMPION, serving_config.STABLE, serving_config.CANARY):
        stable = serving_config.stable_version(config.serving_dir)
        path = os.path.abspath(os.path.join(config.serving_dir, str(stable)))
        if stable is not None and os.path.isdir(path):
            return path
    client = mlflow_registry.connect(config.registry_uri)
    try:
        version = client.get_model_version_by_alias(config.registry_model_name, spec)
    except Exception as e:  # MLflow: no such model / alias, or the registry is unreachable
        raise LookupError(f"no model '{config.registry_model_name}' with alias '{spec}' in "
                          f"{config.registry_uri} ({e}); pass --model PATH or VERSION") from None
    path = version.tags.get(mlflow_registry.SERVING_PATH_TAG) or version.source
    if not os.path.isdir(path):
        raise LookupError(f"alias '{spec}' points at {path}, which does not exist")
    return path


def predict(model_dir: str, images: Sequence[str], top_k: Optional[int] = None
            ) -> List[Prediction]:
    """Each image's top classes (at most top_k), or why it could not be predicted."""
    import tensorflow as tf  # seconds to import: only when predicting

    serve = tf.saved_model.load(model_dir).signatures[contract.SERVING_SIGNATURE]
    results = []
    for image in images:
        try:
            with open(image, "rb") as f:
                payload = f.read()
            out = serve(**{contract.IMAGE_BYTES_INPUT: tf.constant([payload])})
        except (OSError, tf.errors.InvalidArgumentError) as e:
            results.append(Prediction(image, [], _first_line(e)))
            continue
        names = [n.decode() for n in out[contract.TOP_K_CLASS_NAMES].numpy()[0]]
        scores = [float(s) for s in out[contract.TOP_K_SCORES].numpy()[0]]
        results.append(Prediction(image, list(zip(names, scores))[:top_k]))
    return results


# TensorFlow's wrapping of an op's error: where it was raised, not why.
_TF_NOISE = re.compile(r"^(Graph execution error:|Detected at node|\s|File |defined at|"
                       r"<stack traces unavailable>)")
_TF_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[\[.*?\]\]|\s*\[Op:[^\]]*\]")


def _first_line(error: Exception) -> str:
    """Why an image failed: the op's own message (e.g. "Unknown image file format"), not
    TensorFlow's "Graph execution error:" heading and traceback."""
    text = getattr(error, "message", None) or str(error)
    lines = [line for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not _TF_NOISE.match(line)] or lines
    reason = _TF_NODE.sub("", reasons[0]).strip() if reasons else ""
    return reason or type(error).__name__
