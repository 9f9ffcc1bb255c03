"""Registration in the MLflow Model Registry: every pushed version registered with its
model card, and the `champion` alias.

Each registered version carries its serving path, lineage ids and blessing as tags; the
MLflow run behind it holds the metrics, the config as params, and the model card. A
local version folder holding a SavedModel is logged as an MLflow pyfunc model
(mlflow_model.py), which becomes the version's source, so `models:/<name>@champion` loads
and serves; otherwise (a remote serving root) the source is the serving path; the
`mlflow_model` tag says which. The newly blessed version becomes `champion`, recording the
previous champion in a tag, so a rollback can undo the last promotion. MLflow is imported
only when a registry is used.
"""
import contextlib
import dataclasses
import os
import shutil
import sqlite3
import tempfile
from typing import Any, Dict, List, Optional

from components.serving import fault_points, mlflow_model, serving_root
from components.serving.model_card import ModelCard
from trainer import contract
from trainer.files import is_remote, written_then_renamed
from trainer.user_cache import cache_dir

CHAMPION = "champion"
# Model version tags.
SERVING_VERSION_TAG = "serving_version"
SERVING_PATH_TAG = "serving_path"
PREVIOUS_CHAMPION_TAG = "previous_champion"  # registry version champion before this one
MLFLOW_MODEL_TAG = "mlflow_model"  # "logged", or why the version has no MLflow model
CARD_ARTIFACT_PATH = "serving"  # the run's artifact folder holding the card and labels


def connect(uri: str) -> Any:
    """An MlflowClient for both tracking and registry at `uri` (sqlite: file created)."""
    # An unreachable server should fail a push's registration in seconds, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if not os.path.exists(path):
            _seed_sqlite(path)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _seed_sqlite(path: str) -> None:
    """Starts a new sqlite registry as a copy of an empty, fully migrated database made
    once per MLflow version: MLflow builds each new one through all its schema migrations
    (~6 s, on every fresh home). The copy has no experiment 0; MLflow creates it on first
    use, as it does in a new database."""
    import mlflow
    from mlflow import MlflowClient

    template = cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        # Concurrent first uses each make their own; MLflow initialises a database only
        # where none exists, and the temporary name does not.
        with written_then_renamed(str(template)) as tmp:
            MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
            with contextlib.closing(sqlite3.connect(tmp)) as db, db:
                db.execute("DELETE FROM experiments")
    shutil.copyfile(template, path)


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or not is_remote(uri)


