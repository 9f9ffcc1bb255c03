"""`imgpipe history` and the report's history chart, read from ML Metadata."""
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.commands import history, report


def test_history_reads_each_run_back_from_ml_metadata(e2e):
    first, second = history.history(e2e["config"])[:2]  # later tests may add runs
    assert [first.run_id, second.run_id] == [e2e["first"].run_id, e2e["second"].run_id]
    assert first.started <= second.started
    assert first.state == second.state == "complete"
    assert first.summary.ingested == e2e["first"].ingested and first.span == 0
    assert first.summary.pushed_version == 1 and first.summary.push_status == "pushed"
    assert second.summary.push_status == "already_pushed"
    row = history.rows([first])[0]
    assert row[history.HEADERS.index("accuracy")].startswith(
        f"{e2e['first'].accuracy:.4f} (95% CI ")
    assert row[history.HEADERS.index("pushed")] == "v1"
    assert row[history.HEADERS.index("data")] == "ok"


def test_the_report_charts_accuracy_per_run_with_its_ci(e2e, tmp_path):
    page = Path(report.build_report(e2e["config"], e2e["second"].run_id, str(tmp_path)))
    text = page.read_text()
    assert "<h2>History</h2>" in text and 'alt="accuracy history"' in text
    with Image.open(tmp_path / "history.png") as png:
        runs = json.loads(png.info["Description"])["runs"]
    assert [r["accuracy"] for r in runs] == pytest.approx(
        [e2e["first"].accuracy, e2e["second"].accuracy])
    assert runs[0]["interval"] == pytest.approx(e2e["first"].accuracy_interval)
    assert [r["pushed"] for r in runs] == [True, False]
