"""`imgpipe report [RUN]`: one page showing why a run's model was, or was not, promoted.

Writes <out>/report.html, self-contained (inline CSS, images as data: URIs), with the
plots beside it as PNGs and the numbers shown in report.json:

  verdict             blessed or not, every threshold with candidate / baseline / diff
                      and pass or fail, what was pushed and registered
  baseline_comparison.png   candidate vs baseline (when there was one to compare)
  training_curves.png loss and accuracy of both phases, the phase boundary marked
  confusion_matrix.png      TFMA's counts (also in the PNG's "Description" text chunk)
  per_class.png       precision / recall / F1 / AUC per class, and the same as a table
  slices              example count and accuracy per slice
  gallery             misclassified eval images with true and predicted labels
  data and lineage    ingestion counts, config hash, MLMD ids

RUN is a pipeline run id as `imgpipe run` prints it (default: the newest run).
"""
import html
import json
import os
import string
from typing import Any, Dict, List, Optional, Sequence, Tuple

from components.artifacts.confidence import format_interval
from components.artifacts.metric_names import (ACCURACY, EXAMPLE_COUNT, PER_CLASS_METRICS, RECALL,
                                        TOP_K_ACCURACY)
from pipeline.commands import history as run_history
from pipeline.commands.report_data import Misclassified, RunData, data_uri, find_misclassified, gather
from pipeline.commands.report_plots import (plot_comparison, plot_confusion, plot_history,
                                            plot_per_class, plot_training)
from trainer.contract import class_name


