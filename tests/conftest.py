"""Shared test set-up: the Keras mode, the shared data location, one pipeline run."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IMGPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: this test needs the shared data set next to the repo "
                    "(../shared/data) or IMGPIPE_SHARED_DATA pointing at it")
    return path


def config_leaves(tree: dict, prefix: str = "") -> dict:
    """A config dict as {"section.field": value} (lists are values)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(config_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture(name="shared")
def _shared() -> object:
    """shared_data, for tests: `shared("images", "hymenoptera")`."""
    return shared_data


# -- one real pipeline run (twice), shared by every end-to-end assertion -------------------
E2E_OVERRIDES = (
    "train.backbone=efficientnet_lite0", "train.weights=imagenet", "train.image_size=48",
    "train.phase1_epochs=8", "train.phase2_epochs=1", "train.augment=false",
    "train.unfreeze_top_layers=10", "eval.min_accuracy=0.6",
)


def _write_e2e_data(root: Path) -> dict:
    """Digits 0-2 as PNG (a tenth re-encoded as JPEG) plus files that must be rejected."""
    import io

    from PIL import Image

    from pipeline.data_source import write_demo_digits

    write_demo_digits(str(root), classes=(0, 1, 2))
    for i, png in enumerate(sorted(root.glob("*/*.png"))):
        if i % 10 == 0:
            buf = io.BytesIO()
            Image.open(png).convert("RGB").resize((32, 32)).save(buf, "JPEG", quality=95)
            png.with_suffix(".JPG").write_bytes(buf.getvalue())
            png.unlink()
    (root / "0" / "empty.png").write_bytes(b"")
    (root / "1" / "notes.txt").write_text("not an image\n")
    (root / "2" / "download.jpg").write_text("<html>You are being redirected</html>\n")
    files = [p for p in root.rglob("*") if p.is_file()]
    return {"files": len(files), "rejected_expected": 3}


@pytest.fixture(scope="session")
def e2e(tmp_path_factory):
    """Runs the local pipeline twice on a small real dataset; yields both summaries."""
    from pipeline.config import load_config
    from pipeline.runners.local import run_local

    home = tmp_path_factory.mktemp("e2e_home")
    data = home / "data"
    facts = _write_e2e_data(data)
    config = load_config(overrides=E2E_OVERRIDES + (f"home={home}", f"data.source={data}"))
    first = run_local(config)
    second = run_local(config)
    return {"config": config, "first": first, "second": second, "data": data, **facts}


# -- after e2e's two runs, in its home: a worse model, a better one, a rollback ------------
# Worse on purpose: a near-zero training budget from a cold start (a warm start from the
# champion would keep the champion's skill). The value floor is lowered to 0 so that only
# the change thresholds (no regression against the blessed baseline) can reject it.
WORSE_OVERRIDES = ("train.phase1_epochs=1", "train.phase2_epochs=0",
                   "train.learning_rate=1e-6", "eval.min_accuracy=0", "train.warm_start=none")
# A retrain with another seed: equal to the first model within these tolerances (the eval
# split has ~40 images per class, so one image is 0.025 of a class's recall).
BETTER_OVERRIDES = ("train.seed=7", "eval.max_accuracy_drop=0.05",
                    "eval.max_class_recall_drop=0.2")


def serving_tree(serving_dir: str) -> dict:
    """Every file under the serving root with its size and mtime: equal means untouched."""
    tree = {}
    for folder, _, files in os.walk(serving_dir):
        for name in files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            tree[os.path.relpath(path, serving_dir)] = (stat.st_size, stat.st_mtime_ns)
    return tree


def registry_state(config) -> dict:
    """Serving versions present / registered, and the champion's serving version."""
    from components.serving import mlflow_registry
    from components.serving import versions as registry

    client = mlflow_registry.connect(config.registry_uri)
    champion = mlflow_registry.champion(client, config.registry_model_name)
    rows = registry.entries(client, config.registry_model_name, config.serving_dir)
    return {"serving_tree": serving_tree(config.serving_dir),
            "versions": sorted(r.serving_version for r in rows),
            "registered": sorted(r.serving_version for r in rows if r.registered),
            "champion": champion.tags[mlflow_registry.SERVING_VERSION_TAG] if champion else None}


@pytest.fixture(scope="session")
def promotion(e2e):
    """Continues in e2e's home: a run made worse on purpose, a better run, then `imgpipe
    registry rollback`. Yields each run's config and summary and the state after each step."""
    from pipeline.cli import main as imgpipe
    from pipeline.config import load_config
    from pipeline.runners.local import run_local

    base = E2E_OVERRIDES + (f"home={e2e['config'].home}", f"data.source={e2e['data']}")
    worse_config = load_config(overrides=base + WORSE_OVERRIDES)
    better_config = load_config(overrides=base + BETTER_OVERRIDES)
    state = {"start": registry_state(e2e["config"])}
    worse = run_local(worse_config)
    state["after_worse"] = registry_state(worse_config)
    better = run_local(better_config)
    state["after_better"] = registry_state(better_config)
    rollback_code = imgpipe(["registry", "rollback", "--home", str(e2e["config"].home)])
    state["after_rollback"] = registry_state(better_config)
    return {"worse": worse, "better": better, "worse_config": worse_config,
            "better_config": better_config, "rollback_code": rollback_code, "state": state}


# -- a tiny SavedModel with the serving contract (trainer/contract.py) ---------------------
CONTRACT_LABELS = ("red", "green", "blue", "grey")


@pytest.fixture(scope="session")
def contract_model(tmp_path_factory) -> Path:
    """A version folder whose serving_default decodes images as training does and scores
    their mean colour with fixed weights: answers differ per image, no training needed."""
    import tensorflow as tf

    from trainer import contract, image_ops

    class ColourModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.labels = tf.constant(CONTRACT_LABELS)
            self.weights = tf.Variable([[8.0, -4.0, -4.0, 0.0], [-4.0, 8.0, -4.0, 0.0],
                                        [-4.0, -4.0, 8.0, 0.0]])

        @tf.function(input_signature=[
            tf.TensorSpec([None], tf.string, name=contract.IMAGE_BYTES_INPUT)])
        def serve(self, image_bytes):
            colour = tf.reduce_mean(image_ops.decode_batch(image_bytes, 32), axis=[1, 2])
            probabilities = tf.nn.softmax(tf.matmul(colour / 255.0, self.weights) + 1.0)
            top = tf.math.top_k(probabilities, k=3)
            return {contract.PROBABILITIES: probabilities,
                    contract.TOP_K_CLASS_IDS: top.indices, contract.TOP_K_SCORES: top.values,
                    contract.TOP_K_CLASS_NAMES: tf.gather(self.labels, top.indices)}

    path = tmp_path_factory.mktemp("contract_model") / "1"
    module = ColourModel()
    tf.saved_model.save(module, str(path), signatures={contract.SERVING_SIGNATURE: module.serve})
    (path / contract.LABELS_FILE).write_text("\n".join(CONTRACT_LABELS) + "\n")
    return path


# -- a webhook receiver on loopback: what notifications POST ------------------------------
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records each POSTed JSON body and answers
    `status` (200 unless a test changes it)."""

    def __init__(self):
        import http.server
        import json
        import threading

        receiver = self
        self.bodies = []
        self.status = 200

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append({"path": self.path,
                                        "content_type": self.headers.get("Content-Type"),
                                        "json": json.loads(self.rfile.read(length))})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        # The path stands for the secret part of a real webhook URL.
        self.token = "T0KEN-not-for-logs"
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{self.token}"

    def events(self):
        return [b["json"]["imgpipe"]["event"] for b in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="webhook")
def _webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(name="module_webhook", scope="module")
def _module_webhook():
    """A receiver shared by a module's tests (e.g. those reading one run's messages)."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
