"""The MLflow registry helpers and `imgpipe registry ...` on a real sqlite registry, with
model cards in a serving root as the pusher leaves them (no pipeline run needed)."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.serving import mlflow_registry, serving_config, serving_root
from components.serving.model_card import ModelCard
from pipeline.cli import main as imgpipe
from trainer import contract


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """One home (and one sqlite registry: creating its tables takes seconds) per module;
    each test uses its own model name."""
    return tmp_path_factory.mktemp("registry_home")


def _args(home: Path, model: str) -> list:
    return ["--home", str(home), "--set", f"model_name={model}"]


def _publish(home: Path, model: str, version: int, accuracy: float) -> dict:
    """A version folder with its model card, as RegistryPusher publishes it."""
    path = home / "serving" / model / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    card = {"model_name": model, "version": version, "serving_path": str(path),
            "labels": ["a", "b"], "blessed": True,
            "metrics": {"accuracy": accuracy, "example_count": 10.0},
            "per_class": {"a": {"recall": 1.0}, "b": {"recall": accuracy}},
            "confidence_intervals": {"level": 0.95, "resamples": 2000,
                                     "accuracy": [accuracy - 0.1, accuracy + 0.05],
                                     "recall": {"a": [0.9, 1.0], "b": None}},
            "baseline": {"serving_version": version - 1, "metrics": {"accuracy": 0.5}}
            if version > 1 else None,
            "thresholds": {"mode": "value thresholds only (no baseline yet)"},
            "data": {"files_seen": 12, "ingested": 10, "rejected": 2},
            "config_hash": "abc", "params": {"train.seed": 42},
            "lineage": {"pipeline_name": "imgpipe", "pipeline_run_id": f"run-{version}",
                        "model_id": 100 + version}}
    (path / serving_root.CARD_FILE).write_text(json.dumps(card))
    return ModelCard.from_dict(card)


def _uri(home: Path) -> str:
    return "sqlite:///" + str(home / "mlflow" / "mlflow.db")


def _register(home: Path, model: str, versions: int) -> None:
    for v in range(1, versions + 1):
        mlflow_registry.register(_uri(home), model, _publish(home, model, v, 0.8 + v / 100))


def _champion(home: Path, model: str) -> str:
    version = mlflow_registry.champion(mlflow_registry.connect(_uri(home)), model)
    return version.tags[mlflow_registry.SERVING_VERSION_TAG]


def test_registered_version_carries_metrics_lineage_and_card(home):
    _register(home, "cards", 2)
    client = mlflow_registry.connect(_uri(home))
    version = mlflow_registry.champion(client, "cards")
    assert version.tags[mlflow_registry.SERVING_VERSION_TAG] == "2"
    assert version.tags[mlflow_registry.SERVING_PATH_TAG] == str(home / "serving" / "cards" / "2")
    # An empty saved_model.pb: nothing to log as an MLflow model, the folder is the source.
    assert version.source == version.tags[mlflow_registry.SERVING_PATH_TAG]
    assert version.tags[mlflow_registry.MLFLOW_MODEL_TAG].startswith("not logged")
    assert version.tags["pipeline_run_id"] == "run-2" and version.tags["model_id"] == "102"
    assert version.tags["baseline_serving_version"] == "1" and version.tags["blessed"] == "true"
    metrics = client.get_run(version.run_id).data.metrics
    assert metrics["accuracy"] == pytest.approx(0.82)
    assert metrics["recall/b"] == pytest.approx(0.82)
    assert metrics["accuracy_diff"] == pytest.approx(0.32)
    assert metrics["data_rejected"] == 2
    assert (metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]) == \
        (pytest.approx(0.72), pytest.approx(0.87))
    assert metrics["recall_ci_low/a"] == pytest.approx(0.9) and "recall_ci_low/b" not in metrics
    artifacts = {a.path for a in client.list_artifacts(version.run_id, mlflow_registry.CARD_ARTIFACT_PATH)}
    assert artifacts == {f"{mlflow_registry.CARD_ARTIFACT_PATH}/{serving_root.CARD_FILE}",
                         f"{mlflow_registry.CARD_ARTIFACT_PATH}/{contract.LABELS_FILE}"}


def test_list_shows_versions_aliases_and_unregistered_pushes(home, capsys):
    _register(home, "listing", 2)
    _publish(home, "listing", 3, 0.9)  # pushed while the registry was down
    assert imgpipe(["registry", "list", *_args(home, "listing")]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [line[:3] for line in lines] == [["3", "-", "NOT"], ["2", "2", "champion"],
                                           ["1", "1", "0.8100"]]
    assert "imgpipe registry sync" in out
    assert imgpipe(["registry", "sync", *_args(home, "listing")]) == 0
    out = capsys.readouterr().out
    # No models.config here (a registry filled by hand): the champion is written into it.
    assert "registered serving versions 3" in out
    assert "champion: serving version 2, labelled stable in models.config" in out
    assert _champion(home, "listing") == "2"
    assert _served(home, "listing") == ([2], {"stable": 2, "canary": 2})


def _served(home: Path, model: str) -> tuple:
    """(versions loaded, labels) of the model in <serving_root>/models.config."""
    parsed = serving_config.read(str(home / "serving" / serving_config.CONFIG_FILE))
    (entry,) = [c for c in parsed.model_config_list.config if c.name == model]
    return list(entry.model_version_policy.specific.versions), dict(entry.version_labels)


def test_promote_and_rollback_move_the_alias_and_the_tf_serving_labels(home, capsys):
    _register(home, "moves", 3)
    serving = home / "serving" / "moves"
    before = sorted(str(p.relative_to(serving)) for p in serving.rglob("*"))
    assert imgpipe(["registry", "promote", "1", *_args(home, "moves")]) == 0
    assert _champion(home, "moves") == "1"
    assert _served(home, "moves") == ([1, 3], {"stable": 1, "canary": 1})
    assert imgpipe(["registry", "rollback", *_args(home, "moves")]) == 0  # undo the promote
    assert _champion(home, "moves") == "3"
    assert _served(home, "moves") == ([1, 3], {"stable": 3, "canary": 3})
    assert imgpipe(["registry", "rollback", *_args(home, "moves")]) == 0  # 3 replaced 2
    assert _champion(home, "moves") == "2"
    assert _served(home, "moves") == ([2, 3], {"stable": 2, "canary": 2})
    out = capsys.readouterr().out
    assert "champion: serving version 3 -> 2" in out and "models.config labels it stable" in out
    assert sorted(str(p.relative_to(serving)) for p in serving.rglob("*")) == before


def test_rollback_of_the_first_champion_is_refused_clearly(home, capsys):
    _register(home, "single", 1)
    assert imgpipe(["registry", "rollback", *_args(home, "single")]) == 1
    assert "was the first champion: nothing to roll back to" in capsys.readouterr().err
    assert _champion(home, "single") == "1"


def test_promote_refuses_unknown_or_deleted_versions(home, capsys):
    _register(home, "gone", 2)
    assert imgpipe(["registry", "promote", "9", *_args(home, "gone")]) == 1
    assert "serving version 9 of 'gone' is not in the registry" in capsys.readouterr().err
    for f in (home / "serving" / "gone" / "1").iterdir():
        f.unlink()
    (home / "serving" / "gone" / "1").rmdir()
    assert imgpipe(["registry", "promote", "1", *_args(home, "gone")]) == 1
    assert "is gone: not promoting" in capsys.readouterr().err
    assert _champion(home, "gone") == "2"


def test_show_prints_the_champion_by_default(home, capsys):
    _register(home, "shown", 2)
    assert imgpipe(["registry", "show", *_args(home, "shown")]) == 0
    out = capsys.readouterr().out
    assert "serving version 2 (champion)" in out and "accuracy: 0.8200" in out
    assert imgpipe(["registry", "show", "1", *_args(home, "shown")]) == 0
    assert "registry version 1, serving version 1\n" in capsys.readouterr().out


def test_unreachable_registry_is_reported_not_raised(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = imgpipe(["registry", "list", "--home", str(tmp_path),
                    "--set", f"registry.tracking_uri=sqlite:///{blocker}/mlflow.db"])
    assert code == 1
    assert "imgpipe registry:" in capsys.readouterr().err


def test_the_registry_section_decides_where_commands_look(tmp_path, capsys):
    """Without registry.* the registry is a sqlite file under home and the model is named
    after model_name; registry.model_name renames it. A bad value names its field."""
    from pipeline.config import load_config
    from trainer.config_fields import ConfigError

    config = load_config(overrides=(f"home={tmp_path}",))
    database = tmp_path / "mlflow" / "mlflow.db"
    assert config.registry_uri == f"sqlite:///{database}"
    mlflow_registry.register(config.registry_uri, config.model_name,
                             _publish(tmp_path, config.model_name, 1, 0.9))
    assert database.is_file()
    assert imgpipe(["registry", "list", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"model '{config.model_name}' in sqlite:///{database}" in out and "champion" in out
    assert imgpipe(["registry", "list", "--home", str(tmp_path),
                    "--set", "registry.model_name=flowers"]) == 0
    out = capsys.readouterr().out
    assert "model 'flowers'" in out and "NOT REGISTERED" in out  # pushed as image_classifier
    server = load_config(overrides=("registry.tracking_uri=http://mlflow:5000",))
    assert server.registry_uri == "http://mlflow:5000"
    with pytest.raises(ConfigError, match="'registry.model_name'"):
        load_config(overrides=("registry.model_name=a/b",))
    with pytest.raises(ConfigError, match="'eval.min_class_recall'"):
        load_config(overrides=("eval.min_class_recall=2",))


def test_predict_finds_the_champion_in_models_config_without_mlflow(home, tmp_path):
    """`champion` = the version models.config labels stable, read without importing MLflow
    (seconds of a prediction's start-up); other aliases still ask the registry."""
    _register(home, "lookup", 3)
    serving_config.write(str(home / "serving" / "lookup"), [3], 2)  # e.g. rolled back to 2
    script = (
        "import sys; from pipeline import config; from pipeline.commands import predict; "
        f"c = config.load_config(None, ['home={home}', 'model_name=lookup']); "
        "print(predict.resolve_model(c, sys.argv[1])); print('mlflow' in sys.modules)")
    def resolve(spec: str) -> list:
        done = subprocess.run([sys.executable, "-c", script, spec], capture_output=True,
                              text=True, check=True, cwd=tmp_path)
        return done.stdout.split()

    for label in ("champion", "stable", "canary"):
        assert resolve(label) == [str(home / "serving" / "lookup" / "2"), "False"]
    client = mlflow_registry.connect(_uri(home))
    client.set_registered_model_alias("lookup", "candidate", "3")
    assert resolve("candidate") == [str(home / "serving" / "lookup" / "3"), "True"]


def test_a_move_the_tf_serving_does_not_take_changes_nothing(home, capsys):
    """registry.tf_serving_url names a server that never answers: the command fails with
    why, and the file and the champion stay as they were."""
    _register(home, "unreachable", 2)
    serving = home / "serving" / "unreachable"
    serving_config.write(str(serving), [1], 2)
    config_file = home / "serving" / serving_config.CONFIG_FILE
    before = config_file.read_text()
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert imgpipe(["registry", "promote", "1", *_args(home, "unreachable"),
                    "--set", f"registry.tf_serving_url={url}",
                    "--set", "registry.tf_serving_timeout_s=1"]) == 1
    out = capsys.readouterr().err
    assert f"TF Serving at {url} did not serve version 1 of 'unreachable' within 1 s" in out
    assert "unreachable" in out
    assert config_file.read_text() == before
    assert _champion(home, "unreachable") == "2"
