"""ImageExampleGen: the per-file checker, and the real executor on temporary trees."""
import csv
import io
import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from PIL import Image, features as pil_features  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from components.artifacts import ingestion  # noqa: E402
from components.image_example_gen import component, executor, listing  # noqa: E402
from components.image_example_gen import split_rule  # noqa: E402
from components.image_example_gen import image_checks as checks  # noqa: E402
from components.image_example_gen import reasons  # noqa: E402
from components.image_example_gen.config import DataConfig, ingestion_config  # noqa: E402
from trainer import features  # noqa: E402

ALL_FEATURES = set(features.STRING_FEATURES) | set(features.INT_FEATURES) | \
    set(features.FLOAT_FEATURES)


# -- helpers --------------------------------------------------------------------------------
def _image(seed: int, size: Tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """A noisy image whose content differs for each seed (so no accidental duplicates)."""
    width, height = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


def _encode(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def _jpeg(seed: int, size: Tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    return _encode(_image(seed, size, mode), "JPEG", quality=90)


def _png(seed: int, size: Tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    return _encode(_image(seed, size, mode), "PNG")


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _options(**data_fields) -> DataConfig:
    return ingestion_config(component.ingestion_options(DataConfig(**data_fields)))


def _check(tmp_path: Path, name: str, data: bytes, **data_fields) -> checks.Outcome:
    path = _write(tmp_path / "label" / name, data)
    candidate = checks.Candidate(f"label/{name}", "label", "", str(path))
    return checks.check_candidate(candidate, _options(**data_fields))


def _exec_properties(example_gen) -> Dict[str, object]:
    """The component's parameters as a launcher hands them over: protos as JSON."""
    return {k: proto_utils.proto_to_json(v) if isinstance(v, Message) else v
            for k, v in example_gen.exec_properties.items() if v is not None}


def _proto(json_text: str, proto: Message) -> Message:
    return proto_utils.json_to_proto(json_text, proto)


def _run(input_base: Path, out_dir: Path, manifest: Optional[str] = None,
         **data_fields) -> Tuple[standard_artifacts.Examples, dict]:
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    example_gen = component.ImageExampleGen(str(input_base), data_fields, manifest=manifest)
    executor.Executor().Do({}, {"examples": [examples]}, _exec_properties(example_gen))
    return examples, json.loads((out_dir / ingestion.REPORT_FILE).read_text())


def _read_examples(uri: Path) -> Dict[str, Dict[str, tf.train.Example]]:
    """{split: {image_id: example}} from the gzipped TFRecords."""
    splits = {}
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        files = sorted(str(p) for p in (uri / f"Split-{split}").glob("*.gz"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        parsed = [tf.train.Example.FromString(r.numpy()) for r in records]
        splits[split] = {_str(e, features.IMAGE_ID_KEY): e for e in parsed}
    return splits


def _str(example: tf.train.Example, key: str) -> str:
    return example.features.feature[key].bytes_list.value[0].decode()


def _int(example: tf.train.Example, key: str) -> int:
    return example.features.feature[key].int64_list.value[0]


def _all_examples(uri: Path) -> Dict[str, tf.train.Example]:
    splits = _read_examples(uri)
    return {**splits[features.TRAIN_SPLIT], **splits[features.EVAL_SPLIT]}


def _split_of(uri: Path) -> Dict[str, str]:
    return {image_id: split for split, by_id in _read_examples(uri).items() for image_id in by_id}


def _rejections(report: dict) -> Dict[str, str]:
    return {r["file"]: r["reason"] for r in report["rejected"]}


def _assert_accounted(report: dict, examples: standard_artifacts.Examples) -> None:
    assert report["ingested"] + len(report["rejected"]) == report["files_seen"]
    assert sum(report["counts_by_reason"].values()) == len(report["rejected"])
    assert sum(report["ingested_by_label"].values()) == report["ingested"]
    assert examples.get_int_custom_property("ingested_count") == report["ingested"]
    assert examples.get_int_custom_property("rejected_count") == len(report["rejected"])
    assert examples.get_int_custom_property("files_seen") == report["files_seen"]


# -- the per-file checker -------------------------------------------------------------------
def test_valid_jpeg_and_png_keep_their_original_bytes(tmp_path):
    for name, data, fmt in (("a.jpg", _jpeg(1), "JPEG"), ("b.png", _png(2), "PNG")):
        outcome = _check(tmp_path, name, data)
        assert outcome.accepted, outcome
        image = outcome.image
        assert (image.encoded, image.format, image.width, image.height, image.channels) == \
            (data, fmt, 40, 30, 3)
        assert image.size_bucket == "small" and not image.normalised


@pytest.mark.parametrize("name, data, reason", [
    ("empty.jpg", b"", reasons.REASON_ZERO_BYTES),
    ("page.jpg", b"<html><body>You are being redirected</body></html>",
     reasons.REASON_NOT_AN_IMAGE),
    ("half.jpg", _jpeg(3, (200, 150))[:2500], reasons.REASON_TRUNCATED),
    ("notes.txt", _jpeg(4), reasons.REASON_UNSUPPORTED_EXTENSION),
    (".DS_Store", b"\0\0\0\1Bud1", reasons.REASON_UNSUPPORTED_EXTENSION),
    ("anim.gif", _encode(_image(5), "GIF"), reasons.REASON_UNSUPPORTED_FORMAT),
    ("tiny.png", _png(6, (4, 40)), reasons.REASON_TOO_SMALL),
    ("strip.png", _png(7, (2000, 10)), reasons.REASON_EXTREME_ASPECT_RATIO),
])
def test_rejection_reasons(tmp_path, name, data, reason):
    outcome = _check(tmp_path, name, data)
    assert (outcome.accepted, outcome.reason) == (False, reason), outcome.detail
    assert outcome.detail


def test_corrupt_data_is_undecodable(tmp_path):
    # Random bytes mid-scan, including invalid markers. (Some corruptions both decoders
    # accept with a warning: those decode identically everywhere, so they are kept.)
    data = bytearray(_jpeg(8, (200, 150)))
    middle = len(data) // 2
    data[middle:middle + 600] = np.random.default_rng(0).integers(0, 256, 600, np.uint8).tobytes()
    outcome = _check(tmp_path, "corrupt.jpg", bytes(data))
    assert outcome.reason == reasons.REASON_UNDECODABLE, outcome


def test_webp_is_unsupported_format(tmp_path):
    if not pil_features.check("webp"):
        pytest.skip("this Pillow cannot write WebP")
    outcome = _check(tmp_path, "photo.jpg", _encode(_image(9), "WEBP"))
    assert outcome.reason == reasons.REASON_UNSUPPORTED_FORMAT and "WEBP" in outcome.detail


def test_too_large_is_decided_from_the_header_alone(tmp_path):
    # A 30000x30000 frame header on a tiny JPEG: Pillow would refuse it as a decompression
    # bomb on open and the data could not fill it; the header check rejects it first.
    data = bytearray(_jpeg(10))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (30000).to_bytes(2, "big") * 2
    outcome = _check(tmp_path, "huge.jpg", bytes(data))
    assert outcome.reason == reasons.REASON_TOO_LARGE
    assert "900000000 pixels" in outcome.detail and "max_pixels=32000000" in outcome.detail
    assert _check(tmp_path, "b.png", _png(11, (64, 64)), max_pixels=4095).reason == \
        reasons.REASON_TOO_LARGE


@pytest.mark.parametrize("mode, fmt, channels", [("L", "JPEG", 1), ("RGBA", "PNG", 4)])
def test_grayscale_and_alpha_are_kept_as_is(tmp_path, mode, fmt, channels):
    data = _encode(_image(12, mode=mode), fmt)
    outcome = _check(tmp_path, f"img.{fmt.lower()}", data)
    assert outcome.accepted, outcome
    assert (outcome.image.encoded, outcome.image.channels) == (data, channels)


def test_extension_is_case_insensitive_and_format_comes_from_content(tmp_path):
    upper = _check(tmp_path, "PHOTO.JPG", _jpeg(13))
    assert upper.accepted and upper.image.format == "JPEG"
    png_named_jpg = _check(tmp_path, "really_png.jpg", _png(14))
    assert png_named_jpg.accepted and png_named_jpg.image.format == "PNG"


def test_exif_rotation_is_applied_and_stored_as_png(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    outcome = _check(tmp_path, "rotated.jpg", _encode(_image(15, (40, 30)), "JPEG", exif=exif))
    assert outcome.accepted, outcome
    image = outcome.image
    assert (image.format, image.width, image.height) == ("PNG", 30, 40)
    assert "Orientation=6" in image.normalised
    assert Image.open(io.BytesIO(image.encoded)).size == (30, 40)


def test_unexpected_errors_become_rejections(tmp_path):
    candidate = checks.Candidate("label/gone.jpg", "label", "", str(tmp_path / "gone.jpg"))
    outcome = checks.check_candidate(candidate, _options())
    assert outcome.reason == reasons.REASON_UNDECODABLE and "FileNotFoundError" in outcome.detail


# -- the component ------------------------------------------------------------------------
def test_component_configuration():
    example_gen = component.ImageExampleGen("/data", {"train_buckets": 3, "eval_buckets": 1})
    props = _exec_properties(example_gen)
    assert _proto(props["input_config"], example_gen_pb2.Input()).splits[0].pattern == "*/*"
    split_config = _proto(props["output_config"], example_gen_pb2.Output()).split_config
    assert [(s.name, s.hash_buckets) for s in split_config.splits] == \
        [(features.TRAIN_SPLIT, 3), (features.EVAL_SPLIT, 1)]
    assert not split_config.partition_feature_name  # the split rule places images
    custom = executor.parse_custom_config(props)
    assert ingestion_config(custom) == _options()
    assert custom[split_rule.PRIOR_INDEXES_KEY] == []
    assert custom[listing.LAYOUT_KEY] == listing.LAYOUT_FOLDER
    with_manifest = component.ImageExampleGen("/data", DataConfig(), manifest="labels.csv")
    manifest_input = _proto(with_manifest.exec_properties["input_config"], example_gen_pb2.Input())
    assert manifest_input.splits[0].pattern == "labels.csv"
    assert executor.parse_custom_config(_exec_properties(with_manifest))[
        listing.LAYOUT_KEY] == listing.LAYOUT_MANIFEST
    with pytest.raises(ValueError, match="manifest"):
        component.ImageExampleGen("/data", DataConfig(), manifest="sub/*.csv")


# -- the executor on a class-per-folder tree -------------------------------------------------
def _folder_tree(root: Path, extra_images: int = 16) -> Dict[str, bytes]:
    """Writes the tree; returns {image_id: bytes} of the images expected to be ingested."""
    kept = {
        "cats/a.jpg": _jpeg(100),
        "cats/b.png": _png(101, (600, 200)),
        "cats/sub/c.jpg": _jpeg(102, (200, 100)),
        "dogs/d.jpg": _jpeg(103),
    }
    kept.update({f"dogs/extra_{i:02d}.png": _png(200 + i, (16, 16)) for i in range(extra_images)})
    for image_id, data in kept.items():
        _write(root / image_id, data)
    _write(root / "cats/x.jpg", _jpeg(104))  # same content under two labels
    _write(root / "dogs/x_copy.jpg", _jpeg(104))
    _write(root / "dogs/d_copy.jpg", _jpeg(103))  # same label: dogs/d.jpg is kept
    _write(root / "dogs/README.txt", b"not an image")
    _write(root / "LICENSE", b"not in a class folder")
    outside = _write(root.parent / "outside.jpg", _jpeg(105))
    (root / "cats/link.jpg").symlink_to(outside)
    (root / "cats/z_alias.jpg").symlink_to(root / "cats/sub/c.jpg")  # inside: followed
    (root / "cats/loop").symlink_to(root / "cats")
    os.mkfifo(root / "dogs/pipe.jpg")  # must not be read: it would block
    return kept


FOLDER_REJECTIONS = {
    "cats/x.jpg": reasons.REASON_CONFLICTING_DUPLICATE,
    "dogs/x_copy.jpg": reasons.REASON_CONFLICTING_DUPLICATE,
    "dogs/d_copy.jpg": reasons.REASON_DUPLICATE,
    "dogs/README.txt": reasons.REASON_UNSUPPORTED_EXTENSION,
    "LICENSE": reasons.REASON_NO_LABEL,
    "cats/link.jpg": reasons.REASON_PATH_ESCAPES_ROOT,
    "cats/z_alias.jpg": reasons.REASON_DUPLICATE,
    "cats/loop": reasons.REASON_SYMLINK_LOOP,
    "dogs/pipe.jpg": reasons.REASON_NOT_AN_IMAGE,
}


def test_executor_on_folder_tree(tmp_path):
    root = tmp_path / "data"
    kept = _folder_tree(root)
    out = tmp_path / "out"
    examples, report = _run(root, out, max_rejected_fraction=0.5, min_images_per_split=0)

    by_id = _all_examples(out)
    assert set(by_id) == set(kept)
    for image_id, example in by_id.items():
        feature = example.features.feature
        assert set(feature) == ALL_FEATURES
        assert feature[features.IMAGE_KEY].bytes_list.value == [kept[image_id]]
        assert _str(example, features.LABEL_KEY) == image_id.split("/")[0]
        image = Image.open(io.BytesIO(kept[image_id]))
        assert (_int(example, features.WIDTH_KEY), _int(example, features.HEIGHT_KEY),
                _int(example, features.CHANNELS_KEY), _str(example, features.FORMAT_KEY)) == \
            (image.width, image.height, 3, image.format)
        assert _int(example, features.FILE_SIZE_KEY) == len(kept[image_id])
        brightness, sharpness = checks.image_properties(image)
        assert feature[features.BRIGHTNESS_KEY].float_list.value == \
            pytest.approx([brightness])
        assert feature[features.SHARPNESS_KEY].float_list.value == \
            pytest.approx([sharpness], rel=1e-6)
    assert _str(by_id["cats/sub/c.jpg"], features.SOURCE_DIR_KEY) == "sub"
    assert _str(by_id["cats/a.jpg"], features.SOURCE_DIR_KEY) == ""
    assert _str(by_id["cats/a.jpg"], features.SIZE_BUCKET_KEY) == "small"
    assert _str(by_id["cats/b.png"], features.SIZE_BUCKET_KEY) == "large"
    assert _str(by_id["cats/sub/c.jpg"], features.SIZE_BUCKET_KEY) == "medium"

    assert report["files_seen"] == len(kept) + len(FOLDER_REJECTIONS)
    assert report["ingested"] == len(kept)
    assert _rejections(report) == FOLDER_REJECTIONS
    assert report["ingested_by_label"] == {"cats": 3, "dogs": 1 + 16}
    assert report["counts_by_reason"][reasons.REASON_CONFLICTING_DUPLICATE] == 2
    details = {r["file"]: r["detail"] for r in report["rejected"]}
    assert "dogs/d.jpg" in details["dogs/d_copy.jpg"]
    assert "dogs/x_copy.jpg" in details["cats/x.jpg"]
    _assert_accounted(report, examples)
    with open(out / ingestion.REJECTED_CSV, newline="") as f:
        assert list(csv.DictReader(f)) == report["rejected"]
    assert not list(out.glob("*.tmp"))

    # Split assignment depends on the id only: adding an image moves no existing one.
    splits = _split_of(out)
    assert set(splits.values()) == {features.TRAIN_SPLIT, features.EVAL_SPLIT}
    _write(root / "cats/new.jpg", _jpeg(106))
    _run(root, tmp_path / "out2", max_rejected_fraction=0.5)
    splits_after = _split_of(tmp_path / "out2")
    assert set(splits_after) == set(splits) | {"cats/new.jpg"}
    assert {k: splits_after[k] for k in splits} == splits


def test_executor_on_manifest(tmp_path):
    root = tmp_path / "data"
    kept = {"images/a.jpg": _jpeg(300), "images/sub/c.png": _png(301), "b.jpg": _jpeg(302)}
    for image_id, data in kept.items():
        _write(root / image_id, data)
    outside = _write(tmp_path / "escape.jpg", _jpeg(303))  # exists, but outside the root
    (root / "images/link.jpg").symlink_to(outside)
    _write(root / "images/no_label.jpg", _jpeg(304))
    rows = [("images/a.jpg", "cat"), ("./images/sub/../sub/c.png", "dog"), ("b.jpg", "dog"),
            ("../escape.jpg", "cat"), (str(outside), "cat"), ("images/link.jpg", "cat"),
            ("images/missing.jpg", "dog"), ("images/no_label.jpg", ""),
            ("b.jpg", "dog")]
    manifest_lines = ["path,label"] + [f"{p},{label}" for p, label in rows] + ["too,many,cells"]
    (root / "labels.csv").write_text("\n".join(manifest_lines) + "\n")

    examples, report = _run(root, tmp_path / "out", manifest="labels.csv",
                            max_rejected_fraction=0.8, min_images_per_split=0)

    by_id = _all_examples(tmp_path / "out")
    assert set(by_id) == set(kept)
    for image_id, example in by_id.items():
        assert example.features.feature[features.IMAGE_KEY].bytes_list.value == [kept[image_id]]
    assert {k: _str(e, features.LABEL_KEY) for k, e in by_id.items()} == \
        {"images/a.jpg": "cat", "images/sub/c.png": "dog", "b.jpg": "dog"}
    assert _str(by_id["images/sub/c.png"], features.SOURCE_DIR_KEY) == "images"
    assert _str(by_id["b.jpg"], features.SOURCE_DIR_KEY) == ""
    assert _rejections(report) == {
        "../escape.jpg": reasons.REASON_PATH_ESCAPES_ROOT,
        str(outside): reasons.REASON_PATH_ESCAPES_ROOT,
        "images/link.jpg": reasons.REASON_PATH_ESCAPES_ROOT,
        "images/missing.jpg": reasons.REASON_MISSING_FILE,
        "images/no_label.jpg": reasons.REASON_BAD_MANIFEST_ROW,
        "b.jpg": reasons.REASON_BAD_MANIFEST_ROW,  # listed twice: the repeat
        "labels.csv:11": reasons.REASON_BAD_MANIFEST_ROW,
    }
    assert report["files_seen"] == len(rows) + 1
    _assert_accounted(report, examples)


def test_too_many_rejections_fail_with_the_fraction_and_report(tmp_path):
    root = tmp_path / "data"
    _write(root / "cats/a.jpg", _jpeg(400))
    _write(root / "cats/b.jpg", _jpeg(401))
    _write(root / "cats/empty1.jpg", b"")
    _write(root / "cats/empty2.jpg", b"")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError) as failure:
        _run(root, out, max_rejected_fraction=0.2)
    message = str(failure.value)
    assert "0.500" in message and "max_rejected_fraction=0.2" in message
    assert "zero_bytes=2" in message and str(out / ingestion.REPORT_FILE) in message
    report = json.loads((out / ingestion.REPORT_FILE).read_text())
    assert (report["files_seen"], report["ingested"]) == (4, 2)


def test_nothing_ingested_fails_clearly(tmp_path):
    _write(tmp_path / "data/cats/notes.txt", b"hello")
    with pytest.raises(RuntimeError, match="ingested no image.*unsupported_extension=1"):
        _run(tmp_path / "data", tmp_path / "out", max_rejected_fraction=1.0)
