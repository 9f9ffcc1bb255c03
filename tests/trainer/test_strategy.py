"""Distribution strategy choice, and a real MultiWorkerMirroredStrategy run."""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer import strategy

REPO = Path(__file__).resolve().parents[2]
CLUSTER = json.dumps({"cluster": {"worker": ["w0:2222", "w1:2222"]},
                      "task": {"type": "worker", "index": 1}})


@pytest.mark.parametrize("kind,tf_config,gpus,expected", [
    ("auto", "", 0, "default"),
    ("auto", "", 1, "default"),
    ("auto", "", 4, "mirrored"),
    ("auto", CLUSTER, 4, "multi_worker"),
    ("auto", json.dumps({"task": {"type": "worker"}}), 0, "default"),  # no cluster
    ("default", CLUSTER, 4, "default"),
    ("mirrored", "", 0, "mirrored"),
])
def test_resolve(kind, tf_config, gpus, expected):
    assert strategy.resolve(kind, tf_config, gpus) == expected


def test_chief():
    assert strategy.is_chief("")
    assert not strategy.is_chief(CLUSTER)
    assert strategy.is_chief(CLUSTER.replace('"index": 1', '"index": 0'))
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["w0:1"]},
                  "task": {"type": "worker", "index": 0}}
    assert not strategy.is_chief(json.dumps(with_chief))
    with_chief["task"] = {"type": "chief", "index": 0}
    assert strategy.is_chief(json.dumps(with_chief))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_phases_under_multi_worker_strategy(records, tmp_path):
    """One-worker TF_CONFIG on localhost: the collective code paths run for real. A fresh
    process, because the strategy must be created before any other TensorFlow work."""
    script = textwrap.dedent(f"""
        import tensorflow as tf
        from trainer.train_config import TrainConfig
        from trainer import model, schedule, strategy
        s = strategy.choose("auto")
        assert isinstance(s, tf.distribute.MultiWorkerMirroredStrategy), s
        cfg = TrainConfig(backbone="efficientnet_lite0", image_size=32, batch_size=12,
                          phase1_epochs=1, phase2_epochs=1, augment=True)
        with s.scope():
            c = model.build_classifier(cfg, 3)
            results = schedule.train_two_phases(c, cfg, 3, {records['train']!r},
                                                {records['eval']!r}, {str(tmp_path)!r})
        print("PHASES", [(r.name, r.cached_train, r.cached_eval) for r in results])
    """)
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{_free_port()}"]},
                 "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_USE_LEGACY_KERAS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "PHASES [('phase1', True, True), ('phase2', False, True)]" in run.stdout
