"""Class names and class sizes that would go wrong after ingestion stop it, naming the
class: names tf.Transform or MLflow would mangle, and classes missing from a split."""
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from tfx.types import standard_artifacts

from components.image_example_gen import component, executor, labels

from test_image_example_gen import _exec_properties  # noqa: E402


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(buf, "PNG")
    return buf.getvalue()


def _ingest(root: Path, out: Path, manifest=None, **data_fields):
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    gen = component.ImageExampleGen(str(root), data_fields, manifest=manifest)
    executor.Executor().Do({}, {"examples": [examples]}, _exec_properties(gen))
    return examples


def _folders(root: Path, sizes: dict) -> None:
    seed = 0
    for label, n in sizes.items():
        (root / label).mkdir(parents=True)
        for _ in range(n):
            seed += 1
            (root / label / f"{seed}.png").write_bytes(_png(seed))


@pytest.mark.parametrize("label, why", [
    ("", "empty"), ("   ", "empty or only spaces"), ("cat ", "starts or ends with a space"),
    (" cat", "starts or ends with a space"), (".", "not names"), ("..", "not names"),
    ("a/b", "'/'"), ("x" * 101, "longer than 100"), ("tab\there", "'\\t'"),
])
def test_label_rule_names_what_is_wrong(label, why):
    assert why in labels.label_problem(label)


@pytest.mark.parametrize("label", ["cat", "Golden Retriever", "n02085620-Chihuahua", "v1.2_x",
                                   "café", "9"])
def test_ordinary_labels_pass(label):
    assert labels.label_problem(label) == ""


def test_folders_named_with_spaces_stop_ingestion_naming_them(tmp_path):
    _folders(tmp_path / "data", {"cat": 20, "cat ": 20, "   ": 20})
    with pytest.raises(labels.LabelError) as raised:
        _ingest(tmp_path / "data", tmp_path / "out")
    message = str(raised.value)
    assert "class 'cat ': it starts or ends with a space" in message
    assert "class '   ': it is empty or only spaces" in message
    assert "class 'cat':" not in message


def test_manifest_labels_a_registry_cannot_take_stop_ingestion(tmp_path):
    root = tmp_path / "data"
    _folders(root, {"imgs": 30})
    rows = ["path,label"] + [f"imgs/{p.name},{('..', 'a/b', 'ok')[i % 3]}"
                             for i, p in enumerate(sorted((root / "imgs").iterdir()))]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(labels.LabelError, match=r"class '\.\.': '\.' and '\.\.' are not names; "
                                                r"class 'a/b': it contains '/'"):
        _ingest(root, tmp_path / "out", manifest="manifest.csv")


def test_a_class_missing_from_a_split_stops_ingestion_naming_it(tmp_path):
    _folders(tmp_path / "data", {"a": 30, "b": 30, "solo": 1})
    with pytest.raises(labels.LabelError) as raised:
        _ingest(tmp_path / "data", tmp_path / "out")
    message = str(raised.value)
    assert "class 'solo' has " in message and "0 in " in message
    assert "class 'a'" not in message and "data.min_images_per_split" in message
    report = json.loads((tmp_path / "out" / "ingestion_report.json").read_text())
    assert report["ingested_by_label"]["solo"] == 1  # the report is still written


def test_the_minimum_per_split_is_configurable(tmp_path):
    _folders(tmp_path / "data", {"a": 30, "b": 30})
    _ingest(tmp_path / "data", tmp_path / "ok")
    with pytest.raises(labels.LabelError, match="at least 1000 image"):
        _ingest(tmp_path / "data", tmp_path / "strict", min_images_per_split=1000)


def test_a_file_name_that_is_not_utf8_ends_in_the_report_not_in_a_crash(tmp_path):
    import os

    _folders(tmp_path / "data", {"a": 20, "b": 20})
    (tmp_path / "data" / "a" / "old").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "data" / "a" / "old"), b"caf\xe9.png"),
              "wb") as f:
        f.write(_png(999))
    _ingest(tmp_path / "data", tmp_path / "out")
    report = json.loads((tmp_path / "out" / "ingestion_report.json").read_text())
    assert [(r["file"], r["reason"]) for r in report["rejected"]] == [
        ("a/old/caf\\xe9.png", "bad_file_name")]
    assert report["ingested"] == 40
