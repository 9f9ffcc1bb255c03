"""Fixtures of the components' tests; this folder's helper modules on sys.path."""
import sys
from pathlib import Path

import pytest

# With --import-mode=importlib a test's folder is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

from pusher_helpers import model_artifact  # noqa: E402


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory) -> str:
    """One sqlite registry for the module (creating its tables takes seconds)."""
    return "sqlite:///" + str(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


@pytest.fixture()
def models(tmp_path):
    return [model_artifact(tmp_path, f"model_{i}", 10 + i) for i in range(2)]
