"""`imgpipe report` and `imgpipe predict` on the `promotion` runs (a better model with a
baseline, a worse one rejected), the page rendered by headless Chromium via DevTools."""
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest
from PIL import Image

from components.artifacts.metric_names import CONFUSION_MATRIX
from pipeline import run_summary
from pipeline.commands import report, report_data
from pipeline.cli import main as imgpipe

PLOTS = ("training_curves.png", "confusion_matrix.png", "per_class.png",
         "baseline_comparison.png")


@pytest.fixture(scope="module")
def reports(promotion, tmp_path_factory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    config = promotion["better_config"]
    return {name: Path(report.build_report(config, promotion[name].run_id, str(out / name)))
            for name in ("better", "worse")}


def _numbers(html_path: Path) -> Dict[str, Any]:
    return json.loads((html_path.parent / "report.json").read_text())


def _tfma_confusion(config, run_id: str) -> List[List[float]]:
    """TFMA's multi-class confusion matrix at threshold 0, read straight from its output."""
    import tensorflow_model_analysis as tfma

    with run_summary.open_store(config) as m:
        uri = run_summary.run_artifacts(m.store, run_summary.find_run(m.store, config.name,
                                                                      run_id))[
            ("Evaluator", "evaluation")].uri
    for plots in tfma.load_plots(uri):
        if plots.slice_key.single_slice_keys:
            continue
        for item in plots.plot_keys_and_values:
            if item.key.model_name != tfma.BASELINE_KEY and item.key.name == \
                    CONFUSION_MATRIX:
                matrix = item.value.multi_class_confusion_matrix_at_thresholds.matrices[0]
                assert matrix.threshold == 0.0
                n = 1 + max(max(e.actual_class_id, e.predicted_class_id) for e in matrix.entries)
                counts = [[0.0] * n for _ in range(n)]
                for e in matrix.entries:
                    counts[e.actual_class_id][e.predicted_class_id] = e.num_weighted_examples
                return counts
    raise AssertionError("no confusion matrix in the TFMA output")


def test_report_is_self_contained_with_its_plots_beside_it(reports):
    page = reports["better"]
    for name in PLOTS:
        assert (page.parent / name).stat().st_size > 1000, name
    text = page.read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert links and all(link.startswith("data:") for link in links)
    assert text.count('src="data:image/png;base64,') >= len(PLOTS)
    assert "<script" not in text  # nothing to go wrong in a browser but the markup


def test_confusion_matrix_png_numbers_match_tfma(reports, promotion):
    for name in ("better", "worse"):
        png = Image.open(reports[name].parent / "confusion_matrix.png")
        drawn = json.loads(png.text["Description"])
        expected = _tfma_confusion(promotion["better_config"], promotion[name].run_id)
        assert drawn["matrix"] == expected
        numbers = _numbers(reports[name])
        assert drawn["labels"] == numbers["labels"] and sorted(drawn["labels"]) == ["0", "1", "2"]
        assert sum(map(sum, expected)) == numbers["evaluation"]["metrics"]["example_count"]
        # Per-class recall (TFMA, ArgmaxClassMetric) agrees with the matrix it shows.
        for class_id, row in enumerate(expected):
            recall = numbers["evaluation"]["per_class"][str(class_id)]["recall"]
            assert recall == pytest.approx(row[class_id] / sum(row))


def test_gallery_agrees_with_tfma_on_what_is_misclassified(reports, promotion):
    numbers = _numbers(reports["worse"])
    expected = _tfma_confusion(promotion["better_config"], promotion["worse"].run_id)
    errors = sum(v for i, row in enumerate(expected) for j, v in enumerate(row) if i != j)
    assert numbers["misclassified"]["scanned"] == sum(map(sum, expected))
    assert numbers["misclassified"]["errors"] == errors > 0
    shown = numbers["misclassified"]["shown"]
    assert len(shown) == min(errors, report_data.GALLERY_LIMIT)
    text = reports["worse"].read_text()
    assert text.count("<figure>") == len(shown) and "predicted <b>" in text


def test_report_shows_verdict_thresholds_and_baseline_diff(reports, promotion):
    better = reports["better"].read_text()
    assert "BLESSED and pushed as version 2" in better and "<b>champion</b>" in better
    assert "Compared with the latest blessed model (serving version 1)" in better
    assert "diff &gt;= -0.05" in better and ">FAIL<" not in better
    assert "baseline recall" in better
    worse = reports["worse"].read_text()
    assert "NOT BLESSED" in worse and ">FAIL<" in worse
    assert _numbers(reports["worse"])["failures"] == promotion["worse"].failures
    for failure in promotion["worse"].failures:
        assert failure.replace(">", "&gt;") in worse


def test_report_of_an_unchanged_rerun_names_the_model_itself_as_baseline(e2e, tmp_path):
    page = Path(report.build_report(e2e["config"], e2e["second"].run_id, str(tmp_path)))
    text = page.read_text()
    assert "The latest blessed model (serving version 1) is this model itself" in text
    assert "not pushed again" in text


def test_training_curves_cover_both_phases(promotion):
    data = report_data.gather(promotion["better_config"], promotion["better"].run_id)
    assert [p["name"] for p in data.history] == ["phase1", "phase2"]
    assert data.history[1]["epochs"][0] == data.history[0]["epochs"][-1] + 1


def test_report_command_writes_under_home(promotion, capsys):
    home = Path(promotion["better_config"].home)
    assert imgpipe(["report", promotion["worse"].run_id, "--home", str(home)]) == 0
    written = Path(capsys.readouterr().out.strip().rsplit(" ", 1)[-1])
    assert written.is_file() and written.parent.parent == home / "reports"
    assert imgpipe(["report", "no-such-run", "--home", str(home)]) == 1
    assert "imgpipe report: no run 'no-such-run'" in capsys.readouterr().err


# -- headless Chromium ---------------------------------------------------------------------
def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        pytest.skip("chromium not installed (Debian: `apt-get install -y chromium`): the "
                    "report's browser rendering is not checked")
    return binary


def _devtools_port(user_dir: Path, proc: subprocess.Popen) -> int:
    port_file = user_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chromium did not start: {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    return int(port_file.read_text().split()[0])


class _Page:
    """One DevTools page session: commands, and the console / log events it saw."""

    def __init__(self, port: int):
        import websocket

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: List[Dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> Dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))

    def errors(self) -> List[str]:
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:300])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args"))[:300])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found


