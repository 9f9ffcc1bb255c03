"""A push killed (SIGKILL) at each step, or stopped by a full disk: the next push finishes
it or removes what it left, and the serving root, models.config and MLflow agree."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import pytest  # noqa: E402

from components.serving import (fault_points, mlflow_registry,  # noqa: E402
                                serving_config)
from components.serving.model_card import ModelCard  # noqa: E402
from pusher_helpers import blessing, prop, push  # noqa: E402

CHILD = Path(__file__).parent / "push_child.py"
# Killed before the version folder is in place: the re-run pushes it afresh.
BEFORE_PUBLISHED = ("journal", "copying")
# The default run kills a copy half-way and a push that told the registry nothing (each
# kill starts a process: seconds); the others are slow tests.
QUICK = ("copying", "serving_config")


def _child(tmp_path: Path, model, serving: Path, registry_uri: str, name: str,
           fault: str) -> subprocess.Popen:
    args = {"tmp": str(tmp_path), "model_uri": model.uri, "model_id": model.id,
            "serving": str(serving), "registry_uri": registry_uri, "model_name": name}
    env = {**os.environ, fault_points.ENV: fault,
           "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(CHILD), json.dumps(args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _assert_converged(serving: Path, registry_uri: str, name: str) -> None:
    # Nothing left over: no staging copy, no pending record, no config temp file.
    assert sorted(os.listdir(serving)) == ["1", "2"]
    assert sorted(os.listdir(serving.parent)) == sorted([serving_config.CONFIG_FILE, name])
    assert serving_config.stable_version(str(serving)) == 2
    client = mlflow_registry.connect(registry_uri)
    champion = mlflow_registry.champion(client, name)
    assert champion.tags[mlflow_registry.SERVING_VERSION_TAG] == "2"
    assert sorted(v.tags[mlflow_registry.SERVING_VERSION_TAG]
                  for v in mlflow_registry.versions(client, name)) == ["1", "2"]
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert not [r.info.run_id for r in client.search_runs(
        experiments, "attributes.status = 'RUNNING'")]


@pytest.mark.parametrize("point", [p if p in QUICK else pytest.param(p, marks=pytest.mark.slow)
                                   for p in fault_points.POINTS])
def test_a_push_killed_at_any_step_is_finished_by_the_next(tmp_path, models, registry_uri,
                                                           point):
    name = f"killed-{point}"
    serving = tmp_path / "serving" / name
    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri, model_name=name)
    child = _child(tmp_path, models[1], serving, registry_uri, name, f"{point}:KILL")
    _, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, err.decode()[-3000:]

    again = push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
                 registry_uri, model_name=name)
    if point in BEFORE_PUBLISHED:
        assert prop(again, "push_status") == "pushed"
        assert prop(again, "registry_status") == "registered"
    else:
        assert prop(again, "push_status") == "already_pushed"
        assert prop(again, "registry_status") == "caught_up"
    assert prop(again, "pushed_version") == "2"
    _assert_converged(serving, registry_uri, name)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_disk_full_after_the_copy_is_finished_by_the_next_push(tmp_path, models,
                                                                  registry_uri, small_disk):
    name = "full-disk"
    serving = small_disk / "serving" / name
    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri, model_name=name)
    child = _child(tmp_path, models[1], serving, registry_uri, name, "published:STOP")
    deadline = time.monotonic() + 300
    while not _stopped(child.pid):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.1)
    filler = _fill(small_disk)  # the disk fills up while the version is in place
    os.kill(child.pid, signal.SIGCONT)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 1 and b"No space left on device" in err
    assert serving_config.stable_version(str(serving)) == 1  # models.config unchanged

    filler.unlink()
    again = push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
                 registry_uri, model_name=name)
    assert prop(again, "registry_status") == "caught_up"
    _assert_converged(serving, registry_uri, name)


def test_a_copy_that_does_not_fit_leaves_nothing_and_the_next_push_succeeds(
        tmp_path, models, registry_uri, small_disk):
    name = "no-room"
    serving = small_disk / "serving" / name
    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri, model_name=name)
    filler = _fill(small_disk)
    with pytest.raises(OSError, match="No space left on device"):
        push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
             registry_uri, model_name=name)
    assert sorted(os.listdir(serving)) == ["1"]  # no staging copy, no pending record
    filler.unlink()
    push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
         registry_uri, model_name=name)
    _assert_converged(serving, registry_uri, name)


def test_a_registration_mlflow_refuses_leaves_no_run_running(tmp_path, models, registry_uri):
    """A metric name MLflow refuses (a class named '..', from before ingestion checked
    names): the registration fails, its run is FAILED rather than RUNNING for good."""
    name = "refused"
    serving = tmp_path / "serving" / name
    push(tmp_path, models[0], blessing(tmp_path, True), serving, "", model_name=name)
    card = ModelCard.from_dict(json.loads((serving / "1" / "model_card.json").read_text()))
    card.per_class = {"..": {"recall": 1.0}}
    with pytest.raises(Exception, match=r"\.\."):
        mlflow_registry.register(registry_uri, name, card)
    client = mlflow_registry.connect(registry_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"attributes.run_name = '{name}-v1'")
    assert runs and all(r.info.status == "FAILED" for r in runs)
