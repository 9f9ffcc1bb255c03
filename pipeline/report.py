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
import argparse
import base64
import dataclasses
import html
import io
import json
import os
import string
from typing import Any, Dict, List, Optional, Sequence, Tuple

GALLERY_LIMIT = 48  # misclassified thumbnails shown
GALLERY_SCAN = 5000  # eval examples predicted at most to find them (bounds report time)
THUMBNAIL_SIDE = 96


@dataclasses.dataclass
class RunData:
    run_id: str
    summary: Any  # pipeline.local.RunSummary
    evaluation: Any  # pipeline.evaluation.Evaluation
    labels: List[str]
    history: List[Dict[str, Any]]  # history.json phases ([] when absent)
    model_dir: str
    eval_files: List[str]
    card: Dict[str, Any]  # the pushed version's model card ({} when nothing was pushed)
    lineage: Dict[str, Any]
    baseline_version: Optional[int] = None  # serving version of the blessed model found


@dataclasses.dataclass
class Misclassified:
    image_id: str
    true_label: str
    predicted: str
    score: float
    thumbnail: str  # data: URI


# -- gathering -----------------------------------------------------------------------------
def _read_json(path: str) -> Any:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def gather(config: Any, run_id: Optional[str] = None) -> RunData:
    """Everything the report shows for one run, found through MLMD."""
    import tensorflow as tf
    from tfx.utils import path_utils

    from pipeline import evaluation, local, registry

    with local.open_store(config) as m:
        run = local.find_run(m.store, config.name, run_id)
        artifacts = local.run_artifacts(m.store, run)
    missing = [k for k in (("Trainer", "model"), ("Evaluator", "evaluation")) if k not in artifacts]
    if missing:
        raise RuntimeError(f"run {run.name} has no {', '.join('.'.join(k) for k in missing)} "
                           "output (did it fail before evaluating?)")
    model, evaluated = artifacts[("Trainer", "model")], artifacts[("Evaluator", "evaluation")]
    model_run = artifacts.get(("Trainer", "model_run"))
    examples = artifacts.get(("ImageExampleGen", "examples"))
    pushed = artifacts.get(("Pusher", "pushed_model"))
    card = (_read_json(os.path.join(pushed.uri, registry.CARD_FILE)) if pushed else None) or {}
    return RunData(
        run_id=run.name,
        summary=local.summarize_latest_run(config, run.name),
        evaluation=evaluation.read_evaluation(evaluated.uri),
        labels=evaluation.model_labels(model.uri),
        history=(_read_json(os.path.join(model_run.uri, "history.json")) if model_run else None)
        or [],
        model_dir=path_utils.serving_model_path(model.uri),
        eval_files=sorted(tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*")))
        if examples else [],
        card=card,
        lineage={"pipeline": config.name, "run": run.name, "model_id": model.id,
                 "model_uri": model.uri, "evaluation_id": evaluated.id,
                 "examples_id": examples.id if examples else None,
                 "pushed_model_id": pushed.id if pushed else None,
                 "config_hash": card.get("config_hash") or config.fingerprint()},
        baseline_version=_baseline_version(artifacts.get(("Evaluator", "blessing"))))


def _baseline_version(blessing: Any) -> Optional[int]:
    """The serving version of the blessed model the Evaluator found, if any."""
    from pipeline import local
    from pipeline.evaluation import BASELINE_SERVING_VERSION

    return local.artifact_property(blessing, BASELINE_SERVING_VERSION) if blessing else None


def _thumbnail(image_bytes: bytes) -> str:
    from PIL import Image

    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    scale = THUMBNAIL_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Nearest when enlarging keeps tiny images' pixels crisp instead of a blur.
    image = image.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
    return _data_uri(_png_bytes(image), "image/png")


def _png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def find_misclassified(model_dir: str, files: Sequence[str], labels: Sequence[str],
                       limit: int = GALLERY_LIMIT, scan: int = GALLERY_SCAN
                       ) -> Tuple[List[Misclassified], int, int]:
    """Misclassified eval examples (at most `limit`), examples scanned, errors found."""
    import tensorflow as tf

    from trainer import features

    if not files:
        return [], 0, 0
    predict = tf.saved_model.load(model_dir).signatures["serving_tf_example"]
    found: List[Misclassified] = []
    scanned = errors = 0
    dataset = tf.data.TFRecordDataset(list(files), compression_type="GZIP").take(scan).batch(64)
    for records in dataset:
        batch = predict(examples=records)["probabilities"].numpy()
        for record, probabilities in zip(records.numpy(), batch):
            scanned += 1
            feature = tf.train.Example.FromString(record).features.feature
            truth = feature[features.LABEL_KEY].bytes_list.value[0].decode().strip()
            predicted = labels[int(probabilities.argmax())]
            if predicted == truth:
                continue
            errors += 1
            if len(found) < limit:
                found.append(Misclassified(
                    image_id=feature[features.IMAGE_ID_KEY].bytes_list.value[0].decode(),
                    true_label=truth, predicted=predicted, score=float(probabilities.max()),
                    thumbnail=_thumbnail(feature[features.IMAGE_KEY].bytes_list.value[0])))
    return found, scanned, errors


# -- plots ---------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str, description: Optional[Dict[str, Any]] = None) -> str:
    metadata = {"Description": json.dumps(description)} if description else None
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata=metadata)
    _pyplot().close(fig)
    return path


