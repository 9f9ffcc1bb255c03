"""A model's versions, registered and pushed: the MLflow Model Registry (mlflow_registry.py)
joined with the serving root, behind `imgpipe registry list | show [VERSION] | promote
VERSION | rollback | sync`.

VERSION is the serving version: the folder number under <serving_root>/<model_name>/,
the number TF Serving and the model card use. MLflow numbers its versions itself; the
two usually agree, and `list` shows both. `promote` and `rollback` rewrite
<serving_root>/models.config (TF Serving's `stable` label = the new champion, the
champion it replaced kept loaded; with registry.tf_serving_url, once the server has
loaded it), then move the `champion` alias (rollback: back to the version the current
champion replaced); the version folders stay as they are. `sync` registers what a push
could not and makes the champion the `stable` version. The tracking
URI defaults to a sqlite file under home (PipelineConfig.registry_uri).
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from components.artifacts.metric_names import ACCURACY
from components.serving import reconcile, serving_config, serving_root, tf_serving
from components.serving.mlflow_registry import (CHAMPION, PREVIOUS_CHAMPION_TAG, SERVING_PATH_TAG,
                                                SERVING_VERSION_TAG, champion, register,
                                                set_champion)
from trainer.files import is_remote


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


def _versions(client: Any, model_name: str) -> List[Any]:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        return []
    return list(client.search_model_versions(f"name='{model_name}'"))


def by_serving_version(client: Any, model_name: str, serving_version: int) -> Any:
    """The registered model version of serving version `serving_version`."""
    for version in _versions(client, model_name):
        if version.tags.get(SERVING_VERSION_TAG) == str(serving_version):
            return version
    raise RegistryError(f"serving version {serving_version} of '{model_name}' is not in the "
                        "registry (see `imgpipe registry list`)")


def _move_champion(serving_dir: str, new: Any, old: Optional[Any], server_url: str,
                   timeout_s: float) -> None:
    """models.config (and a running TF Serving) after the champion moves from `old` to
    `new` (registry versions). Before the alias moves: if the server does not take it,
    the registry is left as it is."""
    tf_serving.move_champion(serving_dir, int(new.tags[SERVING_VERSION_TAG]),
                             [int(old.tags[SERVING_VERSION_TAG]) if old is not None else None],
                             server_url, timeout_s)


def promote(client: Any, model_name: str, serving_version: int, serving_dir: str,
            server_url: str = "", timeout_s: float = tf_serving.LOAD_TIMEOUT_S) -> Any:
    """Makes serving_version the champion; returns its registry version."""
    reconcile.reconcile(serving_dir, model_name, client.tracking_uri, server_url, timeout_s)
    version = by_serving_version(client, model_name, serving_version)
    path = version.tags.get(SERVING_PATH_TAG, "")
    if path and not is_remote(path) and not os.path.isdir(path):
        raise RegistryError(f"serving version {serving_version} is registered but its folder "
                            f"{path} is gone: not promoting a model that cannot be served")
    before = champion(client, model_name)
    _move_champion(serving_dir, version, before, server_url, timeout_s)
    set_champion(client, model_name, version.version)
    return version


def rollback(client: Any, model_name: str, serving_dir: str, server_url: str = "",
             timeout_s: float = tf_serving.LOAD_TIMEOUT_S) -> Tuple[Any, Any]:
    """Moves champion back to the version it replaced; returns (from, to) versions."""
    reconcile.reconcile(serving_dir, model_name, client.tracking_uri, server_url, timeout_s)
    current = champion(client, model_name)
    if current is None:
        raise RegistryError(f"'{model_name}' has no champion to roll back from")
    previous = current.tags.get(PREVIOUS_CHAMPION_TAG, "")
    if not previous:
        raise RegistryError(f"registry version {current.version} (serving version "
                            f"{current.tags.get(SERVING_VERSION_TAG)}) was the first champion: "
                            "nothing to roll back to")
    new = client.get_model_version(model_name, previous)
    _move_champion(serving_dir, new, current, server_url, timeout_s)
    # Not set_champion: rolling back must not rewrite the history it walks.
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    return current, new


def entries(client: Any, model_name: str, serving_dir: str) -> List[Entry]:
    """Registered versions and pushed folders, joined on the serving version, newest first."""
    aliases: Dict[str, List[str]] = {}
    for alias, version in (registered_aliases(client, model_name) or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows: Dict[Optional[int], Entry] = {}
    for version in _versions(client, model_name):
        serving = version.tags.get(SERVING_VERSION_TAG)
        run = client.get_run(version.run_id) if version.run_id else None
        rows[int(serving) if serving else None] = Entry(
            serving_version=int(serving) if serving else None,
            registry_version=str(version.version),
            aliases=sorted(aliases.get(str(version.version), [])),
            accuracy=run.data.metrics.get(ACCURACY) if run else None,
            serving_path=version.tags.get(SERVING_PATH_TAG, version.source),
            pipeline_run_id=version.tags.get("pipeline_run_id", ""))
    for serving, path in serving_root.serving_versions(serving_dir):
        if serving not in rows:
            card = serving_root.card_or_empty(path)
            rows[serving] = Entry(serving, None, [], card.metrics.get(ACCURACY), path,
                                  card.lineage.pipeline_run_id or "")
    return sorted(rows.values(), key=lambda e: -(e.serving_version or 0))


def registered_aliases(client: Any, model_name: str) -> Dict[str, str]:
    """alias -> registry version of the registered model ({} when it is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(model_name).aliases)
    except MlflowException:
        return {}


def sync(client: Any, uri: str, model_name: str, serving_dir: str, server_url: str = "",
         timeout_s: float = tf_serving.LOAD_TIMEOUT_S) -> Tuple[List[int], Optional[int]]:
    """Registers pushed versions the registry lacks (e.g. it was down during the push),
    then makes the champion and models.config's `stable` one version: the file's, when it
    has one (a push whose registration failed still labelled its version), else the
    champion is written into the file (after finishing a push cut short,
    components/serving/reconcile.py). Returns (versions registered, champion's serving
    version)."""
    # The serving side of a push cut short; the registration below is the registry's part.
    reconcile.reconcile(serving_dir, model_name, "", server_url, timeout_s)
    registered = {e.serving_version for e in entries(client, model_name, serving_dir)
                  if e.registered}
    added = []
    for serving, path in sorted(serving_root.serving_versions(serving_dir)):
        if serving not in registered:
            register(uri, model_name, serving_root.read_card(path), make_champion=False)
            added.append(serving)
    stable = serving_config.stable_version(serving_dir)
    current = champion(client, model_name)
    if stable is not None:
        if current is None or current.tags.get(SERVING_VERSION_TAG) != str(stable):
            set_champion(client, model_name, by_serving_version(client, model_name,
                                                                stable).version)
        return added, stable
    if current is None:
        return added, None
    _move_champion(serving_dir, current, None, server_url, timeout_s)
    return added, int(current.tags[SERVING_VERSION_TAG])
