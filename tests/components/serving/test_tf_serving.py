"""A push, promote and rollback against a running TF Serving that polls models.config
(tf_serving_standin.py: TF Serving's documented reload rules, on loopback)."""
import hashlib
import time

import pytest
from tf_serving_standin import TFServingStandin

from components.serving import mlflow_registry, serving_config, tf_serving
from components.serving import versions as registry
from pusher_helpers import blessing, push, version_names


def _served(server: TFServingStandin, model: str, label: str = "stable"):
    """(version, state) the server serves under `label`."""
    found = tf_serving.status(server.url, model, label=label)
    return found[:2] if found else None


def _eventually(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.05)


@pytest.fixture()
def first_push(tmp_path, models, registry_uri, request):
    """Version 1 pushed, champion and stable, loaded by a running server."""
    name = "m" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]  # one per test
    serving = tmp_path / "serving" / name
    push(tmp_path, models[0], blessing(tmp_path, True), serving, registry_uri, model_name=name)
    config_file = str(tmp_path / "serving" / serving_config.CONFIG_FILE)
    return name, serving, config_file


def test_a_running_server_rejects_a_label_moved_onto_a_version_it_has_not_loaded(first_push):
    """The reason for two steps: one write that loads 2 and labels it never serves 2."""
    name, serving, config_file = first_push
    (serving / "2").mkdir()
    (serving / "2" / "saved_model.pb").write_bytes((serving / "1" / "saved_model.pb").read_bytes())
    with TFServingStandin(config_file) as server:
        _eventually(lambda: _served(server, name) == (1, "AVAILABLE"))
        serving_config.write(str(serving), [1], 2)  # one step
        _eventually(lambda: server.rejected)
        time.sleep(server.load_s * 3)
        assert tf_serving.status(server.url, name, version=2) is None  # never even loaded
        assert _served(server, name) == (1, "AVAILABLE")
        assert "not currently available" in server.rejected[-1]


def test_a_push_loads_the_version_then_moves_stable(first_push, tmp_path, models, registry_uri):
    name, serving, config_file = first_push
    with TFServingStandin(config_file) as server:
        _eventually(lambda: _served(server, name) == (1, "AVAILABLE"))
        push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
             registry_uri, model_name=name, tf_serving_url=server.url)
        assert _served(server, name) == (2, "AVAILABLE")  # when the push returns
        assert _served(server, name, "canary") == (2, "AVAILABLE")
        assert tf_serving.status(server.url, name, version=1)[1] == "AVAILABLE"  # rollback target
        assert not server.rejected
    client = mlflow_registry.connect(registry_uri)
    assert mlflow_registry.champion(client, name).tags[mlflow_registry.SERVING_VERSION_TAG] == "2"
    assert serving_config.stable_version(str(serving)) == 2


@pytest.mark.parametrize("failure", ["load_error", "timeout"])
def test_a_version_the_server_does_not_serve_is_withdrawn_and_nothing_moves(
        first_push, tmp_path, models, registry_uri, failure):
    name, serving, config_file = first_push
    before = open(config_file).read()
    slow = failure == "timeout"
    with TFServingStandin(config_file, stuck_versions={2} if slow else set(),
                          fail_versions=set() if slow else {2}) as server:
        _eventually(lambda: _served(server, name) == (1, "AVAILABLE"))
        with pytest.raises(tf_serving.ServingError) as raised:
            push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
                 registry_uri, model_name=name, tf_serving_url=server.url,
                 tf_serving_timeout_s=1)
        message = str(raised.value)
        assert server.url in message and "version 2" in message and "withdrawn" in message
        assert ("within 1 s" if slow else "failed to load") in message
        assert open(config_file).read() == before  # restored as it was
        _eventually(lambda: tf_serving.status(server.url, name, version=2) is None)  # unloaded
        assert _served(server, name) == (1, "AVAILABLE")
    assert version_names(serving) == ["1"]
    client = mlflow_registry.connect(registry_uri)
    assert mlflow_registry.champion(client, name).tags[mlflow_registry.SERVING_VERSION_TAG] == "1"
    assert [v.tags[mlflow_registry.SERVING_VERSION_TAG]
            for v in client.search_model_versions(f"name='{name}'")] == ["1"]


def test_rollback_and_promote_move_what_the_server_serves(first_push, tmp_path, models,
                                                         registry_uri):
    name, serving, config_file = first_push
    client = mlflow_registry.connect(registry_uri)
    with TFServingStandin(config_file) as server:
        # A server still loading the stable version refuses any file that labels it.
        _eventually(lambda: _served(server, name) == (1, "AVAILABLE"))
        push(tmp_path, models[1], blessing(tmp_path, True, baseline=models[0]), serving,
             registry_uri, model_name=name, tf_serving_url=server.url)
        registry.rollback(client, name, str(serving), server.url, 10)
        assert _served(server, name) == (1, "AVAILABLE")
        registry.promote(client, name, 2, str(serving), server.url, 10)
        assert _served(server, name) == (2, "AVAILABLE")
        assert not server.rejected


def test_a_server_started_on_the_file_serves_the_labels_at_once(first_push):
    """No server to wait for: one write; a server (re)started on it applies the labels
    with --allow_version_labels_for_unavailable_models."""
    name, _, config_file = first_push
    with TFServingStandin(config_file) as server:
        _eventually(lambda: _served(server, name) == (1, "AVAILABLE"))
        assert not server.rejected
    with TFServingStandin(config_file, allow_labels_for_unavailable=False) as server:
        _eventually(lambda: server.rejected)
