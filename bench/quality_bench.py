"""Accuracy of the Trainer's recipes on real photos, over seeds, in one run: the product's
defaults, the defaults with augmented cached views (train.views), and the seed documents'
recipe (bench/trainer_vs_seed.py's, reused as is).

Per data set (flower_photos, hymenoptera; flowers5_128px on request) the split is
ingestion's (its checks and split rule with the defaults: near-duplicate groups, 8 + 2
buckets; trainer_vs_seed.ingestion_splits), and every recipe trains on it once per seed. Printed per recipe:
mean eval accuracy with its range over the seeds, mean wall time (building the model and
training), the Trainer's CPU utilisation (user + sys CPU time of this process over wall
time; 200% = both cores of a 2-core machine busy), and the ratios to the defaults.
The load average before and after tells how busy the machine was with others' work.
The images are read from the shared data beside the repo (../shared/data, or
IMGPIPE_SHARED_DATA), as the other benches do.

    .venv/bin/python bench/quality_bench.py [--datasets flower_photos,hymenoptera]
        [--seeds 42,1,2] [--recipes defaults,views,seed]
"""
import argparse
import dataclasses
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trainer_vs_seed as tvs  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow)

import keras  # noqa: E402

from pipeline_bench import SHARED  # noqa: E402
from trainer import backbones, data, efficientnet_lite, features  # noqa: E402
from trainer import model as model_lib  # noqa: E402

FOLDERS = {"flower_photos": "flower_photos", "hymenoptera": "hymenoptera",
           "flowers5": "flowers5_128px"}
# train.views of the views recipe: +0.9 points on flower_photos over 5 folds x 3 seeds of
# frozen Lite2 features (2 and 3 views alike), no change on hymenoptera.
VIEWS = 2


@dataclasses.dataclass
class Measured:
    accuracy: float
    seconds: float
    cpu: float  # CPU seconds (user + sys) over wall seconds


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(fn: Callable, val_ds) -> Measured:
    start = cpu_seconds()
    run = tvs.timed(fn, val_ds)
    return Measured(run.accuracy, run.seconds, (cpu_seconds() - start) / run.seconds)


def bench_set(name: str, seeds: List[int], recipes: List[str], work: Path
              ) -> Dict[str, List[Measured]]:
    root = SHARED / "images" / FOLDERS[name]
    images = tvs.list_images(root)
    splits = tvs.ingestion_splits(root, images)
    train = [i for i in images if splits.get(i[0]) == features.TRAIN_SPLIT]
    val = [i for i in images if splits.get(i[0]) == features.EVAL_SPLIT]
    labels = sorted({label for _, label in images})
    case = tvs.Case(FOLDERS[name])
    out = work / name
    out.mkdir(parents=True)
    train_rec = tvs.write_records(root, train, labels, out / "train.gz")
    val_rec = tvs.write_records(root, val, labels, out / "eval.gz")
    our_val = data.image_dataset([val_rec], case.image_size, tvs.BATCH)
    train_dir, val_dir = tvs.link_tree(root, train, out / "train"), \
        tvs.link_tree(root, val, out / "val")
    seed_val = keras.utils.image_dataset_from_directory(
        val_dir, image_size=(case.image_size,) * 2, batch_size=tvs.BATCH,
        label_mode="categorical", shuffle=False)
    base = efficientnet_lite.build_efficientnet_lite(
        tvs.VARIANT, (case.image_size, case.image_size, 3), include_top=False, weights=None)
    first = model_lib.top_start_index(
        base, backbones.get_backbone(tvs.DEFAULTS.backbone).top_start, 0)
    print(f"\n=== {name}: {len(train)} train / {len(val)} eval images, {len(labels)} classes",
          flush=True)
    results: Dict[str, List[Measured]] = {r: [] for r in recipes}
    for seed in seeds:
        tvs.SEED = seed  # read by trainer_vs_seed's recipes and timing at call time
        for recipe in recipes:
            if recipe == "seed":
                fn = tvs.seed_recipe(case, len(labels), train_dir, val_dir,
                                     unfreeze_layers=len(base.layers) - first)
                val_ds = seed_val
            else:
                cfg = tvs.our_config(case, **({"views": VIEWS} if recipe == "views" else {}))
                fn, val_ds = tvs.ours(cfg, len(labels), train_rec, val_rec), our_val
            m = measured(fn, val_ds)
            results[recipe].append(m)
            print(f"--- {name} {recipe} seed {seed}: accuracy {m.accuracy:.4f}, "
                  f"{m.seconds:.1f} s, CPU {100 * m.cpu:.0f}%", flush=True)
    return results


def report(results: Dict[str, Dict[str, List[Measured]]], seeds: List[int]) -> None:
    print(f"\n| data set | recipe | accuracy, mean over seeds {seeds} (min-max) | wall s | "
          "time / defaults | CPU |")
    print("|---|---|---|---|---|---|")
    for name, by_recipe in results.items():
        reference = statistics.mean(m.seconds for m in by_recipe.get("defaults", [])) \
            if "defaults" in by_recipe else None
        for recipe, runs in by_recipe.items():
            acc = [m.accuracy for m in runs]
            secs = statistics.mean(m.seconds for m in runs)
            ratio = f"{secs / reference:.2f}" if reference else "-"
            print(f"| {name} | {recipe} | {statistics.mean(acc):.4f} ({min(acc):.3f}-"
                  f"{max(acc):.3f}) | {secs:.1f} | {ratio} | "
                  f"{100 * statistics.mean(m.cpu for m in runs):.0f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="flower_photos,hymenoptera")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--recipes", default="defaults,views,seed")
    parser.add_argument("--work", default=None, help="parent dir for the TFRecords and links")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="quality_bench_", dir=args.work))
    efficientnet_lite.imagenet_weights_path()  # convert and cache the checkpoint untimed
    print(f"load average before: {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    results = {}
    for name in args.datasets.split(","):
        if not (SHARED / "images" / FOLDERS[name]).is_dir():
            print(f"skipping {name}: {SHARED / 'images' / FOLDERS[name]} not found "
                  "(set IMGPIPE_SHARED_DATA to the shared data)")
            continue
        results[name] = bench_set(name, seeds, args.recipes.split(","), work)
    report(results, seeds)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
