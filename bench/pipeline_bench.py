"""Local pipeline: wall time and peak RSS, fresh and re-run, on the demo and on flowers5.

Each case runs `imgpipe run` in a child process in a fresh home, then again with nothing
changed. Printed as ratios: against the re-run's own fresh run (measured here), and
against the naive-TFX anchor measured on this kind of machine (a tiny local run of the
stock TFX recipe: 328 s, 3.0 GB). Also prints the transformed-examples-to-encoded-bytes
ratio (images must stay encoded through Transform).

The machine probe (a fixed workload, timed before and after each case) shows how fast the
machine ran meanwhile: on a shared machine the same run can take half again as long.

    .venv/bin/python bench/pipeline_bench.py [--cases demo,flowers5] [--repeat N] [--keep DIR]
"""
import argparse
import glob
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

from process_stats import machine_probe, measure  # bench/ is on sys.path when a script here runs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("IMGPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
NAIVE_ANCHOR = {"wall_s": 328.0, "rss_gb": 3.0}
GOALS = {"demo": {"wall_s": 120.0, "rss_gb": 2.0, "rerun_s": 60.0}}

CASES: Dict[str, List[str]] = {
    "demo": ["--config", str(REPO / "pipeline/configs/demo.yaml")],
    "flowers5": ["--config", str(REPO / "pipeline/configs/demo.yaml"),
                 "--data", str(SHARED / "images/flowers5_128px"),
                 "--set", "train.image_size=96", "--set", "train.phase1_epochs=10",
                 "--set", "train.phase2_epochs=1", "--set", "eval.min_accuracy=0.5"],
}


def transformed_ratio(home: Path) -> float:
    """Bytes of the transformed TFRecords / encoded bytes of the ingested images."""
    import tensorflow as tf

    from trainer import features

    root = home / "pipelines"
    transformed = sum(os.path.getsize(f) for f in glob.glob(
        str(root / "*/Transform/transformed_examples/*/*/*.gz")))
    encoded = 0
    for f in glob.glob(str(root / "*/ImageExampleGen/examples/*/*/*.gz")):
        for record in tf.data.TFRecordDataset(f, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            encoded += len(example.features.feature[features.IMAGE_KEY].bytes_list.value[0])
    return transformed / encoded


def last_run(home: Path) -> dict:
    """The summary `imgpipe run` left in home (its component times and wall time)."""
    from pipeline.run_summary import LAST_RUN_FILE

    return json.loads((home / LAST_RUN_FILE).read_text())


def steps(summary: dict, wall_s: float) -> str:
    """The run's own step times, and the rest of the wall time (start-up: imports)."""
    parts = [f"start-up and exit {wall_s - summary['wall_seconds']:.1f}"]
    parts += [f"{n} {t:.1f}" for n, t in summary["component_seconds"].items()]
    return ", ".join(parts)


def run_case(name: str, keep: str) -> Dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"bench_{name}_", dir=keep))
    cmd = [str(REPO / ".venv/bin/imgpipe"), "run", "--home", str(home), *CASES[name]]
    probe = machine_probe()
    fresh = measure(cmd)
    fresh_run = last_run(home)
    rerun = measure(cmd)
    rerun_run = last_run(home)
    probe_after = machine_probe()
    print(f"\n--- {name} (home {home}) ---\n" + fresh["output"].split("== summary ==")[-1].strip())
    print(f"fresh, seconds: {steps(fresh_run, fresh['wall_s'])}")
    print(f"re-run, seconds: {steps(rerun_run, rerun['wall_s'])}")
    print(f"machine probe: {probe:.2f} s before, {probe_after:.2f} s after")
    return {"fresh_s": fresh["wall_s"], "fresh_gb": fresh["rss_gb"], "rerun_s": rerun["wall_s"],
            "rerun_gb": rerun["rss_gb"], "transformed_ratio": transformed_ratio(home),
            "probe_s": (probe + probe_after) / 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="demo,flowers5")
    parser.add_argument("--keep", default=None, help="parent dir for the run homes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (all printed)")
    args = parser.parse_args()
    results = []
    for name in args.cases.split(","):
        if name == "flowers5" and not (SHARED / "images/flowers5_128px").is_dir():
            print(f"skipping flowers5: {SHARED}/images/flowers5_128px not found")
            continue
        results += [(name, run_case(name, args.keep)) for _ in range(args.repeat)]
    print("\ncase      fresh s  peak GB  re-run s  fresh/naive  RSS/naive  re-run/fresh  "
          "transformed/encoded  probe s")
    for name, r in results:
        print(f"{name:9} {r['fresh_s']:7.1f}  {r['fresh_gb']:7.2f}  {r['rerun_s']:8.1f}  "
              f"{r['fresh_s'] / NAIVE_ANCHOR['wall_s']:11.2f}  "
              f"{r['fresh_gb'] / NAIVE_ANCHOR['rss_gb']:9.2f}  "
              f"{r['rerun_s'] / r['fresh_s']:12.2f}  {r['transformed_ratio']:19.3f}  "
              f"{r['probe_s']:7.2f}")
        goal = GOALS.get(name)
        if goal:
            print(f"  goals: fresh <= {goal['wall_s']:.0f} s: "
                  f"{'met' if r['fresh_s'] <= goal['wall_s'] else 'MISSED'}; peak <= "
                  f"{goal['rss_gb']} GB: {'met' if r['fresh_gb'] <= goal['rss_gb'] else 'MISSED'}; "
                  f"re-run <= {goal['rerun_s']:.0f} s: "
                  f"{'met' if r['rerun_s'] <= goal['rerun_s'] else 'MISSED'}; transformed <= 1.1x: "
                  f"{'met' if r['transformed_ratio'] <= 1.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
