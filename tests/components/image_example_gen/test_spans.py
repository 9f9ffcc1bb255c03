"""Spans: names, listings, the span store, and ImageExampleGen ingesting each span once."""
import io
import json
import os
from pathlib import Path
from typing import Dict, List

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from PIL import Image  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from components.artifacts import ingestion, spans  # noqa: E402
from components.image_example_gen import component, executor, span_store  # noqa: E402
from components.image_example_gen.config import DataConfig, split_source  # noqa: E402
from components.span_listing.executor import listing  # noqa: E402
from trainer import features  # noqa: E402
from trainer.config_fields import ConfigError  # noqa: E402


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _span(root: Path, name: str, labels=("a", "b"), per_label: int = 6, seed: int = 0) -> Path:
    for i, label in enumerate(labels):
        for j in range(per_label):
            path = root / name / label / f"img{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png(seed * 1000 + i * 100 + j))
    return root / name


# -- names ---------------------------------------------------------------------------------
def test_span_numbers_for_integers_and_dates():
    assert spans.span_number("7", "{SPAN}") == 7
    assert spans.span_number("batch-12", "batch-{SPAN}") == 12
    assert spans.span_number("1970-01-02", "{YYYY}-{MM}-{DD}") == 1
    assert spans.span_number("2024-03-01", "{YYYY}-{MM}-{DD}") > spans.span_number(
        "2024-02-29", "{YYYY}-{MM}-{DD}")


@pytest.mark.parametrize("name,pattern,message", [
    ("12a", "{SPAN}", "span '12a' does not parse"),
    ("2024-13-01", "{YYYY}-{MM}-{DD}", "span '2024-13-01' is not a date"),
    ("1", "{YYYY}-{MM}", "use either {SPAN} or all of"),
    ("1", "{SPAN}-{X}", "unknown placeholder"),
])
def test_bad_span_names_and_patterns_are_named(name, pattern, message):
    with pytest.raises(spans.SpanError, match=message.replace("{", r"\{").replace("}", r"\}")):
        spans.span_number(name, pattern)


def test_the_placeholder_belongs_in_the_last_component():
    assert split_source("/photos/{SPAN}") == ("/photos", None)
    assert spans.split_span_source("/photos/{YYYY}-{MM}-{DD}") == ("/photos", "{YYYY}-{MM}-{DD}")
    assert spans.split_span_source("/photos") == ("/photos", "")
    with pytest.raises(ConfigError, match="data.source"):
        DataConfig(source="/photos/{SPAN}/x").validate()


# -- listings ------------------------------------------------------------------------------
def test_listing_is_the_window_and_changes_exactly_with_its_files(tmp_path):
    for name in ("1", "2", "10"):
        _span(tmp_path, name, per_label=1, seed=int(name))
    (tmp_path / "README.txt").write_text("files beside the spans are ignored")
    everything = spans.from_listing(listing(str(tmp_path), "{SPAN}", 0))
    assert [s.name for s in everything] == ["1", "2", "10"]  # by number, not by name
    window = listing(str(tmp_path), "{SPAN}", 2)
    assert [s.name for s in spans.from_listing(window)] == ["2", "10"]
    _span(tmp_path, "1", per_label=2, seed=9)  # outside the window: same listing
    assert listing(str(tmp_path), "{SPAN}", 2) == window
    (tmp_path / "10" / "a" / "new.png").write_bytes(_png(77))
    changed = spans.from_listing(listing(str(tmp_path), "{SPAN}", 2))
    assert changed[0] == spans.from_listing(window)[0]
    assert changed[1].fingerprint != spans.from_listing(window)[1].fingerprint


def test_bad_span_input_is_an_error_naming_the_span(tmp_path):
    with pytest.raises(spans.SpanError, match=r"matches no folder under"):
        listing(str(tmp_path), "{SPAN}", 0)
    _span(tmp_path, "1")
    (tmp_path / "2").mkdir()
    with pytest.raises(spans.SpanError, match=r"span '2' .* holds no files"):
        listing(str(tmp_path), "{SPAN}", 0)
    (tmp_path / "2").rmdir()
    (tmp_path / "01").mkdir()
    with pytest.raises(spans.SpanError, match=r"spans '01' and '1' .* same span number"):
        listing(str(tmp_path), "{SPAN}", 0)
    (tmp_path / "01").rmdir()
    (tmp_path / "latest").mkdir()
    with pytest.raises(spans.SpanError, match=r"span 'latest' does not parse"):
        listing(str(tmp_path), "{SPAN}", 0)


# -- the store ------------------------------------------------------------------------------
def test_a_failed_ingestion_leaves_nothing_and_the_next_one_repairs(tmp_path):
    span = spans.Span("3", 3, "abc")

    def crash(folder):
        Path(folder, "Split-train").mkdir()
        Path(folder, "Split-train", "part.gz").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        span_store.ingest(str(tmp_path), span, crash)
    assert span_store.stored(str(tmp_path), span) is None
    assert all(n.startswith(".partial-") for n in os.listdir(tmp_path / "3"))
    (tmp_path / "3" / "abc").mkdir()  # renamed, but without its record: not a span
    assert span_store.stored(str(tmp_path), span) is None
    folder = span_store.ingest(str(tmp_path), span, lambda f: {"ingested": 1})
    assert span_store.stored(str(tmp_path), span) == folder
    assert sorted(os.listdir(tmp_path / "3")) == ["abc"]