def plot_training(history: List[Dict[str, Any]], path: str) -> Optional[str]:
    """Loss and accuracy per epoch across both phases (history.json as the Trainer writes
    it: a list of phases with 0-based `epochs`, `history`, `learning_rates`, `best_epoch`);
    phase 2's start marked, each phase's restored best epoch starred."""
    if not history:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            xs, ys = [], []
            for phase in history:
                values = phase["history"].get(prefix + metric, [])
                xs += [e + 1 for e in phase["epochs"][:len(values)]]
                ys += values
            if ys:
                ax.plot(xs, ys, style, marker="o", markersize=3,
                        label=("validation " if prefix else "train ") + metric)
        for phase in history:
            best = phase.get("best_epoch")
            values = phase["history"].get("val_" + metric, [])
            if best is not None and best in phase["epochs"][:len(values)]:
                ax.plot(best + 1, values[phase["epochs"].index(best)], "*", markersize=12,
                        color="gold", markeredgecolor="black")
        for phase in history[1:]:
            start = phase["epochs"][0] + 1 if phase["epochs"] else None
            if start is None:
                continue
            ax.axvline(start - 0.5, color="grey", linestyle=":")
            rate = phase["learning_rates"][0] if phase.get("learning_rates") else None
            ax.annotate(f"{phase['name']}" + (f" (lr {rate:.2g})" if rate else ""),
                        xy=(start - 0.4, 0.97), xycoords=("data", "axes fraction"),
                        fontsize=8, color="grey", va="top")
        ax.set_xlabel("epoch (* best, restored)")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion(matrix: List[List[float]], labels: Sequence[str], path: str) -> str:
    """Counts as TFMA computed them; the PNG's Description metadata holds the same numbers."""
    plt = _pyplot()
    n = len(matrix)
    names = [labels[i] if i < len(labels) else f"#{i}" for i in range(n)]
    side = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    peak = max([max(row) for row in matrix] or [0])
    for i in range(n):
        for j in range(n):
            value = matrix[i][j]
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=9,
                    color="white" if value > peak / 2 else "black")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (eval split)")
    return _save(fig, path, {"labels": names, "matrix": matrix})


def plot_per_class(per_class: Dict[str, Dict[str, float]], path: str) -> Optional[str]:
    from pipeline.evaluation import PER_CLASS_METRICS

    if not per_class:
        return None
    plt = _pyplot()
    names = list(per_class)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 3), 3.8))
    width = 0.8 / len(PER_CLASS_METRICS)
    for k, metric in enumerate(PER_CLASS_METRICS):
        ax.bar([i + k * width for i in range(len(names))],
               [per_class[n].get(metric, 0.0) for n in names], width, label=metric)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=45,
                  ha="right")
    ax.set_ylim(0, 1.2)  # headroom for the legend above the bars
    ax.set_title("per-class metrics")
    ax.legend(fontsize=8, ncol=len(PER_CLASS_METRICS), loc="upper center")
    return _save(fig, path)


