"""Fixtures for the Kubeflow tests: the KFP stand-in server and cluster settings."""
import sys
from pathlib import Path

import pytest

# The helpers beside these tests (the stand-in server, the local launcher) are plain
# modules; with --import-mode=importlib their folder is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

from kfp_standin_server import StandInKfp  # noqa: E402

@pytest.fixture
def standin():
    server = StandInKfp().serve()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_ambient_kfp_credentials(monkeypatch, tmp_path):
    """Tests see only the credentials they set, and kfp's context file stays theirs."""
    for name in ("KF_PIPELINES_TOKEN", "KF_PIPELINES_COOKIE", "KF_PIPELINES_ENDPOINT",
                 "KF_PIPELINES_SA_TOKEN_PATH", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-sa-token"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
