"""ImageExampleGen on synthetic near-copies: groups land whole in one split, prior
placements are kept, bridges and cross-label near-duplicates are handled."""
import csv
import json
import os
from pathlib import Path
from typing import Dict, Sequence, Tuple

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from components.artifacts import ingestion  # noqa: E402
from components.image_example_gen import component, executor, placement  # noqa: E402
from components.image_example_gen import fingerprint as fp  # noqa: E402
from components.image_example_gen import split_rule as rule  # noqa: E402
from near_copy_helpers import jpeg, near_copy, photo  # noqa: E402
from trainer import features  # noqa: E402

LABELS = {0: "cat", 1: "cat", 2: "cat", 3: "dog", 4: "dog", 5: "dog"}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _burst_tree(root: Path, seeds: Sequence[int] = tuple(LABELS)) -> Dict[str, int]:
    """Each seed: an original and two near-copies under its label; {image_id: seed}."""
    ids = {}
    for seed in seeds:
        label = LABELS[seed]
        _write(root / label / f"p{seed}.jpg", jpeg(photo(seed)))
        for copy in range(2):
            _write(root / label / f"p{seed}_copy{copy}.jpg", near_copy(photo(seed), 10 * seed + copy))
        ids.update({f"{label}/p{seed}{suffix}.jpg": seed for suffix in ("", "_copy0", "_copy1")})
    return ids


def _run(root: Path, out: Path, prior: Sequence[str] = (), **data) -> Tuple[dict, Dict[str, str]]:
    """Runs the executor; returns the report and {image_id: split} of the examples."""
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    # A few images a class: the per-split class minimum is another test's subject.
    example_gen = component.ImageExampleGen(str(root), {"min_images_per_split": 0, **data},
                                            prior_fingerprint_indexes=prior)
    props = {k: proto_utils.proto_to_json(v) if isinstance(v, Message) else v
             for k, v in example_gen.exec_properties.items() if v is not None}
    executor.Executor().Do({}, {"examples": [examples]}, props)
    assert examples.get_int_custom_property(ingestion.NEAR_DUPLICATE_GROUPS) == \
        json.loads((out / ingestion.REPORT_FILE).read_text())["near_duplicate_groups"]
    splits = {}
    for split in rule.SPLITS:
        files = [str(p) for p in (out / f"Split-{split}").glob("*.gz")]
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            feature = example.features.feature
            image_id = feature[features.IMAGE_ID_KEY].bytes_list.value[0].decode()
            splits[image_id] = split
            assert feature[features.FINGERPRINT_KEY].int64_list.value[0] == \
                fp.to_int64(_index(out)[image_id].fingerprint)
    return json.loads((out / ingestion.REPORT_FILE).read_text()), splits


def _index(out: Path) -> Dict[str, rule.IndexRow]:
    return {r.image_id: r for r in rule.read_index(str(out / rule.INDEX_FILE))}


def _rejected(out: Path) -> Dict[str, Tuple[str, str]]:
    with open(out / ingestion.REJECTED_CSV, newline="") as f:
        return {r["file"]: (r["reason"], r["detail"]) for r in csv.DictReader(f)}


