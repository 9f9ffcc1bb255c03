"""The MLflow Model Registry: every pushed version registered, the champion alias, and
`imgpipe registry list | show [VERSION] | promote VERSION | rollback | sync`.

VERSION is the serving version: the folder number under <serving_root>/<model_name>/,
the number TF Serving and the model card use. MLflow numbers its versions itself; the
two usually agree, and `list` shows both.

Each registered version carries its serving path, lineage ids and blessing as tags; the
MLflow run behind it holds the metrics, the config as params, and the model card. The
newly blessed version becomes `champion`, recording the previous champion in a tag, so
`rollback` undoes the last promotion. Neither command touches the serving root.

The tracking URI defaults to a sqlite file under home (PipelineConfig.registry_uri).
"""
import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pipeline import user_cache

CHAMPION = "champion"
CARD_FILE = "model_card.json"
LABELS_FILE = "labels.txt"
SAVED_MODEL_FILE = "saved_model.pb"  # pushed last to object stores: marks a complete version
# Model version tags.
SERVING_VERSION_TAG = "serving_version"
SERVING_PATH_TAG = "serving_path"
PREVIOUS_CHAMPION_TAG = "previous_champion"  # registry version champion before this one
CARD_ARTIFACT_PATH = "serving"  # the run's artifact folder holding the card and labels


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, nothing to roll back to...)."""


@dataclass
class Entry:
    """One version as `list` shows it: registered, pushed, or both."""
    serving_version: Optional[int]
    registry_version: Optional[str]
    aliases: List[str]
    accuracy: Optional[float]
    serving_path: str
    pipeline_run_id: str = ""

    @property
    def registered(self) -> bool:
        return self.registry_version is not None


# -- connecting ----------------------------------------------------------------------------
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

    template = user_cache.cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=template.parent, suffix=".db")
        os.close(fd)
        os.remove(tmp)  # MLflow initialises a database only where none exists
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.execute("DELETE FROM experiments")
        os.replace(tmp, template)  # atomic: concurrent first uses each make their own
    shutil.copyfile(template, path)


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _experiment_id(client: Any, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
        location = "file://" + os.path.join(os.path.dirname(uri[len("sqlite:///"):]),
                                            "artifacts")
    return client.create_experiment(name, artifact_location=location)


# -- registering ---------------------------------------------------------------------------
def _metric_name(name: str) -> str:
    # MLflow allows letters, digits, _ - . / and spaces in metric names.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def card_metrics(card: Dict[str, Any]) -> Dict[str, float]:
    """Candidate, per-class, baseline and difference metrics of a model card, flat."""
    out = {k: float(v) for k, v in card.get("metrics", {}).items()}
    for label, values in card.get("per_class", {}).items():
        out.update({_metric_name(f"{k}/{label}"): float(v) for k, v in values.items()})
    baseline = (card.get("baseline") or {}).get("metrics", {})
    for k, v in baseline.items():
        out[f"baseline_{k}"] = float(v)
        if k in card.get("metrics", {}):
            out[f"{k}_diff"] = float(card["metrics"][k]) - float(v)
    data = {k: float(v) for k, v in card.get("data", {}).items() if isinstance(v, (int, float))}
    out.update({f"data_{k}": v for k, v in data.items()})
    return out


def _version_tags(card: Dict[str, Any]) -> Dict[str, str]:
    lineage = {k: str(v) for k, v in card.get("lineage", {}).items() if v is not None}
    baseline = card.get("baseline") or {}
    return {
        SERVING_VERSION_TAG: str(card["version"]),
        SERVING_PATH_TAG: card["serving_path"],
        "blessed": str(bool(card.get("blessed"))).lower(),
        "thresholds": card.get("thresholds", {}).get("mode", ""),
        "baseline_serving_version": str(baseline.get("serving_version") or ""),
        "config_hash": card.get("config_hash", ""),
        **lineage,
    }


def _log_run(client: Any, uri: str, card: Dict[str, Any]) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    lineage = card.get("lineage", {})
    experiment = _experiment_id(client, uri, lineage.get("pipeline_name") or card["model_name"])
    run = client.create_run(experiment, run_name=f"{card['model_name']}-v{card['version']}")
    run_id = run.info.run_id
    now = get_current_time_millis()
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in card_metrics(card).items()],
        params=[Param(k, str(v)[:500]) for k, v in sorted(card.get("params", {}).items())],
        tags=[RunTag(k, v) for k, v in _version_tags(card).items()])
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, CARD_FILE), "w") as f:
            json.dump(card, f, indent=1)
        with open(os.path.join(tmp, LABELS_FILE), "w") as f:
            f.write("\n".join(card.get("labels", [])) + "\n")
        client.log_artifacts(run_id, tmp, CARD_ARTIFACT_PATH)
    client.set_terminated(run_id)
    return run_id


def _version_source(uri: str, serving_path: str, run_id: str) -> str:
    # A tracking server refuses local paths as sources (its own security check); the run's
    # copy of the card stands in for them there. The serving path is always a tag.
    if _is_local_store(uri) or "://" in serving_path:
        return serving_path
    return f"runs:/{run_id}/{CARD_ARTIFACT_PATH}"


def _ensure_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Image classifier pushed by imgpipe; `champion` is served.")


def register(uri: str, model_name: str, card: Dict[str, Any], make_champion: bool = True) -> str:
    """Registers the pushed version a model card describes; returns MLflow's version."""
    client = connect(uri)
    run_id = _log_run(client, uri, card)
    _ensure_model(client, model_name)
    version = client.create_model_version(
        model_name, source=_version_source(uri, card["serving_path"], run_id), run_id=run_id,
        tags=_version_tags(card),
        description=f"serving version {card['version']} at {card['serving_path']}")
    if make_champion:
        set_champion(client, model_name, version.version)
    return str(version.version)


