"""The split rule on fingerprints alone: groups, prior placements, bridges, conflicts."""
import hashlib

import pytest

from components.image_example_gen import split_rule as rule
from components.image_example_gen.config import DataConfig
from trainer.config_fields import ConfigError
from trainer import features

TRAIN, EVAL = features.TRAIN_SPLIT, features.EVAL_SPLIT
SETTINGS = rule.Settings(max_distance=4, train_buckets=8, eval_buckets=2,
                         conflicting_action=rule.CONFLICT_REJECT)
BASE = 0x0123456789ABCDEF


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _member(name: str, fingerprint: int, label: str = "cat") -> rule.Member:
    return rule.Member(name, _sha(name), fingerprint, label)


def _flip(value: int, *bits: int) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def _split_with_anchor_in(split: str) -> str:
    """A name whose sha256 puts a group it anchors in `split` (10 buckets, 8 train)."""
    return next(f"{split}{i}" for i in range(1000)
                if rule.anchor_split(_sha(f"{split}{i}"), 8, 2) == split)


def test_a_group_goes_whole_to_its_anchors_split():
    members = [_member("a", BASE), _member("b", _flip(BASE, 1, 2)),
               _member("c", _flip(BASE, 1, 2, 3, 4, 5, 6)),  # 4 from b, 6 from a: chained
               _member("far", ~BASE & (1 << 64) - 1)]
    plan = rule.plan_splits(members, [], SETTINGS)
    group = {m.image_id: plan.placements[m.image_id] for m in members[:3]}
    anchor = min(m.sha256 for m in members[:3])
    assert {p.group for p in group.values()} == {anchor}
    assert {p.split for p in group.values()} == {rule.anchor_split(anchor, 8, 2)}
    assert plan.placements["far"].group == _sha("far")
    assert (plan.groups, plan.largest_group) == (1, 3)
    assert {r.image_id: r.split for r in plan.rows} == \
        {k: p.split for k, p in plan.placements.items()}


def test_buckets_keep_the_configured_ratio():
    members = [_member(f"img{i}", i * 0x9E3779B97F4A7C15 % (1 << 64)) for i in range(4000)]
    plan = rule.plan_splits(members, [], rule.Settings(0, 3, 1, rule.CONFLICT_REJECT))
    eval_share = sum(p.split == EVAL for p in plan.placements.values()) / len(members)
    assert 0.22 < eval_share < 0.28


def test_prior_placements_are_honoured():
    in_train, in_eval = _split_with_anchor_in(TRAIN), _split_with_anchor_in(EVAL)
    # Placed earlier against what its anchor says: it keeps its split.
    prior = [rule.IndexRow(in_train, _sha(in_train), BASE, _sha(in_train), EVAL, "cat")]
    members = [_member(in_train, BASE),  # the same content again
               _member(in_eval + "_copy", _flip(BASE, 7)),  # joins the group: eval
               _member("other", _flip(BASE, *range(20, 40)))]
    plan = rule.plan_splits(members, prior, SETTINGS)
    assert plan.placements[in_train].split == EVAL
    assert plan.placements[in_eval + "_copy"].split == EVAL
    assert plan.placements["other"].split == rule.anchor_split(_sha("other"), 8, 2)


def test_an_image_bridging_both_splits_is_rejected():
    left, right = BASE, _flip(BASE, *range(8))  # 8 apart: two groups at distance 4
    prior = [rule.IndexRow("old/train.jpg", _sha("t"), left, _sha("t"), TRAIN, "cat"),
             rule.IndexRow("old/eval.jpg", _sha("e"), right, _sha("e"), EVAL, "cat")]
    members = [_member("new/bridge.jpg", _flip(BASE, 0, 1, 2, 3)),  # 4 from each
               _member("new/near_train.jpg", _flip(BASE, 60)),
               _member("new/near_eval.jpg", _flip(right, 60))]
    plan = rule.plan_splits(members, prior, SETTINGS)
    bridge = plan.placements["new/bridge.jpg"]
    assert bridge.reason == rule.REASON_NEAR_DUPLICATE_ACROSS_SPLITS
    assert "old/train.jpg (train)" in bridge.detail and "old/eval.jpg (eval)" in bridge.detail
    assert plan.placements["new/near_train.jpg"].split == TRAIN
    assert plan.placements["new/near_eval.jpg"].split == EVAL
    assert "new/bridge.jpg" not in {r.image_id for r in plan.rows}


@pytest.mark.parametrize("action", rule.CONFLICT_ACTIONS)
def test_near_duplicates_under_different_labels(action):
    members = [_member("cat/a.jpg", BASE, "cat"), _member("dog/a.jpg", _flip(BASE, 5), "dog"),
               _member("cat/b.jpg", _flip(BASE, *range(30, 50)), "cat")]
    plan = rule.plan_splits(members, [], rule.Settings(4, 8, 2, action))
    reasons = {k: p.reason for k, p in plan.placements.items()}
    if action == rule.CONFLICT_REJECT:
        assert reasons == {"cat/a.jpg": rule.REASON_CONFLICTING_NEAR_DUPLICATE,
                           "dog/a.jpg": rule.REASON_CONFLICTING_NEAR_DUPLICATE,
                           "cat/b.jpg": ""}
        assert "dog/a.jpg (dog)" in plan.placements["cat/a.jpg"].detail
        assert plan.groups == 0
    else:
        assert set(reasons.values()) == {""}
        assert plan.placements["cat/a.jpg"].split == plan.placements["dog/a.jpg"].split
        warned = {w["file"] for w in plan.warnings}
        assert warned == ({"cat/a.jpg", "dog/a.jpg"} if action == rule.CONFLICT_WARN else set())


def test_index_file_round_trips_and_names_bad_lines(tmp_path):
    rows = [rule.IndexRow("cats/a\tb.jpg", _sha("a"), (1 << 64) - 1, _sha("a"), TRAIN, "cat"),
            rule.IndexRow("dogs/c.jpg", _sha("c"), 5, _sha("a"), EVAL, "dog")]
    rule.write_index(rows, str(tmp_path))
    assert rule.read_index(str(tmp_path / rule.INDEX_FILE)) == rows
    assert not list(tmp_path.glob("*.tmp"))
    text = (tmp_path / rule.INDEX_FILE).read_text().replace("\teval\t", "\ttest\t")
    with pytest.raises(ValueError, match=r"index x.tsv:3: split must be one of"):
        rule.parse_index(text, "x.tsv")
    with pytest.raises(ValueError, match="header must be"):
        rule.parse_index("path\tlabel\n", "x.tsv")
    with pytest.raises(ValueError, match="not found"):
        rule.read_index(str(tmp_path / "missing.tsv"))


@pytest.mark.parametrize("field, value, message", [
    ("near_duplicate_distance", 25, "'data.near_duplicate_distance': expected an integer in"),
    ("near_duplicate_distance", -1, "'data.near_duplicate_distance'"),
    ("conflicting_near_duplicates", "drop",
     "'data.conflicting_near_duplicates': expected reject | keep | warn"),
])
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig(**{field: value}).validate()
