"""`imgpipe predict IMAGE... [--model champion|ALIAS|VERSION|PATH]`: top-k class names.

--model picks the SavedModel: a registry alias (default `champion`), a serving version
number (<serving_root>/<model_name>/<N>), or a path to a SavedModel folder. Images go
to the serving_default signature as their encoded bytes, exactly as TF Serving receives
them; an image the model cannot decode is reported and the others still predicted.
"""
import argparse
import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple


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
    from pipeline import registry

    client = registry.connect(config.registry_uri)
    try:
        version = client.get_model_version_by_alias(config.registry_model_name, spec)
    except Exception as e:  # MLflow: no such model / alias, or the registry is unreachable
        raise LookupError(f"no model '{config.registry_model_name}' with alias '{spec}' in "
                          f"{config.registry_uri} ({e}); pass --model PATH or VERSION") from None
    path = version.tags.get(registry.SERVING_PATH_TAG) or version.source
    if not os.path.isdir(path):
        raise LookupError(f"alias '{spec}' points at {path}, which does not exist")
    return path


def predict(model_dir: str, images: Sequence[str], top_k: Optional[int] = None
            ) -> List[Prediction]:
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    results = []
    for image in images:
        try:
            with open(image, "rb") as f:
                payload = f.read()
            out = serve(image_bytes=tf.constant([payload]))
        except (OSError, tf.errors.InvalidArgumentError) as e:
            results.append(Prediction(image, [], _first_line(e)))
            continue
        names = [n.decode() for n in out["top_k_class_names"].numpy()[0]]
        scores = [float(s) for s in out["top_k_scores"].numpy()[0]]
        results.append(Prediction(image, list(zip(names, scores))[:top_k]))
    return results


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def cmd_predict(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    config = _load(args)
    try:
        model_dir = resolve_model(config, args.model)
    except LookupError as e:
        print(f"imgpipe predict: {e}")
        return 1
    print(f"model: {model_dir}")
    failed = 0
    for p in predict(model_dir, args.images, args.top_k):
        if p.error:
            failed += 1
            print(f"{p.image}: cannot predict: {p.error}")
            continue
        print(p.image)
        for rank, (name, score) in enumerate(p.top, 1):
            print(f"  {rank}. {name:20} {score:.4f}")
    return 1 if failed else 0


def add_commands(subparsers: Any) -> None:
    from pipeline.cli import _config_args

    parser = subparsers.add_parser("predict", help="top-k class names for image files")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", default="champion",
                        help="registry alias (default champion), serving version, or a "
                        "SavedModel folder")
    parser.add_argument("--top-k", type=int, default=None, help="show at most K classes")
    _config_args(parser)
    parser.set_defaults(func=cmd_predict)