def _experiment_id(client: Any, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
        location = "file://" + os.path.join(os.path.dirname(uri[len("sqlite:///"):]),
                                            "artifacts")
    return client.create_experiment(name, artifact_location=location)


def _metric_name(name: str) -> str:
    # MLflow allows letters, digits, _ - . / and spaces in metric names.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def card_metrics(card: ModelCard) -> Dict[str, float]:
    """Candidate, per-class, baseline and difference metrics of a model card, flat."""
    out = {k: float(v) for k, v in card.metrics.items()}
    for label, values in card.per_class.items():
        out.update({_metric_name(f"{k}/{label}"): float(v) for k, v in values.items()})
    baseline = (card.baseline or {}).get("metrics", {})
    for k, v in baseline.items():
        out[f"baseline_{k}"] = float(v)
        if k in card.metrics:
            out[f"{k}_diff"] = float(card.metrics[k]) - float(v)
    intervals = card.confidence_intervals or {}
    bounds = {"accuracy": intervals.get("accuracy"),
              **{f"recall/{label}": v for label, v in intervals.get("recall", {}).items()}}
    for name, bound in bounds.items():
        if bound:  # e.g. accuracy_ci_low, recall_ci_high/daisy
            metric, _, label = name.partition("/")
            for side, value in zip(("low", "high"), bound):
                out[_metric_name(f"{metric}_ci_{side}" + (f"/{label}" if label else ""))] = \
                    float(value)
    data = {k: float(v) for k, v in card.data.items() if isinstance(v, (int, float))}
    out.update({f"data_{k}": v for k, v in data.items()})
    return out


def _version_tags(card: ModelCard) -> Dict[str, str]:
    lineage = {k: str(v) for k, v in dataclasses.asdict(card.lineage).items()
               if v is not None}
    baseline = card.baseline or {}
    return {
        SERVING_VERSION_TAG: str(card.version),
        SERVING_PATH_TAG: card.serving_path,
        "blessed": str(bool(card.blessed)).lower(),
        "thresholds": card.thresholds.get("mode", ""),
        "baseline_serving_version": str(baseline.get("serving_version") or ""),
        "config_hash": card.config_hash,
        **lineage,
    }


def _log_run(client: Any, uri: str, card: ModelCard) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    experiment = _experiment_id(client, uri, card.lineage.pipeline_name or card.model_name)
    run = client.create_run(experiment, run_name=f"{card.model_name}-v{card.version}",
                            tags={SERVING_VERSION_TAG: str(card.version)})
    run_id = run.info.run_id
    try:
        now = get_current_time_millis()
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in card_metrics(card).items()],
            params=[Param(k, str(v)[:500]) for k, v in sorted(card.params.items())],
            tags=[RunTag(k, v) for k, v in _version_tags(card).items()])
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, serving_root.CARD_FILE), "w") as f:
                f.write(card.to_json())
            with open(os.path.join(tmp, contract.LABELS_FILE), "w") as f:
                f.write("\n".join(card.labels) + "\n")
            client.log_artifacts(run_id, tmp, CARD_ARTIFACT_PATH)
    except BaseException:
        with contextlib.suppress(Exception):  # the registry may be what failed
            client.set_terminated(run_id, "FAILED")  # never a run left RUNNING
        raise
    client.set_terminated(run_id)
    fault_points.reached("mlflow_run")
    return run_id


def _version_source(uri: str, serving_path: str, run_id: str) -> str:
    # A tracking server refuses local paths as sources (its own security check); the run's
    # copy of the card stands in for them there. The serving path is always a tag.
    if _is_local_store(uri) or is_remote(serving_path):
        return serving_path
    return f"runs:/{run_id}/{CARD_ARTIFACT_PATH}"


def _ensure_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Image classifier pushed by imgpipe; `champion` is served.")


def register(uri: str, model_name: str, card: ModelCard, make_champion: bool = True,
             example_image: Optional[bytes] = None) -> str:
    """Registers the pushed version a model card describes; returns MLflow's version.
    example_image (encoded bytes) becomes the logged model's input example, a small PNG
    of it; without one a grey square stands in."""
    client = connect(uri)
    run_id = _log_run(client, uri, card)
    _ensure_model(client, model_name)
    path = card.serving_path
    tags = _version_tags(card)
    with mlflow_model.tracking(uri):  # the sqlite registry resolves `models:/m-...` here
        info = None
        if mlflow_model.loadable(path):
            info = mlflow_model.log(path, card.labels, run_id,
                                    mlflow_model.small_png(example_image), tags)
        tags[MLFLOW_MODEL_TAG] = "logged" if info else "not logged: no local SavedModel"
        version = client.create_model_version(
            model_name, source=info.model_uri if info else _version_source(uri, path, run_id),
            run_id=run_id, tags=tags, description=f"serving version {card.version} at {path}",
            model_id=info.model_id if info else None)
    fault_points.reached("mlflow_version")
    if make_champion:
        set_champion(client, model_name, version.version)
    return str(version.version)


def versions(client: Any, model_name: str) -> List[Any]:
    """The registered versions of model_name ([] when it is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        return []
    return list(client.search_model_versions(f"name='{model_name}'"))


def champion(client: Any, model_name: str) -> Optional[Any]:
    """The model version the champion alias points at, None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def set_champion(client: Any, model_name: str, registry_version: str) -> None:
    """Points `champion` at registry_version, remembering the one it replaces."""
    current = champion(client, model_name)
    if current is not None and str(current.version) == str(registry_version):
        return
    client.set_model_version_tag(model_name, registry_version, PREVIOUS_CHAMPION_TAG,
                                 str(current.version) if current is not None else "")
    client.set_registered_model_alias(model_name, CHAMPION, registry_version)
