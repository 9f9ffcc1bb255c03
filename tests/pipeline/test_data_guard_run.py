"""The data guard in real local runs: the first push records its data, a re-run on the
same data passes, a run with a new class stops before training and says so (summary,
webhook, `imgpipe history`); `imgpipe schema accept` records the change."""
import json
import os
import shutil

import pytest
import tensorflow_data_validation as tfdv

from components.data_guard import checks
from components.serving import data_reference as reference
from components.artifacts.statistics import load_split_statistics
from pipeline.commands import history
from pipeline.cli import main as imgpipe
from pipeline.config import PipelineConfig
from pipeline.runners.local import run_local
from trainer.config_fields import build


def test_the_first_push_records_its_data_and_the_rerun_passes(e2e):
    serving_dir = e2e["config"].serving_dir
    current = reference.current(serving_dir)
    assert current is not None and current.record["version"] == 1
    assert current.record["run_id"] == e2e["first"].run_id
    labels = tfdv.get_domain(current.schema, "label").value
    assert sorted(labels) == ["0", "1", "2"]
    assert e2e["second"].executions["DataGuard"] == "COMPLETE"  # never cached
    assert e2e["second"].data_findings == [] and not e2e["second"].data_stopped


@pytest.fixture(scope="module")
def stopped(e2e, tmp_path_factory, module_webhook):
    """A copy of e2e's home (its champion and reference) and a run whose data gained a
    class."""
    home = tmp_path_factory.mktemp("guard_home") / "home"
    shutil.copytree(e2e["config"].home, home, ignore=shutil.ignore_patterns("data"))
    data = home / "data_with_3"
    shutil.copytree(e2e["data"], data)
    from pipeline.data_source import write_demo_digits

    write_demo_digits(str(data), classes=(3,))
    tree = e2e["config"].to_dict()
    tree.update(home=str(home))
    tree["data"]["source"] = str(data)
    tree["notify"]["webhook_url"] = module_webhook.url
    config = build(PipelineConfig, tree).validate()
    summary = run_local(config)
    return {"config": config, "summary": summary, "home": home, "webhook": module_webhook}


def test_a_new_class_stops_the_run_before_training(stopped):
    summary = stopped["summary"]
    assert summary.data_stopped is True
    assert "Transform" not in summary.executions and "Trainer" not in summary.executions
    label = [f for f in summary.data_findings if f.startswith("anomaly: label:")]
    assert label and "3" in label[0]
    assert any(f.startswith("drift: label L_INFTY") for f in summary.data_findings)
    text = "\n".join(summary.lines())
    assert "STOPPED before training" in text and label[0] in text
    assert "imgpipe schema accept" in text


def test_the_webhook_hears_what_stopped_it(stopped):
    (body,) = [b["json"] for b in stopped["webhook"].bodies]
    assert body["imgpipe"]["event"] == "data_stopped"
    assert body["imgpipe"]["findings"] == stopped["summary"].data_findings
    assert "STOPPED before training" in body["text"]


def test_history_has_one_row_per_run_with_the_findings(stopped, capsys):
    assert imgpipe(["history", "--home", str(stopped["home"])]) == 0
    out = capsys.readouterr().out.splitlines()
    header, *rows = out
    assert header.split()[:3] == ["date", "run", "span"]
    # e2e's two runs (and any its home had when copied), then the stopped run.
    assert len(rows) == len(history.history(stopped["config"]))
    first, second, last = rows[0], rows[1], rows[-1]
    assert " v1" in first and "yes" in first and "(95% CI" in first and " none " in first
    assert "(v1)" in second and "v1 (same model)" in second
    assert stopped["summary"].run_id in last
    assert "STOPPED: anomaly: label:" in last


def test_accepting_the_change_is_explicit_and_recorded(stopped, capsys):
    config = stopped["config"]
    before = reference.current(config.serving_dir)
    assert imgpipe(["schema", "accept", "--home", str(stopped["home"])]) == 0
    out = capsys.readouterr().out
    assert f"accepted the data of run {stopped['summary'].run_id}" in out
    assert "accepted: anomaly: label:" in out
    after = reference.current(config.serving_dir)
    assert after.path != before.path and after.record["kind"] == "accepted"
    with open(os.path.join(after.path, reference.RECORD_FILE)) as f:
        record = json.load(f)
    assert record["findings"] == stopped["summary"].data_findings
    # The accepted reference now admits that run's data.
    from pipeline.run_summary import find_run, open_store, run_artifacts
    from tfx.types import standard_artifacts

    with open_store(config) as m:
        run = find_run(m.store, config.name)
        mlmd = run_artifacts(m.store, run)[("StatisticsGen", "statistics")]
    artifact = standard_artifacts.ExampleStatistics()
    artifact.set_mlmd_artifact(mlmd)
    result = checks.check(load_split_statistics(artifact), after.schema, after.statistics,
                          config.guard)
    assert result.anomalies == [] and result.breaches == []