# -- champion ------------------------------------------------------------------------------
def champion(client: Any, model_name: str) -> Optional[Any]:
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


def _versions(client: Any, model_name: str) -> List[Any]:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        return []
    return list(client.search_model_versions(f"name='{model_name}'"))


def _by_serving_version(client: Any, model_name: str, serving_version: int) -> Any:
    for version in _versions(client, model_name):
        if version.tags.get(SERVING_VERSION_TAG) == str(serving_version):
            return version
    raise RegistryError(f"serving version {serving_version} of '{model_name}' is not in the "
                        "registry (see `imgpipe registry list`)")


def promote(client: Any, model_name: str, serving_version: int) -> Any:
    """Makes serving_version the champion; returns its registry version."""
    version = _by_serving_version(client, model_name, serving_version)
    path = version.tags.get(SERVING_PATH_TAG, "")
    if path and "://" not in path and not os.path.isdir(path):
        raise RegistryError(f"serving version {serving_version} is registered but its folder "
                            f"{path} is gone: not promoting a model that cannot be served")
    set_champion(client, model_name, version.version)
    return version


def rollback(client: Any, model_name: str) -> Tuple[Any, Any]:
    """Moves champion back to the version it replaced; returns (from, to) versions."""
    current = champion(client, model_name)
    if current is None:
        raise RegistryError(f"'{model_name}' has no champion to roll back from")
    previous = current.tags.get(PREVIOUS_CHAMPION_TAG, "")
    if not previous:
        raise RegistryError(f"registry version {current.version} (serving version "
                            f"{current.tags.get(SERVING_VERSION_TAG)}) was the first champion: "
                            "nothing to roll back to")
    # Not set_champion: rolling back must not rewrite the history it walks.
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    return current, client.get_model_version(model_name, previous)


# -- the serving root ----------------------------------------------------------------------
def _fs(path: str) -> Any:
    """os for local paths; tf.io.gfile (slow to import) only for buckets and the like."""
    if "://" not in path:
        return None
    import tensorflow as tf

    return tf.io.gfile


