"""The data section of the config: where the images come from, how they split, and what
ingestion accepts (ImageExampleGen's knobs)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple

from components.image_example_gen.split_rule import CONFLICT_ACTIONS, CONFLICT_REJECT
from components.artifacts.span_names import SpanError, split_span_source
from trainer import contract
from trainer.config_fields import build, check

DEMO_DATA = "demo"  # data.source value that selects the embedded digits dataset
# Beyond this, distinct photos merge and the band index probes thousands of values.
MAX_NEAR_DUPLICATE_DISTANCE = 24


@dataclass
class DataConfig:
    # A class-per-folder directory (root/<label>/<file>), a CSV manifest (path,label), or
    # "demo" for scikit-learn's digits written out as PNG files. Spans: a last path
    # component with {SPAN} or {YYYY}-{MM}-{DD} (spans.py), e.g. /photos/{SPAN}.
    source: str = DEMO_DATA
    # Train and evaluate on the latest N spans (0: all of them).
    window_spans: int = 0
    # Split sizes in hash buckets out of their sum. Near-duplicate groups go to one split
    # whole, chosen by their anchor's sha256 (split_rule.py); an image keeps its split.
    train_buckets: int = 8
    eval_buckets: int = 2
    # Hamming distance between 64-bit fingerprints up to which images are near-duplicates
    # (measured on real photos: README); 0 groups identical fingerprints only.
    near_duplicate_distance: int = 10
    # Near-duplicates under different labels: reject them, keep them, or keep and warn.
    conflicting_near_duplicates: str = CONFLICT_REJECT
    image_extensions: List[str] = field(
        default_factory=lambda: [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"])
    # Formats the model decodes (sniffed from the bytes); others are rejected.
    accepted_formats: List[str] = field(default_factory=lambda: ["JPEG", "PNG"])
    max_pixels: int = contract.MAX_IMAGE_PIXELS  # the most the model decodes
    # A bigger file is rejected (too_large) before it is read: 32 MP as PNG is ~100 MB.
    max_file_mb: int = 200
    min_side: int = 8
    max_aspect_ratio: float = 50.0
    # Each class needs this many images in each split (labels.py), else the run stops;
    # 0 turns the check off.
    min_images_per_split: int = 1
    # The run fails when more than this fraction of the files is rejected.
    max_rejected_fraction: float = 0.2

    def validate(self) -> None:
        check(bool(self.source), "data.source", "a folder, a CSV manifest path, or 'demo'")
        try:
            split_span_source(self.source)
        except SpanError as e:
            check(False, "data.source", f"a valid span placeholder: {e}")
        check(self.window_spans >= 0, "data.window_spans",
              "an integer >= 0 (0: every span)")
        check(self.train_buckets > 0, "data.train_buckets", "a positive integer")
        check(self.eval_buckets > 0, "data.eval_buckets", "a positive integer")
        check(isinstance(self.near_duplicate_distance, int)
              and 0 <= self.near_duplicate_distance <= MAX_NEAR_DUPLICATE_DISTANCE,
              "data.near_duplicate_distance",
              f"an integer in [0, {MAX_NEAR_DUPLICATE_DISTANCE}]")
        check(self.conflicting_near_duplicates in CONFLICT_ACTIONS,
              "data.conflicting_near_duplicates", " | ".join(CONFLICT_ACTIONS))
        check(all(e.startswith(".") for e in self.image_extensions), "data.image_extensions",
               "a list of extensions starting with '.', e.g. ['.jpg', '.png']")
        check(set(self.accepted_formats) <= {"JPEG", "PNG", "GIF", "BMP"},
               "data.accepted_formats", "a subset of JPEG, PNG, GIF, BMP")
        check(0 < self.max_pixels <= contract.MAX_IMAGE_PIXELS, "data.max_pixels",
               f"a positive integer up to {contract.MAX_IMAGE_PIXELS} (what the model decodes)")
        check(self.max_file_mb > 0, "data.max_file_mb", "a positive number of megabytes")
        check(self.min_side >= 1, "data.min_side", "an integer >= 1")
        check(self.max_aspect_ratio >= 1, "data.max_aspect_ratio", "a number >= 1")
        check(self.min_images_per_split >= 0, "data.min_images_per_split",
               "an integer >= 0 (0: no check)")
        check(0 <= self.max_rejected_fraction <= 1, "data.max_rejected_fraction",
               "a fraction between 0 and 1")


# ImageExampleGen receives these elsewhere: source as input_base, window_spans as the span
# listing, the buckets in output_config. Every other field is an ingestion knob that
# component.ingestion_options packs into the executor's custom_config.
_NOT_INGESTION = ("source", "window_spans", "train_buckets", "eval_buckets")
INGESTION_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig)
                         if f.name not in _NOT_INGESTION)


def ingestion_config(values: Mapping[str, Any]) -> DataConfig:
    """The DataConfig ingestion honours, from the INGESTION_FIELDS of `values` (a DataConfig's
    dict, or a custom_config whose numbers may arrive as floats via a proto Struct):
    extensions lower-cased, formats upper-cased, validated. The other fields keep their
    defaults; ingestion never reads them."""
    missing = [name for name in INGESTION_FIELDS if name not in values]
    if missing:
        raise ValueError(f"ingestion options are missing {missing}; build them with "
                         "components.image_example_gen.component.ingestion_options")
    config = build(DataConfig, {name: values[name] for name in INGESTION_FIELDS}, "data.")
    config.image_extensions = [e.lower() for e in config.image_extensions]
    config.accepted_formats = [f.upper() for f in config.accepted_formats]
    config.validate()
    return config


def split_source(source: str) -> Tuple[str, Optional[str]]:
    """DataConfig.source -> (input_base, manifest file name or None); for spans, input_base
    is the folder holding them (span_names.split_span_source)."""
    if source.lower().endswith(".csv"):
        return os.path.dirname(source) or ".", os.path.basename(source)
    return split_span_source(source)[0], None