# -- ImageExampleGen on spans -----------------------------------------------------------------
def _exec_properties(example_gen) -> Dict[str, object]:
    return {k: proto_utils.proto_to_json(v) if isinstance(v, Message) else v
            for k, v in example_gen.exec_properties.items() if v is not None}


def _ingest(root: Path, store: Path, out: Path, window: int = 0):
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    example_gen = component.ImageExampleGen(
        str(root), {"source": f"{root}/{{SPAN}}", "window_spans": window,
                    "min_images_per_split": 0},
        span_listing=listing(str(root), "{SPAN}", window), span_store=str(store))
    executor.Executor().Do({}, {"examples": [examples]}, _exec_properties(example_gen))
    return examples


def _ids_by_split(uri: Path) -> Dict[str, List[str]]:
    splits = {}
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        files = sorted(str(p) for p in (uri / f"Split-{split}").glob("*.gz"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        splits[split] = sorted(
            tf.train.Example.FromString(r.numpy()).features.feature[features.IMAGE_ID_KEY]
            .bytes_list.value[0].decode() for r in records)
    return splits


def test_each_span_is_ingested_once_and_keeps_its_splits(tmp_path):
    root, store = tmp_path / "photos", tmp_path / "store"
    _span(root, "1", seed=1)
    first = _ingest(root, store, tmp_path / "out1")
    assert first.get_int_custom_property(ingestion.NEWLY_INGESTED_COUNT) == 12
    assert first.get_string_custom_property(ingestion.INGESTED_SPANS) == "1"
    assert first.span == 1
    stored = span_store.stored(str(store), spans.from_listing(listing(str(root), "{SPAN}", 0))[0])
    stamp = os.stat(os.path.join(stored, span_store.RECORD_FILE)).st_mtime_ns

    _span(root, "2", labels=("a", "b", "c"), seed=2)  # a new label: accepted
    second = _ingest(root, store, tmp_path / "out2")
    assert second.get_int_custom_property(ingestion.NEWLY_INGESTED_COUNT) == 18
    assert second.get_string_custom_property(ingestion.INGESTED_SPANS) == "2"
    assert second.get_int_custom_property("ingested_count") == 30
    assert os.stat(os.path.join(stored, span_store.RECORD_FILE)).st_mtime_ns == stamp
    ids1, ids2 = _ids_by_split(tmp_path / "out1"), _ids_by_split(tmp_path / "out2")
    for split in ids1:  # span 1's images kept their splits; ids name their span
        assert set(ids1[split]) <= set(ids2[split])
    assert all(i.startswith(("1/", "2/")) for s in ids2.values() for i in s)
    report = json.loads((tmp_path / "out2" / "ingestion_report.json").read_text())
    assert report["ingested_by_label"] == {"a": 12, "b": 12, "c": 6}

    _span(root, "3", seed=3)
    third = _ingest(root, store, tmp_path / "out3", window=2)
    assert third.get_string_custom_property(ingestion.WINDOW_SPANS) == "2,3"
    assert third.get_int_custom_property(ingestion.NEWLY_INGESTED_COUNT) == 12
    assert third.get_int_custom_property("ingested_count") == 30
    ids3 = _ids_by_split(tmp_path / "out3")
    for split in ids3:
        assert {i for i in ids2[split] if i.startswith("2/")} <= set(ids3[split])
        assert not any(i.startswith("1/") for i in ids3[split])


def test_a_span_with_no_usable_image_fails_naming_it_and_stores_nothing(tmp_path):
    root, store = tmp_path / "photos", tmp_path / "store"
    _span(root, "1", seed=1)
    bad = root / "2" / "a"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"")
    (bad / "y.jpg").write_text("<html>")
    with pytest.raises(RuntimeError, match=r"span '2' .* was not ingested: .*ingested no image"):
        _ingest(root, store, tmp_path / "out")
    assert span_store.stored(str(store), spans.from_listing(
        listing(str(root), "{SPAN}", 0))[1]) is None
    assert all(n.startswith(".partial-") for n in os.listdir(store / "2"))
    assert len(os.listdir(store / "1")) == 1  # span 1 went in before span 2 failed


def test_a_plain_folder_is_one_span_ingested_again_when_its_files_change(tmp_path):
    root, store = tmp_path / "flowers", tmp_path / "store"
    _span(tmp_path, "flowers", seed=4)

    def ingest(out):
        examples = standard_artifacts.Examples()
        examples.uri = str(out)
        example_gen = component.ImageExampleGen(
            str(root), {"source": str(root), "min_images_per_split": 0},
            span_listing=listing(str(root), "", 0),
            span_store=str(store))
        executor.Executor().Do({}, {"examples": [examples]}, _exec_properties(example_gen))
        return examples

    first = ingest(tmp_path / "out1")
    assert first.get_string_custom_property(ingestion.WINDOW_SPANS) == spans.PLAIN_SPAN
    ids = _ids_by_split(tmp_path / "out1")
    assert "a/img0.png" in ids[features.TRAIN_SPLIT] + ids[features.EVAL_SPLIT]  # as before
    (root / "b" / "img9.png").write_bytes(_png(999))
    second = ingest(tmp_path / "out2")
    assert second.get_int_custom_property(ingestion.NEWLY_INGESTED_COUNT) == 13
    assert len(os.listdir(store / spans.PLAIN_SPAN)) == 1  # the old fingerprint removed
    later = _ids_by_split(tmp_path / "out2")
    for split in ids:
        assert set(ids[split]) <= set(later[split])