def serving_versions(serving_dir: str) -> Iterator[Tuple[int, str]]:
    """(version, path) of each published version folder, newest first."""
    gfile = _fs(serving_dir)
    if not (gfile.isdir(serving_dir) if gfile else os.path.isdir(serving_dir)):
        return
    names = [n.rstrip("/") for n in (gfile or os).listdir(serving_dir)]
    for version in sorted((int(n) for n in names if n.isdigit()), reverse=True):
        yield version, os.path.join(serving_dir, str(version))


def read_card(version_dir: str) -> Dict[str, Any]:
    path = os.path.join(version_dir, CARD_FILE)
    gfile = _fs(path)
    with (gfile.GFile(path) if gfile else open(path)) as f:
        return json.load(f)


def find_published(serving_dir: str, model_uri: str) -> Optional[Tuple[int, str]]:
    """(version, path) of the version whose model card names model_uri, if any."""
    for version, path in serving_versions(serving_dir):
        card = _card_or_empty(path)  # {}: a version pushed by something else
        if card.get("lineage", {}).get("model_uri") == model_uri:
            return version, path
    return None


def entries(client: Any, model_name: str, serving_dir: str) -> List[Entry]:
    """Registered versions and pushed folders, joined on the serving version, newest first."""
    aliases: Dict[str, List[str]] = {}
    for alias, version in (_registered_aliases(client, model_name) or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows: Dict[Optional[int], Entry] = {}
    for version in _versions(client, model_name):
        serving = version.tags.get(SERVING_VERSION_TAG)
        run = client.get_run(version.run_id) if version.run_id else None
        rows[int(serving) if serving else None] = Entry(
            serving_version=int(serving) if serving else None,
            registry_version=str(version.version),
            aliases=sorted(aliases.get(str(version.version), [])),
            accuracy=run.data.metrics.get("accuracy") if run else None,
            serving_path=version.tags.get(SERVING_PATH_TAG, version.source),
            pipeline_run_id=version.tags.get("pipeline_run_id", ""))
    for serving, path in serving_versions(serving_dir):
        if serving not in rows:
            card = _card_or_empty(path)
            rows[serving] = Entry(serving, None, [], card.get("metrics", {}).get("accuracy"),
                                  path, card.get("lineage", {}).get("pipeline_run_id", ""))
    return sorted(rows.values(), key=lambda e: -(e.serving_version or 0))


def _registered_aliases(client: Any, model_name: str) -> Dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(model_name).aliases)
    except MlflowException:
        return {}


def _card_or_empty(version_dir: str) -> Dict[str, Any]:
    path = os.path.join(version_dir, CARD_FILE)
    gfile = _fs(path)
    if not (gfile.exists(path) if gfile else os.path.isfile(path)):
        return {}
    try:
        return read_card(version_dir)
    except ValueError:  # not JSON: not a card this project wrote
        return {}


def sync(client: Any, uri: str, model_name: str, serving_dir: str) -> List[int]:
    """Registers pushed versions the registry lacks (e.g. it was down during the push)."""
    registered = {e.serving_version for e in entries(client, model_name, serving_dir)
                  if e.registered}
    added = []
    for serving, path in sorted(serving_versions(serving_dir)):
        if serving not in registered:
            register(uri, model_name, read_card(path), make_champion=False)
            added.append(serving)
    return added


# -- commands ------------------------------------------------------------------------------
def _context(args: argparse.Namespace) -> Tuple[Any, Any]:
    from pipeline.cli import _load

    config = _load(args)
    return config, connect(config.registry_uri)


def _print_entries(rows: List[Entry]) -> None:
    print(f"{'serving':>7}  {'registry':>8}  {'aliases':10}  {'accuracy':>8}  "
          f"{'pipeline run':26}  path")
    for e in rows:
        acc = "" if e.accuracy is None else f"{e.accuracy:.4f}"
        registry = e.registry_version or "-"
        aliases = ",".join(e.aliases) if e.registered else "NOT REGISTERED"
        print(f"{e.serving_version or '-':>7}  {registry:>8}  {aliases:10}  {acc:>8}  "
              f"{e.pipeline_run_id:26}  {e.serving_path}")
    if any(not e.registered for e in rows):
        print("\nversions marked NOT REGISTERED were pushed while the registry failed; "
              "`imgpipe registry sync` registers them")