def test_report_renders_in_headless_chromium_without_console_errors(reports, tmp_path):
    binary = _chromium()
    user_dir = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={user_dir}", "--remote-debugging-port=0",
         "--remote-allow-origins=*", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        page = _Page(_devtools_port(user_dir, proc))
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        for name, path in reports.items():
            page.events.clear()
            page.send("Page.navigate", url=path.as_uri())
            page.wait_for("Page.loadEventFired")
            state = json.loads(page.send("Runtime.evaluate", returnByValue=True, expression=(
                "JSON.stringify({images: document.images.length, broken: Array.from("
                "document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length, "
                "sections: document.querySelectorAll('h2').length})"))["result"]["value"])
            assert page.errors() == [], name
            assert state["images"] >= 3 and state["broken"] == 0, (name, state)
            assert state["sections"] == 9, (name, state)  # report.py's <h2> sections
        page.ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- predict -------------------------------------------------------------------------------
def test_predict_prints_top_k_class_names_from_the_champion(promotion, e2e, capsys):
    home = str(promotion["better_config"].home)
    image = sorted((e2e["data"] / "2").glob("*.png"))[0]
    junk = e2e["data"] / "1" / "notes.txt"
    assert imgpipe(["predict", str(image), "--home", home, "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    # After the rollback the champion is serving version 1.
    assert out.splitlines()[0] == f"model: {promotion['better_config'].serving_dir}/1"
    ranked = [line.split() for line in out.splitlines()[2:]]
    assert [r[0] for r in ranked] == ["1.", "2."] and ranked[0][1] == "2"
    assert imgpipe(["predict", str(image), str(junk), "--model", "2", "--home", home]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines()[0].endswith("/2")
    assert f"imgpipe predict: {junk}: cannot predict" in out.err
    assert imgpipe(["predict", str(image), "--model", "staging", "--home", home]) == 1
    assert "no model 'image_classifier' with alias 'staging'" in capsys.readouterr().err
