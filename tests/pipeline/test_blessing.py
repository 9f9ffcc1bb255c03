"""Promotion end to end (real LocalDagRunner, TFMA, MLflow on sqlite): a first model is
blessed on value thresholds, an unchanged re-run pushes nothing, a worse model never
reaches the serving root or the registry, a better one becomes champion, and rollback
moves champion back without touching the version folders. Shares `e2e` and `promotion`."""
import json
import os

from components.serving import serving_root


def _card(summary) -> dict:
    with open(os.path.join(summary.pushed_to, serving_root.CARD_FILE)) as f:
        return json.load(f)


def test_first_model_is_blessed_on_value_thresholds_and_becomes_champion(e2e, promotion):
    first = e2e["first"]
    assert "no baseline yet (value thresholds only)" in "\n".join(first.lines())
    assert first.push_status == "pushed" and first.pushed_version == 1
    assert first.registry_status == "registered"
    card = _card(first)
    assert card["baseline"] is None
    assert card["thresholds"]["mode"] == "value thresholds only (no baseline yet)"
    assert card["metrics"]["accuracy"] == first.accuracy
    assert set(card["per_class"]) == {"0", "1", "2"}
    assert card["data"]["rejected"] == e2e["rejected_expected"]
    assert card["lineage"]["pipeline_run_id"] == first.run_id
    assert promotion["state"]["start"]["champion"] == "1"


def test_unchanged_rerun_pushes_nothing_new(e2e, promotion):
    second = e2e["second"]
    assert second.blessed is True and second.had_baseline is True
    assert second.push_status == "already_pushed" and second.pushed_version == 1
    assert second.registry_status == "unchanged"
    assert promotion["state"]["start"]["versions"] == [1]


def test_worse_model_is_not_blessed_pushed_or_registered(promotion):
    worse, state = promotion["worse"], promotion["state"]
    assert worse.executions["Trainer"] == "COMPLETE"  # a new model was trained
    assert worse.had_baseline is True and worse.blessed is False
    tolerance = promotion["worse_config"].eval.max_accuracy_drop
    assert worse.accuracy < worse.baseline_accuracy - tolerance
    # min_accuracy is 0 for this run: only the comparison with the baseline rejects it.
    assert worse.failures and all("change vs baseline" in f for f in worse.failures)
    assert any(f.startswith("accuracy: change vs baseline") for f in worse.failures)
    assert worse.push_status == "not_blessed" and worse.pushed_to is None
    assert state["after_worse"] == state["start"]  # serving root, registry and champion
    assert "nothing (model not blessed)" in "\n".join(worse.lines())


def test_better_model_is_pushed_registered_and_becomes_champion(promotion):
    better, state = promotion["better"], promotion["state"]
    assert better.blessed is True and better.had_baseline is True
    assert better.push_status == "pushed" and better.pushed_version == 2
    assert better.registry_status == "registered"
    after = state["after_better"]
    assert after["versions"] == after["registered"] == [1, 2]
    assert after["champion"] == "2"
    # Version 1 (and the data recorded for it) is untouched by the new push.
    assert {k: v for k, v in after["serving_tree"].items() if not k.startswith("2/")
            and not k.startswith("data_reference/v2/")} == state["start"]["serving_tree"]
    card = _card(better)
    assert card["baseline"]["serving_version"] == 1
    assert card["baseline"]["metrics"]["accuracy"] == better.baseline_accuracy
    assert card["thresholds"]["mode"] == "value and change thresholds"
    assert card["lineage"]["pipeline_run_id"] == better.run_id
    assert "MLflow version 2, now the champion" in "\n".join(better.lines())


def test_rollback_moves_champion_back_and_leaves_the_serving_root_alone(promotion):
    state = promotion["state"]
    assert promotion["rollback_code"] == 0
    assert state["after_rollback"]["champion"] == "1"
    assert state["after_rollback"]["serving_tree"] == state["after_better"]["serving_tree"]
    assert state["after_rollback"]["registered"] == [1, 2]
