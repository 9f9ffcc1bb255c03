"""The CLI prints no third-party deprecation noise (google-api-core's Python-version
FutureWarning, reached through TensorFlow's import)."""
import os
import subprocess
import sys

import pytest


def _stderr(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["TF_USE_LEGACY_KERAS"] = "1"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300).stderr


def test_importing_tensorflow_through_the_cli_prints_no_future_warning():
    plain = _stderr("import tensorflow")
    if "FutureWarning" not in plain:
        pytest.skip("TensorFlow's import prints no FutureWarning here: nothing to silence")
    assert "FutureWarning" not in _stderr("import pipeline.cli, tensorflow")
