"""What a class name may be, and how many images a class needs in each split.

A label becomes a folder-safe file line (labels.txt), a metric name in MLflow
(`recall/<label>`) and a vocabulary entry of tf.Transform (which strips surrounding
spaces and drops empty strings). So a label is 1 to 100 characters, each a letter, a
digit, a space, `_`, `.` or `-`, without a space at either end, and not `.` or `..`:
anything else would be silently merged, dropped or refused by the registry after
training. A run with such a label stops at ingestion, naming it.

Each class needs data.min_images_per_split images in every split, checked on the split
counts the examples were written with (whatever assigned the splits): a class absent
from train is not in the vocabulary and crashes evaluation; absent from eval, its recall
is undefined and no gate could judge it.
"""
import collections
import os
from typing import Dict, Iterable, List, Mapping

import tensorflow as tf

from trainer import features

MAX_LENGTH = 100
PUNCTUATION = " _.-"


class LabelError(ValueError):
    """The dataset's class names or class sizes break the rules above."""


def label_problem(label: str) -> str:
    """Why `label` cannot be a class name, "" when it can."""
    if not label.strip():
        return "it is empty or only spaces"
    if label != label.strip():
        return "it starts or ends with a space"
    if label in (".", ".."):
        return "'.' and '..' are not names"
    if len(label) > MAX_LENGTH:
        return f"it is longer than {MAX_LENGTH} characters"
    bad = sorted({c for c in label if not (c.isalnum() or c in PUNCTUATION)})
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}"
    return ""


def check_labels(labels: Iterable[str]) -> None:
    """Raises LabelError naming every class whose name breaks the rule."""
    problems = {label: label_problem(label) for label in set(labels)}
    bad = sorted((label, why) for label, why in problems.items() if why)
    if bad:
        raise LabelError(
            "class names must be letters, digits, spaces, '_', '.' or '-', without a space "
            "at either end (rename the folders or manifest labels): " + "; ".join(
                f"class {label!r}: {why}" for label, why in bad))


def check_split_counts(counts: Mapping[str, Mapping[str, int]], minimum: int) -> None:
    """counts: split -> label -> images. Raises LabelError naming each class with fewer
    than `minimum` images in some split."""
    labels = sorted({label for per_split in counts.values() for label in per_split})
    short: List[str] = []
    for label in labels:
        have: Dict[str, int] = {split: counts[split].get(label, 0) for split in sorted(counts)}
        if any(n < minimum for n in have.values()):
            short.append(f"class {label!r} has " + ", ".join(
                f"{n} in {split}" for split, n in have.items()))
    if short:
        raise LabelError(
            f"every class needs at least {minimum} image(s) in each split "
            f"(data.min_images_per_split), or its metrics are undefined: " + "; ".join(short)
            + ". Add images to these classes or remove their folders")


def split_label_counts(split_uris: Mapping[str, str]) -> Dict[str, Dict[str, int]]:
    """split -> label -> number of examples, read from the written (gzipped) TFRecords
    of each split folder; only the label feature is parsed."""
    spec = {features.LABEL_KEY: tf.io.FixedLenFeature([], tf.string)}
    counts: Dict[str, Dict[str, int]] = {}
    for split, uri in split_uris.items():
        counter: collections.Counter = collections.Counter()
        files = tf.io.gfile.glob(os.path.join(uri, "*"))
        if files:
            records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024)
            for batch in records.map(lambda r: tf.io.parse_example(r, spec)[features.LABEL_KEY]):
                counter.update(label.decode("utf-8") for label in batch.numpy())
        counts[split] = dict(counter)
    return counts