def cmd_list(args: argparse.Namespace) -> int:
    config, client = _context(args)
    rows = entries(client, config.registry_model_name, config.serving_dir)
    print(f"model '{config.registry_model_name}' in {config.registry_uri}; "
          f"serving root {config.serving_dir}")
    if not rows:
        print("no versions yet: run `imgpipe run` to train, evaluate and push one")
        return 0
    _print_entries(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    config, client = _context(args)
    name = config.registry_model_name
    if args.version == CHAMPION:
        version = champion(client, name)
        if version is None:
            raise RegistryError(f"'{name}' has no champion yet")
    else:
        version = _by_serving_version(client, name, _serving_number(args.version))
    run = client.get_run(version.run_id) if version.run_id else None
    aliases = [a for a, v in _registered_aliases(client, name).items()
               if str(v) == str(version.version)]
    print(f"{name}: registry version {version.version}, serving version "
          f"{version.tags.get(SERVING_VERSION_TAG)}"
          f"{' (' + ', '.join(sorted(aliases)) + ')' if aliases else ''}")
    print(f"  source: {version.source}")
    for key, value in sorted(version.tags.items()):
        print(f"  {key}: {value}")
    if run is not None:
        print("  metrics:")
        for key, value in sorted(run.data.metrics.items()):
            print(f"    {key}: {value:.4f}")
    return 0


def _serving_number(raw: str) -> int:
    if not str(raw).isdigit():
        raise RegistryError(f"expected a serving version number or '{CHAMPION}', got {raw!r}")
    return int(raw)


def cmd_promote(args: argparse.Namespace) -> int:
    config, client = _context(args)
    version = promote(client, config.registry_model_name, args.version)
    print(f"champion -> serving version {args.version} (registry version {version.version}); "
          "the serving root is unchanged")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    config, client = _context(args)
    old, new = rollback(client, config.registry_model_name)
    print(f"champion: serving version {old.tags.get(SERVING_VERSION_TAG)} -> "
          f"{new.tags.get(SERVING_VERSION_TAG)} (registry {old.version} -> {new.version}); "
          "the serving root is unchanged")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    config, client = _context(args)
    added = sync(client, config.registry_uri, config.registry_model_name, config.serving_dir)
    if not added:
        print("every pushed version is registered")
    else:
        print(f"registered serving versions {', '.join(map(str, added))}; champion unchanged "
              "(`imgpipe registry promote VERSION` to change it)")
    return 0


def _guarded(func):
    """Registry errors end the command with a message, not a traceback."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except RegistryError as e:
            print(f"imgpipe registry: {e}")
            return 1
        except Exception as e:  # unreachable server, unusable database file...
            if isinstance(e, OSError) or type(e).__module__.startswith("mlflow"):
                print(f"imgpipe registry: the MLflow registry failed: {type(e).__name__}: {e}")
                return 1
            raise
    return run


def add_commands(subparsers: Any) -> None:
    from pipeline.cli import _config_args

    parser = subparsers.add_parser(
        "registry", help="the MLflow model registry: list, show, promote, rollback, sync")
    sub = parser.add_subparsers(dest="registry_command", required=True)
    commands = {
        "list": (cmd_list, "registered and pushed versions, with the champion"),
        "show": (cmd_show, "one version's tags and metrics (default: the champion)"),
        "promote": (cmd_promote, "make serving version VERSION the champion"),
        "rollback": (cmd_rollback, "move champion back to the version it replaced"),
        "sync": (cmd_sync, "register pushed versions the registry is missing"),
    }
    for name, (func, help_text) in commands.items():
        command = sub.add_parser(name, help=help_text)
        _config_args(command)
        command.set_defaults(func=_guarded(func))
        if name == "promote":
            command.add_argument("version", type=int, help="serving version number")
        elif name == "show":
            command.add_argument("version", nargs="?", default=CHAMPION,
                                 help=f"serving version number or '{CHAMPION}'")
