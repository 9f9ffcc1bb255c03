"""Bringing the serving root and the MLflow registry back in line after a push was cut
short (a killed process, a full disk, a registry that was down).

A push first records itself as pending in <serving_dir>/.push-pending.json (the model
artifact it publishes, the stable version before it) and removes that record only once
the version is published, labelled `stable` in models.config and registered as
`champion`. reconcile(), run at the start of every push and by the registry commands,
finishes what a pending record says was started:

- no version folder holds the model: the copy never completed; nothing to finish;
- the version folder is in place: models.config is made to label it `stable` (rolling
  the push forward: it was blessed), or, if a running TF Serving cannot load it, the
  version is withdrawn;
- then every published version the registry lacks is registered and `champion` moved to
  the `stable` version; MLflow runs a killed registration left RUNNING are marked FAILED.
  If the registry is still unreachable the record stays, to be retried by the next push.

It also removes staging folders (`.staging-<pid>@<host>-*`) whose process is gone, and
temp files of models.config a killed writer left. Local serving roots only for those; the
record works on any file system.
"""
import json
import os
import shutil
import socket
import time
from typing import Any, Dict, List, Optional

from absl import logging

from components.serving import (fault_points, mlflow_registry, publish, serving_config,
                                serving_root, tf_serving)
from trainer.files import remote_fs, replace_text

PENDING_FILE = ".push-pending.json"
# Staging folders of an older layout (no pid in the name) this old are abandoned.
UNOWNED_STAGING_AGE_S = 3600


def pending_path(serving_dir: str) -> str:
    return os.path.join(serving_dir, PENDING_FILE)


def begin(serving_dir: str, model_uri: str, previous: Optional[int]) -> None:
    """Records a push of model_uri as pending (before anything is copied). A record still
    there (the registry was down when reconcile() ran) is remembered as a registry that
    is behind, for finish()."""
    behind = pending(serving_dir) is not None
    gfile = remote_fs(serving_dir)
    if gfile:
        gfile.makedirs(serving_dir)
    else:
        os.makedirs(serving_dir, exist_ok=True)
    try:
        replace_text(pending_path(serving_dir), json.dumps(
            {"model_uri": model_uri, "previous": previous, "registry_behind": behind}))
    except OSError:  # e.g. a full disk: the push stops here, with nothing to finish
        if not behind:
            end(serving_dir)
        raise
    fault_points.reached("journal")


def finish(serving_dir: str, model_name: str, registry_uri: str) -> None:
    """The push's own steps are done: catches the registry up if it was behind before
    it, then removes the record (kept if the registry is still behind)."""
    if registry_uri and (pending(serving_dir) or {}).get("registry_behind"):
        try:
            catch_up_registry(registry_uri, model_name, serving_dir)
        except Exception as e:  # pylint: disable=broad-except
            logging.error("the MLflow registry at %s is still behind the serving root: %s: %s",
                          registry_uri, type(e).__name__, e)
            return
    end(serving_dir)


def pending(serving_dir: str) -> Optional[Dict[str, Any]]:
    """The pending push's record, None when there is none (or it is unreadable)."""
    path = pending_path(serving_dir)
    gfile = remote_fs(path)
    if not (gfile.exists(path) if gfile else os.path.isfile(path)):
        return None
    try:
        with (gfile.GFile(path) if gfile else open(path)) as f:
            return json.load(f)
    except ValueError:  # cut short while written: nothing was copied yet
        return {}


def end(serving_dir: str) -> None:
    """The push is complete (or abandoned with nothing left of it)."""
    path = pending_path(serving_dir)
    gfile = remote_fs(path)
    if gfile:
        if gfile.exists(path):
            gfile.remove(path)
    elif os.path.exists(path):
        os.remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(path: str, name: str, prefix: str) -> bool:
    """A leftover of a process that is gone (on this host), or an old unowned one."""
    owner = name[len(prefix):]
    pid, at, rest = owner.partition("@")
    if at and pid.isdigit():
        host = rest.rsplit("-", 1)[0]
        return host == socket.gethostname() and not _alive(int(pid))
    try:
        return time.time() - os.path.getmtime(path) > UNOWNED_STAGING_AGE_S
    except OSError:
        return False