# -- tables --------------------------------------------------------------------------------
def _fmt(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _value(table: Dict[Any, Dict[str, float]], class_id: Optional[int],
           overall: Dict[str, float], metric: str) -> Optional[float]:
    return overall.get(metric) if class_id is None else table.get(class_id, {}).get(metric)


def threshold_rows(data: RunData) -> List[List[str]]:
    """Metric, class, threshold, candidate, baseline, diff, result: one row per check."""
    ev = data.evaluation
    rows = []
    for t in ev.thresholds:
        cid = t["class_id"]
        label = "all" if cid is None else class_name(cid, data.labels)
        candidate = _value(ev.per_class, cid, ev.metrics, t["metric"])
        baseline = _value(ev.baseline_per_class, cid, ev.baseline, t["metric"])
        if t["value"]:
            failed = ev.failed(t["metric"], cid, False)
            rows.append([t["metric"], label, t["value"], _fmt(candidate), "", "",
                         "FAIL" if failed else "pass"])
        if t["change"]:
            if not ev.has_baseline:
                rows.append([t["metric"], label, t["change"], _fmt(candidate), "–", "–",
                             "not applied (no baseline yet)"])
                continue
            diff = None if candidate is None or baseline is None else candidate - baseline
            failed = ev.failed(t["metric"], cid, True)
            rows.append([t["metric"], label, t["change"], _fmt(candidate), _fmt(baseline),
                         _fmt(diff, signed=True), "FAIL" if failed else "pass"])
    return rows


def comparison_rows(data: RunData) -> List[Tuple[str, float, float]]:
    ev = data.evaluation
    rows = [(m, ev.metrics[m], ev.baseline[m]) for m in (ACCURACY, TOP_K_ACCURACY)
            if m in ev.metrics and m in ev.baseline]
    for cid in sorted(ev.per_class):
        if RECALL in ev.per_class[cid] and RECALL in ev.baseline_per_class.get(cid, {}):
            rows.append((f"recall {class_name(cid, data.labels)}", ev.per_class[cid][RECALL],
                         ev.baseline_per_class[cid][RECALL]))
    return rows


def per_class_rows(data: RunData) -> List[List[str]]:
    ev = data.evaluation
    rows = []
    for cid in sorted(ev.per_class):
        support = sum(ev.confusion[cid]) if cid < len(ev.confusion) else None
        row = [class_name(cid, data.labels), f"{support:g}" if support is not None else "–"]
        row += [_fmt(ev.per_class[cid].get(m)) for m in PER_CLASS_METRICS]
        interval = ev.intervals.recall.get(cid) if ev.intervals else None
        row.append(format_interval(interval, ev.intervals.level) if interval else "–")
        if ev.has_baseline:
            row.append(_fmt(ev.baseline_per_class.get(cid, {}).get(RECALL)))
        rows.append(row)
    return rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{_cell_class(c)}">{html.escape(str(c))}</td>' for c in r)
        + "</tr>" for r in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return f'<table class="{css}">{thead}<tbody>{body}</tbody></table>'


def _cell_class(cell: Any) -> str:
    return {"FAIL": "fail", "pass": "pass"}.get(str(cell), "")


# -- the page ------------------------------------------------------------------------------
PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>imgpipe report: $title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.verdict { padding: .8em 1em; border-radius: 6px; font-size: 1.1em; }
.blessed { background: #e6f4ea; border: 1px solid #34a853; }
.rejected { background: #fce8e6; border: 1px solid #d93025; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
td.fail { color: #d93025; font-weight: bold; } td.pass { color: #188038; }
table.lineage td { text-align: left; }
img.plot { max-width: 100%; display: block; margin: .5em 0; }
.gallery { display: flex; flex-wrap: wrap; gap: .6em; }
.gallery figure { margin: 0; width: 110px; font-size: .78em; text-align: center; }
.gallery img { width: 96px; height: 96px; object-fit: contain; background: #eee; }
.muted { color: #666; } code { background: #f5f5f5; padding: 0 .2em; }
</style></head>
<body>
<h1>$title</h1>
<p class="muted">pipeline run <code>$run_id</code></p>
<div class="verdict $verdict_class">$verdict</div>
$failures
<h2>Blessing: thresholds</h2>
<p>$baseline_note</p>
$thresholds
<h2>Candidate vs baseline</h2>
$comparison
<h2>Training</h2>
$training
<h2>Confusion matrix</h2>
$confusion
<h2>Per-class metrics</h2>
$per_class
<h2>Slices</h2>
$slices
<h2>Misclassified examples</h2>
$gallery
<h2>Data and lineage</h2>
$lineage
<h2>History</h2>
$history
</body></html>
""")


def _img(path: Optional[str], alt: str) -> str:
    if path is None:
        return f'<p class="muted">no {html.escape(alt)} recorded</p>'
    with open(path, "rb") as f:
        uri = data_uri(f.read(), "image/png")
    return f'<img class="plot" src="{uri}" alt="{html.escape(alt)}">'


def _verdict(data: RunData) -> Tuple[str, str]:
    s = data.summary
    accuracy = "" if s.accuracy is None else f" Eval accuracy {s.accuracy:.4f}" + (
        f" ({format_interval(s.accuracy_interval, s.interval_level)}, bootstrap)"
        if s.accuracy_interval else "") + "."
    if not s.blessed:
        return "rejected", "NOT BLESSED: nothing was pushed and the champion is unchanged." \
            + accuracy
    pushed = html.escape(s.pushed_to or "")
    if s.push_status == "already_pushed":
        text = f"BLESSED: already serving as version {s.pushed_version} ({pushed})."
    else:
        text = f"BLESSED and pushed as version {s.pushed_version} ({pushed})."
    if s.registry_status == "registered":
        text += f" Registered as MLflow version {html.escape(str(s.registry_version))}, " \
                "now <b>champion</b>."
    elif s.registry_status == "failed":
        text += f" Registry FAILED: {html.escape(s.registry_error or '')}"
    return "blessed", text + accuracy


def _baseline_note(data: RunData) -> str:
    if not data.evaluation.has_baseline and not data.summary.had_baseline:
        return "No baseline yet (value thresholds only): this is the first blessed model."
    version = data.baseline_version
    where = f" (serving version {version})" if version else ""
    if data.summary.baseline_is_candidate:
        return f"The latest blessed model{html.escape(where)} is this model itself: it was " \
            "evaluated alone (value thresholds only) and is not pushed again."
    return f"Compared with the latest blessed model{html.escape(where)}: value and change " \
           "thresholds applied."


def _gallery(found: List[Misclassified], scanned: int, errors: int) -> str:
    if not scanned:
        return '<p class="muted">no eval examples found</p>'
    if not errors:
        return f"<p>None of the {scanned} eval examples scanned is misclassified.</p>"
    figures = "".join(
        f'<figure><img src="{m.thumbnail}" alt="{html.escape(m.image_id)}">'
        f"<figcaption>true <b>{html.escape(m.true_label)}</b><br>predicted "
        f"<b>{html.escape(m.predicted)}</b> ({m.score:.2f})<br>"
        f'<span class="muted">{html.escape(m.image_id)}</span></figcaption></figure>'
        for m in found)
    return (f"<p>{errors} of {scanned} eval examples scanned are misclassified"
            f"{f'; the first {len(found)} shown' if errors > len(found) else ''}.</p>"
            f'<div class="gallery">{figures}</div>')


def _lineage(data: RunData) -> str:
    s = data.summary
    rows = [["files seen / ingested / rejected", f"{s.files_seen} / {s.ingested} / {s.rejected}"],
            ["eval examples", _fmt_count(data.evaluation.metrics.get(EXAMPLE_COUNT))]]
    rows += [[k.replace("_", " "), v] for k, v in data.lineage.items() if v is not None]
    return _table([], rows, "lineage")


def _fmt_count(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:g}"


def _history(records: Sequence[Any], out_dir: str) -> str:
    """Accuracy per run with its CI band, and `imgpipe history`'s table."""
    points = [(r.started.strftime("%m-%d %H:%M"), r.summary.accuracy,
               r.summary.accuracy_interval, r.summary.push_status == "pushed")
              for r in records if r.summary.accuracy is not None]
    plot = plot_history(points, os.path.join(out_dir, "history.png"))
    return _img(plot, "accuracy history") + _table(
        list(run_history.HEADERS), run_history.rows(list(records)), "lineage")


def render(data: RunData, out_dir: str, history: Sequence[Any] = ()) -> str:
    """Writes the PNGs, report.json and report.html into out_dir; returns the HTML path.
    `history`: pipeline.history's records of the runs up to this one."""
    os.makedirs(out_dir, exist_ok=True)
    ev = data.evaluation
    named = {class_name(c, data.labels): v for c, v in sorted(ev.per_class.items())}
    comparison = comparison_rows(data)
    plots = {
        "training": plot_training(data.history, os.path.join(out_dir, "training_curves.png")),
        "confusion": plot_confusion(ev.confusion, data.labels,
                                    os.path.join(out_dir, "confusion_matrix.png"))
        if ev.confusion else None,
        "per_class": plot_per_class(named, os.path.join(out_dir, "per_class.png")),
        "comparison": plot_comparison(comparison,
                                      os.path.join(out_dir, "baseline_comparison.png")),
    }
    found, scanned, errors = find_misclassified(data.model_dir, data.eval_files, data.labels)
    verdict_class, verdict = _verdict(data)
    per_class_headers = ["class", "support", *PER_CLASS_METRICS, "recall interval"] + \
        (["baseline recall"] if ev.has_baseline else [])
    page = PAGE.substitute(
        title=html.escape(f"{data.lineage['pipeline']}: "
                          f"{'blessed' if data.summary.blessed else 'not blessed'}"),
        run_id=html.escape(data.run_id),
        verdict_class=verdict_class, verdict=verdict,
        failures="".join(f"<p class='fail'>✗ {html.escape(f)}</p>"
                         for f in data.summary.failures),
        baseline_note=_baseline_note(data),
        thresholds=_table(["metric", "class", "threshold", "candidate", "baseline", "diff",
                           "result"], threshold_rows(data)),
        comparison=(_img(plots["comparison"], "baseline comparison") + _table(
            ["metric", "candidate", "baseline", "diff"],
            [[n, _fmt(c), _fmt(b), _fmt(c - b, signed=True)] for n, c, b in comparison]))
        if comparison else '<p class="muted">no baseline: nothing to compare with</p>',
        training=_img(plots["training"], "training history"),
        confusion=_img(plots["confusion"], "confusion matrix"),
        per_class=_img(plots["per_class"], "per-class metrics")
        + _table(per_class_headers, per_class_rows(data)),
        slices=_table(["slice", "examples", "accuracy"],
                      [[s["slice"], _fmt_count(s["example_count"]), _fmt(s["accuracy"])]
                       for s in ev.slices]),
        gallery=_gallery(found, scanned, errors),
        lineage=_lineage(data), history=_history(history, out_dir))
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    _write_numbers(data, found, scanned, errors, os.path.join(out_dir, "report.json"))
    return path


def _write_numbers(data: RunData, found: List[Misclassified], scanned: int, errors: int,
                   path: str) -> None:
    numbers = {
        "run_id": data.run_id, "blessed": data.summary.blessed, "labels": data.labels,
        "evaluation": data.evaluation.to_dict(), "failures": data.summary.failures,
        "pushed_version": data.summary.pushed_version,
        "misclassified": {"scanned": scanned, "errors": errors,
                          "shown": [m.image_id for m in found]},
        "lineage": data.lineage,
    }
    with open(path, "w") as f:
        json.dump(numbers, f, indent=1, default=str)


def build_report(config: Any, run_id: Optional[str] = None, out_dir: Optional[str] = None) -> str:
    data = gather(config, run_id)
    out = out_dir or os.path.join(config.home, "reports", data.run_id.replace(":", "-"))
    records = run_history.history(config)
    upto = next((i for i, r in enumerate(records) if r.run_id == data.run_id), len(records))
    return render(data, out, records[:upto + 1])
