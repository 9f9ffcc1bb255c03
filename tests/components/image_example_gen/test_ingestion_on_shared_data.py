"""ImageExampleGen on the shared data: every file of bad_images with its expected outcome,
and the whole flowers5 set (slow). Skipped when ../shared/data is absent."""
import os
import shutil
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.image_example_gen import reasons, split_rule  # noqa: E402
from test_image_example_gen import (_all_examples, _assert_accounted, _int,  # noqa: E402
                                    _rejections, _run, _str)
from trainer import features, image_ops  # noqa: E402

SHARED_DATA = Path(os.environ.get(
    "IMGPIPE_SHARED_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"))


def _shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found: {SHARED_DATA}")
    return SHARED_DATA


# Outcome of each file of shared/data/bad_images: a rejection code, or what is stored
# (format, width, height, channels; "normalised" when the bytes are not the original).
BAD_IMAGES_EXPECTED = {
    "README.md": reasons.REASON_UNSUPPORTED_EXTENSION,
    "UPPERCASE_EXT.JPG": ("JPEG", 128, 128, 3),
    "cmyk.jpg": ("JPEG", 366, 500, 4),
    "corrupt_middle.jpg": reasons.REASON_UNDECODABLE,
    "exif_orientation_6.jpg": ("PNG", 500, 366, 3, "normalised"),
    "extreme_aspect_4000x8.jpg": reasons.REASON_EXTREME_ASPECT_RATIO,
    "gray16.png": ("PNG", 366, 500, 1),
    "grayscale_L.jpg": ("JPEG", 366, 500, 1),
    "huge_15000x12000.jpg": reasons.REASON_TOO_LARGE,
    "imageNotFound.gif": reasons.REASON_UNSUPPORTED_FORMAT,
    "not_an_image_html.jpg": reasons.REASON_NOT_AN_IMAGE,
    "palette_P.png": ("PNG", 366, 500, 3),
    "png_bytes_named.jpg": ("PNG", 366, 500, 3),
    "progressive.jpg": ("JPEG", 366, 500, 3),
    "rgba_alpha.png": ("PNG", 366, 500, 4),
    "tiny_1x1.jpg": reasons.REASON_TOO_SMALL,
    "truncated_half.jpg": reasons.REASON_TRUNCATED,
    "webp_bytes_named.jpg": reasons.REASON_UNSUPPORTED_FORMAT,
    "zero_bytes.jpg": reasons.REASON_ZERO_BYTES,
}


def test_every_bad_image_has_its_expected_outcome(tmp_path):
    source = _shared_data() / "bad_images"
    names = sorted(p.name for p in source.iterdir())
    assert set(names) == set(BAD_IMAGES_EXPECTED), "bad_images changed: update the table"
    root = tmp_path / "data"
    (root / "bad").mkdir(parents=True)
    for name in names:  # copied: a symlink out of the root would be rejected
        shutil.copyfile(source / name, root / "bad" / name)
    out = tmp_path / "out"
    # One class of a few files: the per-split class minimum is another test's subject.
    examples, report = _run(root, out, max_rejected_fraction=1.0, min_images_per_split=0)

    rejected = {Path(f).name: reason for f, reason in _rejections(report).items()}
    normalised = {Path(n["file"]).name for n in report["normalised"]}
    stored = {Path(i).name: e for i, e in _all_examples(out).items()}
    outcomes = {}
    for name, example in stored.items():
        outcomes[name] = (_str(example, features.FORMAT_KEY), _int(example, features.WIDTH_KEY),
                          _int(example, features.HEIGHT_KEY),
                          _int(example, features.CHANNELS_KEY)) + \
            (("normalised",) if name in normalised else ())
        image_bytes = example.features.feature[features.IMAGE_KEY].bytes_list.value[0]
        if name not in normalised:
            assert image_bytes == (source / name).read_bytes(), name
        assert image_ops.decode_and_resize(tf.constant(image_bytes), 16).shape == (16, 16, 3)
    outcomes.update(rejected)
    assert outcomes == BAD_IMAGES_EXPECTED
    assert "max_pixels" in next(r["detail"] for r in report["rejected"]
                                if r["file"].endswith("huge_15000x12000.jpg"))
    _assert_accounted(report, examples)


@pytest.mark.slow
def test_flowers5_full_ingestion(tmp_path):
    root = _shared_data() / "images" / "flowers5_128px"
    started = time.monotonic()
    examples, report = _run(root, tmp_path / "out")
    elapsed = time.monotonic() - started
    print(f"flowers5 ingestion: {elapsed:.1f} s")
    assert elapsed < 60, f"flowers5 ingestion took {elapsed:.0f} s"

    conflicting = {f"{label}/{name}" for label in ("rose", "tulip") for name in (
        "15922772266_1167a06620.jpg", "17104364030_ee31ee279b_n.jpg",
        "17291451621_0e39f08b9e_n.jpg", "17291930305_79deae6a90_n.jpg")}
    rejections = _rejections(report)
    near = {f for f, reason in rejections.items()
            if reason == split_rule.REASON_CONFLICTING_NEAR_DUPLICATE}
    assert {f: r for f, r in rejections.items() if f not in near} == {
        **{f: reasons.REASON_CONFLICTING_DUPLICATE for f in conflicting},
        "sunflower/15066430311_fb57fa92b0_m.jpg": reasons.REASON_DUPLICATE,
        "sunflower/15072973261_73e2912ef2_n.jpg": reasons.REASON_DUPLICATE,
    }
    # At the default distance (10), 11 pairs of distinct low-resolution photos under
    # different labels come within it (the README's precision figures): 21 images rejected.
    assert len(near) == 21
    details = {r["file"]: r["detail"] for r in report["rejected"]}
    assert all(f.split("/")[0] not in details[f].split(":")[0] for f in near)
    assert (report["near_duplicate_groups"], report["largest_near_duplicate_group"]) == (40, 5)
    assert report["files_seen"] == 4317 and report["ingested"] == 4317 - 10 - 21
    assert report["ingested_by_label"] == {"daisy": 759, "dandelion": 1046, "rose": 775,
                                           "sunflower": 729, "tulip": 977}
    _assert_accounted(report, examples)
    assert len(_all_examples(tmp_path / "out")) == 4317 - 10 - 21
