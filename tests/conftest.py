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
    from pipeline.local import run_local

    home = tmp_path_factory.mktemp("e2e_home")
    data = home / "data"
    facts = _write_e2e_data(data)
    config = load_config(overrides=E2E_OVERRIDES + (f"home={home}", f"data.source={data}"))
    first = run_local(config)
    second = run_local(config)
    return {"config": config, "first": first, "second": second, "data": data, **facts}
