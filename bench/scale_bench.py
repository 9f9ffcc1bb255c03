"""How the local pipeline scales: each stage's time and the run's peak RSS at 1x, 4x and
16x of a base set, and Beam's direct multi_processing against in_memory ingestion.

The data: a base set of images from flowers5 (the same number per class), each turned
into `scale` distinct near-copies (near_copies.py: a 0-6% crop per side, brightness
x0.92-1.08, resized back to 128 px, JPEG quality 80-92): 1x, 4x and 16x are distinct
files of the same classes, as bursts and re-exports are. Ingestion groups each photo's
copies and puts the group in one split, so eval accuracy measures unseen photos at
every scale (with crops of 80-100% of the side, which no near-duplicate detection
links, 16x reached 0.9975: its eval photos had twins in train). Written under a temporary directory, never
into the project. Each scale runs `imgpipe run` in a fresh home (a child process,
measured by process_stats.measure: wall time, peak RSS of the whole process tree),
with Lite0 at a small image size and a fixed number of epochs (early stopping off, so
every scale trains the same epochs). Stage times are the run's own per-component lines.
The summary lines also give the near-duplicate groups ingestion found.

Growth 1x->16x is (time at 16x / time at 1x) / 16: at most 1 means a stage grows at most
linearly with the data; fixed costs (start-up, tracing) flatter it, so the table also gives
4x->16x, where they weigh less. Peak RSS is the whole run's (every stage runs in the one
process, bar Beam's multi_processing workers). The ingestion comparison runs the pipeline once more on the
largest scale with beam.direct_running_mode=multi_processing (2 workers) and compares
ImageExampleGen's time with the in_memory run's at the same size, and once more with
train.feature_cache_max_mb=1, so that both phases' feature caches spill to disk, and
compares the Trainer's time and the peak RSS with the in-memory cache's at the same size.

    .venv/bin/python bench/scale_bench.py [--base 1000] [--scales 1,4,16] [--keep DIR]
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

from near_copies import near_copy  # bench/ is on sys.path when a script here runs
from pipeline_bench import REPO, SHARED, last_run
from process_stats import machine_probe, measure

from pipeline import component_ids as ids  # noqa: E402  (pipeline_bench put REPO on sys.path)

FLOWERS = SHARED / "images" / "flowers5_128px"
STAGES = (ids.EXAMPLE_GEN, ids.TRANSFORM, ids.TRAINER, ids.EVALUATOR)
SETTINGS = ["train.backbone=efficientnet_lite0", "train.image_size=96", "train.phase1_epochs=5", "train.phase2_epochs=1",
            "train.early_stopping_patience=0", "train.reduce_lr_patience=0",
            "eval.min_accuracy=0.3"]


def derive_images(base: int, scale: int, out: Path, seed: int = 0) -> int:
    """`base` flowers5 images (an equal share per class), `scale` near-copies of each,
    as JPEG files in out/<class>/. Returns the number written."""
    from PIL import Image

    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    per_class = base // len(classes)
    written = 0
    for label in classes:
        files = sorted((FLOWERS / label).iterdir())[:per_class]
        (out / label).mkdir(parents=True, exist_ok=True)
        for path in files:
            with Image.open(path) as im:
                image = im.convert("RGB")
            rng = random.Random(f"{seed}:{label}:{path.name}")
            copies = set()  # distinct bytes: the pipeline rejects duplicate content
            while len(copies) < scale:
                copies.add(near_copy(image, rng, size=(128, 128)))
            for v, data in enumerate(sorted(copies)):
                (out / label / f"{path.stem}_v{v}.jpg").write_bytes(data)
                written += 1
    return written


def run(data: Path, home: Path, beam_mode: str = "in_memory", *extra: str) -> Dict:
    sets = [*SETTINGS, f"beam.direct_running_mode={beam_mode}",
            f"beam.direct_num_workers={2 if beam_mode == 'multi_processing' else 1}", *extra]
    cmd = [str(REPO / ".venv/bin/imgpipe"), "run", "--home", str(home), "--data", str(data),
           *[a for s in sets for a in ("--set", s)]]
    result = measure(cmd)
    summary = result["output"].split("== summary ==")[-1].strip().splitlines()
    return {"wall_s": result["wall_s"], "rss_gb": result["rss_gb"],
            "stages": last_run(home)["component_seconds"],
            "summary": [line for line in summary
                        if line.startswith(("images:", "near-duplicate", "eval"))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1000, help="images in the 1x set")
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--keep", default=None, help="parent dir for the data and homes "
                        "(kept); default: a temporary directory, removed")
    args = parser.parse_args()
    if not FLOWERS.is_dir():
        print(f"scale_bench: skipped, {FLOWERS} not found (point IMGPIPE_SHARED_DATA at "
              f"the shared data)")
        return
    scales = [int(s) for s in args.scales.split(",")]
    root = Path(args.keep or tempfile.mkdtemp(prefix="scale_bench_"))
    print(f"base set: {args.base} flowers5 images (5 classes), scales {scales}; settings: "
          f"{', '.join(SETTINGS)}; ImageNet weights; "
          f"{os.cpu_count()} CPUs; work dir {root}", flush=True)
    try:
        results: Dict[int, Dict] = {}
        probes: List[float] = [machine_probe()]
        for scale in scales:
            data = root / f"data_{scale}x"
            n = derive_images(args.base, scale, data)
            results[scale] = run(data, root / f"home_{scale}x")
            results[scale]["images"] = n
            probes.append(machine_probe())
            r = results[scale]
            print(f"{scale:3d}x: {n} images, {r['wall_s']:.1f} s, peak RSS {r['rss_gb']:.2f} GB; "
                  + "; ".join(r["summary"]), flush=True)
        top = max(scales)
        multi = run(root / f"data_{top}x", root / f"home_{top}x_multi", "multi_processing")
        probes.append(machine_probe())
        print(f"{top:3d}x multi_processing: {multi['wall_s']:.1f} s, peak RSS "
              f"{multi['rss_gb']:.2f} GB", flush=True)
        spilled = run(root / f"data_{top}x", root / f"home_{top}x_spilled", "in_memory",
                      "train.feature_cache_max_mb=1")
        probes.append(machine_probe())
        print(f"{top:3d}x feature cache spilled: {spilled['wall_s']:.1f} s, peak RSS "
              f"{spilled['rss_gb']:.2f} GB", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_table(results, scales, multi, spilled, probes)


def _eval_line(result: Dict) -> str:
    return "; ".join(line for line in result["summary"] if line.startswith("eval"))


def print_table(results: Dict[int, Dict], scales: List[int], multi: Dict, spilled: Dict,
                probes: List[float]) -> None:
    lo, hi = scales[0], scales[-1]
    data_ratio = results[hi]["images"] / results[lo]["images"]
    others = sorted(set().union(*(r["stages"] for r in results.values())) - set(STAGES))
    mid = scales[-2] if len(scales) > 2 else lo
    mid_ratio = results[hi]["images"] / results[mid]["images"]
    header = f"{'stage':22}" + "".join(f"{f'{s}x s':>9}" for s in scales) + \
        f"  growth {lo}x->{hi}x (time ratio / data ratio {data_ratio:.0f})" + \
        f"  growth {mid}x->{hi}x (/ {mid_ratio:.0f})"
    print("\n" + header)
    rows = [*STAGES, "other components", "whole run (wall)"]
    for stage in rows:
        def t(s, stage=stage):
            st = results[s]["stages"]
            if stage == "whole run (wall)":
                return results[s]["wall_s"]
            if stage == "other components":
                return sum(v for k, v in st.items() if k in others)
            return st.get(stage, float("nan"))
        times = [t(s) for s in scales]
        ratio = times[-1] / times[0] if times[0] else float("nan")
        marginal = times[-1] / times[scales.index(mid)] if times[scales.index(mid)] else \
            float("nan")
        print(f"{stage:22}" + "".join(f"{x:9.1f}" for x in times) +
              f"  {ratio:6.2f}x / {data_ratio:.0f} = {ratio / data_ratio:.2f}" + " " * 27 +
              f"{marginal:6.2f}x / {mid_ratio:.0f} = {marginal / mid_ratio:.2f}")
    rss = [results[s]["rss_gb"] for s in scales]
    print(f"{'peak RSS, GB':22}" + "".join(f"{x:9.2f}" for x in rss) +
          f"  {rss[-1] / rss[0]:6.2f}x")
    print(f"{'images':22}" + "".join(f"{results[s]['images']:9d}" for s in scales))
    print(f"(other components: {', '.join(others)})")
    mem = results[hi]["stages"][ids.EXAMPLE_GEN]
    mp = multi["stages"][ids.EXAMPLE_GEN]
    print(f"\ningestion at {hi}x ({results[hi]['images']} images): multi_processing "
          f"(2 workers) {mp:.1f} s vs in_memory {mem:.1f} s: {mp / mem:.2f}x the time; "
          f"whole run {multi['wall_s'] / results[hi]['wall_s']:.2f}x, peak RSS "
          f"{multi['rss_gb']:.2f} vs {results[hi]['rss_gb']:.2f} GB")
    trained, in_memory = spilled["stages"][ids.TRAINER], results[hi]["stages"][ids.TRAINER]
    print(f"feature cache at {hi}x, spilled to disk (train.feature_cache_max_mb=1) vs in "
          f"memory: Trainer {trained:.1f} vs {in_memory:.1f} s: {trained / in_memory:.2f}x the "
          f"time; peak RSS {spilled['rss_gb']:.2f} vs {results[hi]['rss_gb']:.2f} GB; "
          + _eval_line(spilled) + " vs " + _eval_line(results[hi]))
    print(f"machine probe (fixed workload, s) between runs: "
          f"{', '.join(f'{p:.2f}' for p in probes)}")


if __name__ == "__main__":
    sys.exit(main())