def remove_leftovers(serving_dir: str) -> List[str]:
    """Removes staging folders and models.config temp files of dead processes."""
    if remote_fs(serving_dir):
        return []
    removed = []
    # written_then_renamed's temporaries of models.config: ".<owner>-<hex>.models.config"
    config_tmp = f".{serving_config.CONFIG_FILE}"
    for folder, prefix, suffix in ((serving_dir, publish.STAGING_PREFIX, ""),
                                   (os.path.dirname(serving_dir.rstrip("/")), ".", config_tmp)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.startswith(prefix) and name.endswith(suffix) and name != config_tmp[1:] \
                    and _abandoned(path, name, prefix):
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
                removed.append(path)
    for path in removed:
        logging.warning("removed %s, left by a push that did not finish", path)
    return removed


def reconcile(serving_dir: str, model_name: str, registry_uri: str, server_url: str = "",
              timeout_s: float = 600) -> Optional[int]:
    """Finishes a pending push (see the module doc); returns the version it completed
    (None: nothing was pending, or its copy never completed or was withdrawn). Raises if
    models.config cannot be written (e.g. the disk is still full)."""
    remove_leftovers(serving_dir)
    record = pending(serving_dir)
    if record is None:
        return None
    published = serving_root.find_published(serving_dir, record.get("model_uri", "")) \
        if record.get("model_uri") else None
    if published is None:
        logging.warning("a push was cut short before its version was in place: nothing to "
                        "finish")
        end(serving_dir)
        return None
    version, path = published
    if serving_config.stable_version(serving_dir) != version:
        logging.warning("finishing the push of version %d that was cut short: labelling it "
                        "stable in models.config", version)
        try:
            tf_serving.move_champion(serving_dir, version, [record.get("previous")],
                                     server_url, timeout_s)
        except tf_serving.ServingError as e:
            publish.withdraw(path)
            end(serving_dir)
            logging.error("version %d, pushed by a run that was cut short, was withdrawn: %s",
                          version, e)
            return None
    if registry_uri:
        try:
            catch_up_registry(registry_uri, model_name, serving_dir)
        except Exception as e:  # pylint: disable=broad-except
            # As in a push: the registry's failure does not undo what serves; retried later.
            logging.error("the MLflow registry at %s is still behind the serving root: %s: %s",
                          registry_uri, type(e).__name__, e)
            return version
    end(serving_dir)
    return version


def _close_stuck_runs(client: Any, model_name: str) -> None:
    """Marks FAILED this model's registration runs a killed push left RUNNING (only
    called with a push pending, by the one process that may push to this serving root)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return
    running = client.search_runs(experiments, "attributes.status = 'RUNNING' and "
                                              f"attributes.run_name LIKE '{model_name}-v%'")
    for run in running:
        if mlflow_registry.SERVING_VERSION_TAG in run.data.tags:
            client.set_terminated(run.info.run_id, "FAILED")


def catch_up_registry(uri: str, model_name: str, serving_dir: str) -> List[int]:
    """Registers every published version the registry lacks and makes the `stable`
    version of models.config the champion; returns the serving versions registered."""
    client = mlflow_registry.connect(uri)
    _close_stuck_runs(client, model_name)
    registered = {}
    for version in mlflow_registry.versions(client, model_name):
        registered.setdefault(version.tags.get(mlflow_registry.SERVING_VERSION_TAG), version)
    added = []
    for serving, path in sorted(serving_root.serving_versions(serving_dir)):
        if str(serving) not in registered:
            number = mlflow_registry.register(uri, model_name, serving_root.read_card(path),
                                              make_champion=False)
            registered[str(serving)] = client.get_model_version(model_name, number)
            added.append(serving)
    stable = serving_config.stable_version(serving_dir)
    if stable is not None and str(stable) in registered:
        mlflow_registry.set_champion(client, model_name, registered[str(stable)].version)
    return added
