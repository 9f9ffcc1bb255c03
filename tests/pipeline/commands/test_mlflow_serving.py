"""A registered version as an MLflow model: `models:/<name>@champion` loaded in process
and served by `mlflow models serve` answers as `imgpipe predict` does."""
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.serving import mlflow_model, mlflow_registry
from components.serving.model_card import ModelCard
from pipeline.commands import predict

NAME = "photos"
SERVE_TIMEOUT = 300  # s: start-up on a loaded 2-core machine took over a minute


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    """scikit-image's photos as JPEG files, and one PNG."""
    from PIL import Image
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("photos")
    paths = []
    for name, fmt in (("chelsea", "JPEG"), ("coffee", "JPEG"), ("astronaut", "JPEG"),
                      ("rocket", "JPEG"), ("chelsea", "PNG")):
        path = root / f"{name}.{fmt.lower()}"
        Image.fromarray(getattr(skdata, name)()).save(path, fmt)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory, contract_model, photos) -> str:
    """A sqlite registry where the contract model is the champion of NAME."""
    uri = "sqlite:///" + str(tmp_path_factory.mktemp("mlflow") / "mlflow.db")
    labels = (contract_model / "labels.txt").read_text().split()
    card = {"model_name": NAME, "version": 1, "serving_path": str(contract_model),
            "labels": labels, "blessed": True, "metrics": {"accuracy": 1.0}}
    mlflow_registry.register(uri, NAME, ModelCard.from_dict(card),
                             example_image=photos[0].read_bytes())
    return uri


def expected(model_dir: Path, photos: list) -> list:
    """The predict path's answers: (top-k names, top-k scores) per image."""
    return [([n for n, _ in p.top], [s for _, s in p.top])
            for p in predict.predict(str(model_dir), [str(p) for p in photos])]


def assert_same(answers: list, wanted: list) -> None:
    assert [names for names, _ in answers] == [names for names, _ in wanted]
    for (_, scores), (_, wanted_scores) in zip(answers, wanted):
        assert scores == pytest.approx(wanted_scores, abs=1e-5)


def test_champion_loads_as_a_pyfunc_and_predicts_like_imgpipe_predict(
        registry_uri, contract_model, photos, monkeypatch):
    import mlflow.pyfunc
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_uri)  # models:/ resolves through it
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert model.metadata.get_input_schema().input_names() == ["image_bytes"]
    assert model.metadata.saved_input_example_info is not None
    out = model.predict(pd.DataFrame({"image_bytes": [p.read_bytes() for p in photos]}))
    wanted = expected(contract_model, photos)
    assert len({names[0] for names, _ in wanted}) > 1  # the photos get different answers
    assert out["class_name"].tolist() == [names[0] for names, _ in wanted]
    assert_same(list(zip(out["top_k_class_names"], out["top_k_scores"])), wanted)
    bad = model.predict(pd.DataFrame({"image_bytes": [b"not an image", photos[1].read_bytes()]}))
    assert bad["error"][0] and bad["score"][0] is None
    assert bad["class_name"][1] == wanted[1][0][0] and bad["error"][1] == ""


def test_input_example_is_a_small_png_of_the_given_image(photos):
    from PIL import Image

    png = Image.open(io.BytesIO(mlflow_model.small_png(photos[0].read_bytes())))
    assert png.format == "PNG" and max(png.size) == 128


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(registry_uri, tmp_path):
    """`mlflow models serve` of the champion on 127.0.0.1; (base URL, log path)."""
    port = _free_port()
    bin_dir = os.path.dirname(sys.executable)
    # The CLI execs `uvicorn` by name: the venv's bin must be on PATH.
    env = dict(os.environ, MLFLOW_TRACKING_URI=registry_uri,
               PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m",
             f"models:/{NAME}@champion", "--env-manager", "local", "-h", "127.0.0.1",
             "-p", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        while True:
            assert proc.poll() is None, f"server exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /ping in time: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(base + "/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        yield base, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_imgpipe_predict(server, contract_model, photos):
    base, _ = server
    rows = [[base64.b64encode(p.read_bytes()).decode()] for p in photos]
    body = {"dataframe_split": {"columns": ["image_bytes"], "data": rows}}
    request = urllib.request.Request(base + "/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        predictions = json.loads(r.read())["predictions"]
    wanted = expected(contract_model, photos)
    assert [p["class_name"] for p in predictions] == [names[0] for names, _ in wanted]
    assert_same([(p["top_k_class_names"], p["top_k_scores"]) for p in predictions], wanted)
    assert all(p["error"] == "" for p in predictions)
