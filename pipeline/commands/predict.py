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
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from components.serving import mlflow_model, mlflow_registry, serving_config


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
    classifier = mlflow_model.ImageClassifier(model_dir)  # the served signature, as served
    results = []
    for image in images:
        try:
            with open(image, "rb") as f:
                row = classifier.classify([f.read()])[0]
        except OSError as e:
            row = mlflow_model.error_row(e)
        top = list(zip(row["top_k_class_names"], row["top_k_scores"]))[:top_k]
        results.append(Prediction(image, top, row["error"] or None))
    return results
