"""A nightly schedule on real photos: flower_photos cut into 4 date spans, four local runs.

In a temporary folder the photos are cut into spans 2026-01-01 .. 2026-01-04 (a quarter of
each class in each, as hard links or copies); span k arrives before run k. Each scheduled
run (one home, caching on, train.warm_start as configured) prints the images it ingested,
its time per component, eval accuracy with its 95% CI, blessed, the pushed version and
the ratio of its time to a from-scratch run over the same window (a fresh home,
train.warm_start=none), measured here, right after it (the first night is one). The from-scratch run is also the
cold peer of the scheduled run's warm start: their Trainer times and accuracies are
printed side by side (same spans, same image ids, so the same eval split).

    .venv/bin/python bench/retrain_bench.py [--seeds 42,1,2] [--runs 4] [--set k=v ...]
"""
import argparse
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
SHARED = Path(os.environ.get("IMGPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
DATES = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")


def cut_spans(source: Path, waiting: Path) -> Dict[str, int]:
    """A quarter of each class per date span, as hard links (copies across file systems:
    ingestion rejects symlinks leading out of the data folder); images per span."""
    counts = {}
    for k, date in enumerate(DATES):
        counts[date] = 0
        for label in sorted(p.name for p in source.iterdir() if p.is_dir()):
            files = sorted((source / label).iterdir())
            quarter = files[k * len(files) // 4:(k + 1) * len(files) // 4]
            (waiting / date / label).mkdir(parents=True)
            for f in quarter:
                try:
                    os.link(f, waiting / date / label / f.name)
                except OSError:
                    shutil.copy2(f, waiting / date / label / f.name)
            counts[date] += len(quarter)
    return counts


def run(overrides: Tuple[str, ...]) -> Tuple[object, Dict[str, Tuple[float, bool]], float]:
    """(summary, component -> (seconds, cached), wall seconds) of one local run."""
    from pipeline.config import load_config
    from pipeline.runners.local import run_local

    out = io.StringIO()
    started = time.monotonic()
    summary = run_local(load_config(overrides=overrides), out=out)
    wall = time.monotonic() - started
    steps = {name: (float(seconds), bool(cached)) for name, seconds, cached in re.findall(
        r"^\s+< (\S+)\s+([\d.]+) s( \(cached\))?$", out.getvalue(), flags=re.M)}
    return summary, steps, wall


def _ci(summary) -> str:
    if summary.accuracy is None:
        return "n/a"
    low, high = summary.accuracy_interval or (float("nan"),) * 2
    return f"{summary.accuracy:.3f} [{low:.3f}, {high:.3f}]"


def schedule(seed: int, runs: int, extra: Tuple[str, ...], work: Path) -> List[dict]:
    waiting, photos = work / "waiting", work / "photos"
    photos.mkdir(parents=True)
    counts = cut_spans(SHARED / "images" / "flower_photos", waiting)
    source = f"data.source={photos}/{{YYYY}}-{{MM}}-{{DD}}"
    base = (source, f"train.seed={seed}", "registry.enabled=false", *extra)
    rows = []
    for k, date in enumerate(DATES[:runs], 1):
        shutil.move(str(waiting / date), str(photos / date))
        summary, steps, wall = run(base + (f"home={work / 'scheduled'}",))
        if k == 1:  # the first night is a from-scratch run over its window
            scratch, scratch_steps, scratch_wall = summary, steps, wall
        else:
            scratch, scratch_steps, scratch_wall = run(
                base + (f"home={work / f'scratch{k}'}", "train.warm_start=none"))
        rows.append({"run": k, "span": date, "images": counts[date], "summary": summary,
                     "steps": steps, "wall": wall, "scratch": scratch,
                     "scratch_steps": scratch_steps, "scratch_wall": scratch_wall})
        start = summary.started_from or {}
        print(f"seed {seed} run {k} (span {date} arrives, window {k} spans):", flush=True)
        print(f"  images ingested: {summary.ingested_this_run} (window: {summary.ingested})")
        print("  per component: " + ", ".join(
            f"{n} {'cached' if c else f'{s:.1f} s'}" for n, (s, c) in steps.items()))
        print(f"  accuracy {_ci(summary)}; blessed {'yes' if summary.blessed else 'no'}; "
              f"pushed version {summary.pushed_version if summary.pushed_to else '-'}; "
              f"started from {start.get('started_from')} {start.get('champion_version') or ''}")
        print(f"  run time {wall:.1f} s = {wall / scratch_wall:.2f}x the from-scratch run over "
              f"the same window ({scratch_wall:.1f} s, accuracy {_ci(scratch)})")
        trainer, cold = steps.get("Trainer", (0, True)), scratch_steps["Trainer"][0]
        print(f"  Trainer {'cached' if trainer[1] else f'{trainer[0]:.1f} s'} vs cold "
              f"{cold:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--runs", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--keep", help="keep the work folders here")
    args = parser.parse_args()
    if not (SHARED / "images" / "flower_photos").is_dir():
        sys.exit(f"{SHARED}/images/flower_photos not found (set IMGPIPE_SHARED_DATA)")
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"retrain-bench-{seed}-", dir=args.keep))
        try:
            results[seed] = schedule(seed, args.runs, tuple(args.overrides), work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    print("\n== warm start vs cold, run 2 and later (same window, same eval split) ==")
    for seed, rows in results.items():
        for row in rows[1:]:
            warm = row["steps"].get("Trainer", (0.0, True))
            print(f"seed {seed} run {row['run']}: Trainer {warm[0]:.1f} s warm vs "
                  f"{row['scratch_steps']['Trainer'][0]:.1f} s cold "
                  f"({warm[0] / row['scratch_steps']['Trainer'][0]:.2f}x); accuracy "
                  f"{_ci(row['summary'])} warm vs {_ci(row['scratch'])} cold")


if __name__ == "__main__":
    main()