def test_groups_land_whole_in_one_split_and_keep_it_later(tmp_path):
    root = tmp_path / "data"
    ids = _burst_tree(root)
    report, splits = _run(root, tmp_path / "run1", train_buckets=1, eval_buckets=1)
    assert set(splits) == set(ids) and report["ingested"] == len(ids)
    assert (report["near_duplicate_groups"], report["largest_near_duplicate_group"]) == (6, 3)
    index = _index(tmp_path / "run1")
    for seed in LABELS:
        members = [i for i, s in ids.items() if s == seed]
        assert len({splits[i] for i in members}) == 1, members
        anchor = min(index[i].sha256 for i in members)
        assert {index[i].group for i in members} == {anchor}
        assert splits[members[0]] == rule.anchor_split(anchor, 1, 1)
    assert set(splits.values()) == set(rule.SPLITS)
    assert {i: r.split for i, r in index.items()} == splits

    # A later run with other bucket sizes and the first run's index: every image keeps
    # its split, and new near-copies (one renamed copy of an old file) join their group.
    _write(root / "cat/p0_copy2.jpg", near_copy(photo(0), 99))
    _write(root / "dog/p3_copy2.jpg", near_copy(photo(3), 98))
    (root / "cat/p1.jpg").rename(root / "cat/p1_renamed.jpg")
    prior = [str(tmp_path / "run1" / rule.INDEX_FILE)]
    _, later = _run(root, tmp_path / "run2", prior, train_buckets=1, eval_buckets=9)
    expected = {("cat/p1_renamed.jpg" if i == "cat/p1.jpg" else i): s for i, s in splits.items()}
    expected.update({"cat/p0_copy2.jpg": splits["cat/p0.jpg"],
                     "dog/p3_copy2.jpg": splits["dog/p3.jpg"]})
    assert later == expected


def test_an_image_bridging_earlier_splits_is_rejected(tmp_path):
    root = tmp_path / "data"
    _burst_tree(root, seeds=(0, 1))
    value = fp.fingerprint(photo(0), b"")
    # An earlier run placed two near-duplicates of photo 0, 8 bits apart, in both splits.
    apart = value ^ 0xFF
    prior = [rule.IndexRow("old/train.jpg", "1" * 64, value ^ 0x0F, "1" * 64, "train", "cat"),
             rule.IndexRow("old/eval.jpg", "2" * 64, apart ^ 0x0F, "2" * 64, "eval", "cat")]
    rule.write_index(prior, str(tmp_path / "prior"))
    report, splits = _run(root, tmp_path / "out", [str(tmp_path / "prior" / rule.INDEX_FILE)],
                          near_duplicate_distance=4, max_rejected_fraction=0.5)
    rejected = _rejected(tmp_path / "out")
    assert rejected["cat/p0.jpg"][0] == rule.REASON_NEAR_DUPLICATE_ACROSS_SPLITS
    assert "old/train.jpg (train)" in rejected["cat/p0.jpg"][1]
    assert "old/eval.jpg (eval)" in rejected["cat/p0.jpg"][1]
    assert "cat/p0.jpg" not in splits and "cat/p1.jpg" in splits
    assert report["counts_by_reason"][rule.REASON_NEAR_DUPLICATE_ACROSS_SPLITS] >= 1


@pytest.mark.parametrize("action", rule.CONFLICT_ACTIONS)
def test_near_duplicates_under_different_labels(tmp_path, action):
    root = tmp_path / "data"
    ids = _burst_tree(root, seeds=(0, 3))
    _write(root / "dog/looks_like_p0.jpg", near_copy(photo(0), 77))
    report, splits = _run(root, tmp_path / "out", conflicting_near_duplicates=action,
                          max_rejected_fraction=0.9)
    rejected = _rejected(tmp_path / "out")
    cat_group = {i for i, s in ids.items() if s == 0} | {"dog/looks_like_p0.jpg"}
    if action == rule.CONFLICT_REJECT:
        assert set(rejected) == cat_group
        assert {reason for reason, _ in rejected.values()} == \
            {rule.REASON_CONFLICTING_NEAR_DUPLICATE}
        assert "dog/looks_like_p0.jpg (dog)" in rejected["cat/p0.jpg"][1]
        assert "cat/p0.jpg (cat)" in rejected["dog/looks_like_p0.jpg"][1]
        assert report["warnings"] == []
    else:
        assert rejected == {}
        assert len({splits[i] for i in cat_group}) == 1
        warned = {w["file"] for w in report["warnings"]}
        assert warned == (cat_group if action == rule.CONFLICT_WARN else set())


def test_a_missing_prior_index_is_named(tmp_path):
    missing = str(tmp_path / "span-3" / rule.INDEX_FILE)
    with pytest.raises(ValueError, match=f"prior_fingerprint_indexes: no such fingerprint "
                                         f"index {missing}"):
        placement.prior_indexes({rule.PRIOR_INDEXES_KEY: [missing]})
