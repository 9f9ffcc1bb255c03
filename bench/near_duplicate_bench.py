"""Near-duplicates: the threshold's precision and recall on real photos, the ingestion
cost of fingerprints and group splits, and eval accuracy on a folder of bursts.

Three parts (all by default, or --parts threshold,ingestion,training):

threshold  flower_photos and hymenoptera: each photo's fingerprint and those of two
           near-copies (near_copies.py, resized to 50-100%). For each candidate
           distance: recall, the share of copies within it of their original and the
           share in their original's group (groups of originals + copies); precision,
           the pairs of distinct photos within it (same class / other classes) and the
           photos that merged into groups among the originals. --sheets DIR writes the
           merged pairs side by side as PNGs, to look at.
ingestion  ImageExampleGen (the executor, in a child process) on 16 near-copies of 1,000
           flowers5 photos (scale_bench's 16x set), with this tree's code and with the
           code of --baseline (the last revision before fingerprints; read with
           `git archive`), alternately, three times each: the ratios of the best wall
           and CPU times (CPU time, of the whole process, moves less with the load of
           a shared machine).
training   flower_photos alone, then flower_photos plus two near-copies of every photo
           (in a temporary folder), each a default `imgpipe run` (no setting changed):
           the eval accuracy with its 95% CI. Before group splits the bursts scored
           1.000 (eval photos had twins in train); now they must fall within the
           originals' interval.

    IMGPIPE_SHARED_DATA=/path/to/shared/data .venv/bin/python bench/near_duplicate_bench.py
"""
import argparse
import io
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

from near_copies import near_copy  # bench/ is on sys.path when a script here runs
from pipeline_bench import REPO, SHARED
from process_stats import machine_probe, measure

sys.path.insert(0, str(REPO))

from PIL import Image, ImageDraw  # noqa: E402

from components.image_example_gen import fingerprint as fp  # noqa: E402
from components.image_example_gen import near_duplicates as nd  # noqa: E402

IMAGES = SHARED / "images"
DISTANCES = (4, 6, 8, 10, 12, 14, 16)
BASELINE = "e296012"  # the last revision splitting by a hash of the image path
COPIES = 2
ROUNDS = 3  # ingestion runs per code version, alternated (a shared machine's load varies)