def plot_comparison(rows: List[Tuple[str, float, float]], path: str) -> Optional[str]:
    """Horizontal bars: candidate against baseline, one pair per compared metric."""
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r[1] for r in rows], 0.4, label="candidate")
    ax.barh([y - 0.2 for y in ys], [r[2] for r in rows], 0.4, label="baseline")
    ax.set_yticks(list(ys), [r[0] for r in rows])
    ax.set_xlim(0, 1.05)
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    ax.set_title("candidate vs baseline")
    return _save(fig, path)


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
        label = "all" if cid is None else _class_name(cid, data.labels)
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
    from pipeline.evaluation import ACCURACY, RECALL, TOP_K_ACCURACY

    ev = data.evaluation
    rows = [(m, ev.metrics[m], ev.baseline[m]) for m in (ACCURACY, TOP_K_ACCURACY)
            if m in ev.metrics and m in ev.baseline]
    for cid in sorted(ev.per_class):
        if RECALL in ev.per_class[cid] and RECALL in ev.baseline_per_class.get(cid, {}):
            rows.append((f"recall {_class_name(cid, data.labels)}", ev.per_class[cid][RECALL],
                         ev.baseline_per_class[cid][RECALL]))
    return rows


def _class_name(class_id: int, labels: Sequence[str]) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else f"#{class_id}"


def per_class_rows(data: RunData) -> List[List[str]]:
    from pipeline.evaluation import PER_CLASS_METRICS, RECALL

    ev = data.evaluation
    rows = []
    for cid in sorted(ev.per_class):
        support = sum(ev.confusion[cid]) if cid < len(ev.confusion) else None
        row = [_class_name(cid, data.labels), f"{support:g}" if support is not None else "–"]
        row += [_fmt(ev.per_class[cid].get(m)) for m in PER_CLASS_METRICS]
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
</body></html>
""")


def _data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def _img(path: Optional[str], alt: str) -> str:
    if path is None:
        return f'<p class="muted">no {html.escape(alt)} recorded</p>'
    with open(path, "rb") as f:
        uri = _data_uri(f.read(), "image/png")
    return f'<img class="plot" src="{uri}" alt="{html.escape(alt)}">'


def _verdict(data: RunData) -> Tuple[str, str]:
    s = data.summary
    if not s.blessed:
        return "rejected", "NOT BLESSED: nothing was pushed and the champion is unchanged."
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
    return "blessed", text


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
            ["eval examples", _fmt_count(data.evaluation.metrics.get("example_count"))]]
    rows += [[k.replace("_", " "), v] for k, v in data.lineage.items() if v is not None]
    return _table([], rows, "lineage")


def _fmt_count(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:g}"


def render(data: RunData, out_dir: str) -> str:
    """Writes the PNGs, report.json and report.html into out_dir; returns the HTML path."""
    from pipeline.evaluation import PER_CLASS_METRICS

    os.makedirs(out_dir, exist_ok=True)
    ev = data.evaluation
    named = {_class_name(c, data.labels): v for c, v in sorted(ev.per_class.items())}
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
    per_class_headers = ["class", "support", *PER_CLASS_METRICS] + \
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
        lineage=_lineage(data))
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
    return render(data, out)


# -- command -------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    config = _load(args)
    try:
        path = build_report(config, args.run, args.out)
    except RuntimeError as e:
        print(f"imgpipe report: {e}")
        return 1
    print(f"report written to {path}")
    return 0


def add_commands(subparsers: Any) -> None:
    from pipeline.cli import _config_args

    parser = subparsers.add_parser(
        "report", help="an HTML page (+ PNGs) on a run: verdict, curves, confusion matrix, "
        "per-class metrics, baseline diff, misclassified images")
    parser.add_argument("run", nargs="?", help="pipeline run id (default: the newest run)")
    parser.add_argument("--out", help="output folder (default <home>/reports/<run>)")
    _config_args(parser)
    parser.set_defaults(func=cmd_report)