def _photos(dataset: str) -> List[Path]:
    return sorted(p for p in (IMAGES / dataset).rglob("*") if p.is_file())


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _fingerprint(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return fp.fingerprint(image, data)


# -- threshold ------------------------------------------------------------------------------
def threshold(sheets: Path = None) -> None:
    for dataset in ("flower_photos", "hymenoptera"):
        paths = _photos(dataset)
        labels = [p.parent.name for p in paths]
        originals = [_fingerprint(p.read_bytes()) for p in paths]
        copies = []  # (original's position, fingerprint)
        for i, path in enumerate(paths):
            rng = random.Random(f"{dataset}:{path.name}")
            copies += [(i, _fingerprint(near_copy(_rgb(path), rng, scale=(0.5, 1.0))))
                       for _ in range(COPIES)]
        everything = originals + [c for _, c in copies]
        print(f"\n{dataset}: {len(paths)} photos, {len(copies)} near-copies")
        print(f"{'distance':>8} {'copy recall':>11} {'grouped':>8} {'pairs same':>10} "
              f"{'pairs other':>11} {'photos merged':>13}")
        for k in DISTANCES:
            pairs = nd.near_pairs(originals, k)
            same = sum(labels[a] == labels[b] for a, b in pairs.tolist())
            merged = nd.components(len(originals), pairs)
            in_groups = sum(n for n in _sizes(merged).values() if n > 1)
            recall = sum(fp.distance(originals[i], c) <= k for i, c in copies) / len(copies)
            roots = nd.components(len(everything), nd.near_pairs(everything, k))
            grouped = sum(roots[len(originals) + j] == roots[i]
                          for j, (i, _) in enumerate(copies)) / len(copies)
            print(f"{k:8d} {recall:11.3f} {grouped:8.3f} {same:10d} {len(pairs) - same:11d} "
                  f"{in_groups:13d}")
            if sheets is not None and len(pairs):
                _sheet([(paths[a], paths[b]) for a, b in pairs.tolist()],
                       sheets / f"{dataset}_d{k}.png")


def _sizes(roots) -> Dict[int, int]:
    sizes: Dict[int, int] = {}
    for r in roots.tolist():
        sizes[r] = sizes.get(r, 0) + 1
    return sizes


def _sheet(pairs: List[Tuple[Path, Path]], out: Path, side: int = 96) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet = Image.new("RGB", (4 * (2 * side + 16), ((len(pairs) + 3) // 4) * (side + 14)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for n, (a, b) in enumerate(pairs):
        x, y = (n % 4) * (2 * side + 16), (n // 4) * (side + 14)
        for k, path in enumerate((a, b)):
            image = _rgb(path)
            image.thumbnail((side, side))
            sheet.paste(image, (x + k * side, y))
        draw.text((x, y + side), f"{a.parent.name}/{b.parent.name}", fill="black")
    sheet.save(out)


# -- ingestion ------------------------------------------------------------------------------
_RUN_EXECUTOR = """
import json, sys, time
from tfx.types import standard_artifacts
from tfx.utils import proto_utils
from google.protobuf.message import Message
from components.image_example_gen import component, executor
examples = standard_artifacts.Examples()
examples.uri = sys.argv[2]
gen = component.ImageExampleGen(sys.argv[1], {})
props = {k: proto_utils.proto_to_json(v) if isinstance(v, Message) else v
         for k, v in gen.exec_properties.items() if v is not None}
started, cpu = time.monotonic(), time.process_time()
executor.Executor().Do({}, {"examples": [examples]}, props)
print("ingestion_seconds", time.monotonic() - started, time.process_time() - cpu)
"""


def _ingest(tree: Path, data: Path, out: Path) -> Tuple[float, float]:
    """(wall, CPU) seconds of ImageExampleGen's Do() with the code in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_USE_LEGACY_KERAS": "1"}
    result = subprocess.run([str(REPO / ".venv/bin/python"), "-c", _RUN_EXECUTOR, str(data),
                             str(out)], env=env, cwd=tree, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"ImageExampleGen failed in {tree}:\n{result.stderr[-3000:]}")
    shutil.rmtree(out)
    wall, cpu = re.search(r"ingestion_seconds ([\d.]+) ([\d.]+)", result.stdout).groups()
    return float(wall), float(cpu)


def ingestion(work: Path, baseline: str) -> None:
    from scale_bench import derive_images

    data = work / "data_16x"
    started = time.monotonic()
    count = derive_images(1000, 16, data)
    print(f"\ningestion: {count} images written in {time.monotonic() - started:.0f} s")
    old = work / "baseline_tree"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", baseline, "components",
                              "trainer"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    times: Dict[str, List[Tuple[float, float]]] = {"baseline": [], "fingerprints": []}
    for _ in range(ROUNDS):
        times["baseline"].append(_ingest(old, data, work / "out"))
        times["fingerprints"].append(_ingest(REPO, data, work / "out"))
        (old_wall, old_cpu), (new_wall, new_cpu) = \
            times["baseline"][-1], times["fingerprints"][-1]
        print(f"  baseline {old_wall:.1f} s (CPU {old_cpu:.1f} s), with fingerprints and "
              f"group splits {new_wall:.1f} s (CPU {new_cpu:.1f} s); probe "
              f"{machine_probe():.2f} s", flush=True)
    for n, kind in enumerate(("wall", "CPU")):
        ratio = min(t[n] for t in times["fingerprints"]) / min(t[n] for t in times["baseline"])
        print(f"ingestion of {count} images, best of {ROUNDS}, {kind} time: {ratio:.2f}x "
              f"that of {baseline} (target: at most 1.20x)")


# -- training -------------------------------------------------------------------------------
def _bursts(out: Path) -> int:
    written = 0
    for path in _photos("flower_photos"):
        folder = out / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
        rng = random.Random(f"bursts:{path.name}")
        image = _rgb(path)
        for c in range(COPIES):
            (folder / f"{path.stem}_copy{c}.jpg").write_bytes(
                near_copy(image, rng, scale=(0.5, 1.0)))
        written += 1 + COPIES
    return written


def _run(data: Path, home: Path) -> Tuple[float, float, float, List[str]]:
    result = measure([str(REPO / ".venv/bin/imgpipe"), "run", "--home", str(home),
                      "--data", str(data)])
    summary = result["output"].split("== summary ==")[-1].strip().splitlines()
    line = next(s for s in summary if s.startswith("eval accuracy"))
    acc, lo, hi = map(float, re.search(r"accuracy: ([\d.]+) \(95% CI ([\d.]+)-([\d.]+)\)",
                                       line).groups())
    return acc, lo, hi, [s for s in summary if s.startswith(("images", "near-dup", "eval"))]


def training(work: Path) -> None:
    bursts = work / "bursts"
    count = _bursts(bursts)
    originals = _run(IMAGES / "flower_photos", work / "home_originals")
    print("\noriginals:\n  " + "\n  ".join(originals[3]), flush=True)
    with_copies = _run(bursts, work / "home_bursts")
    print(f"originals + {COPIES} near-copies each ({count} files):\n  "
          + "\n  ".join(with_copies[3]))
    inside = originals[1] <= with_copies[0] <= originals[2]
    print(f"bursts' eval accuracy {with_copies[0]:.4f} is {'within' if inside else 'OUTSIDE'}"
          f" the originals' 95% CI {originals[1]:.3f}-{originals[2]:.3f} "
          f"(originals {originals[0]:.4f}; difference {with_copies[0] - originals[0]:+.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="threshold,ingestion,training")
    parser.add_argument("--sheets", type=Path, default=None,
                        help="write the merged pairs of the threshold part here as PNGs")
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()
    if not (IMAGES / "flower_photos").is_dir():
        print(f"near_duplicate_bench: skipped, {IMAGES / 'flower_photos'} not found (point "
              f"IMGPIPE_SHARED_DATA at the shared data)")
        return
    parts = args.parts.split(",")
    work = Path(tempfile.mkdtemp(prefix="near_duplicate_bench_"))
    try:
        if "threshold" in parts:
            threshold(args.sheets)
        if "ingestion" in parts:
            ingestion(work, args.baseline)
        if "training" in parts:
            training(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
