"""The data section of the config: where the images come from, how they split, and what
ingestion accepts (ImageExampleGen's knobs)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from components.image_example_gen.span_names import SpanError, split_span_source
from trainer.config_fields import check

DEMO_DATA = "demo"  # data.source value that selects the embedded digits dataset


@dataclass
class DataConfig:
    # A class-per-folder directory (root/<label>/<file>), a CSV manifest (path,label), or
    # "demo" for scikit-learn's digits written out as PNG files. Spans: a last path
    # component with {SPAN} or {YYYY}-{MM}-{DD} (spans.py), e.g. /photos/{SPAN}.
    source: str = DEMO_DATA
    # Train and evaluate on the latest N spans (0: all of them).
    window_spans: int = 0
    # Split sizes in hash buckets out of their sum; the split of an image depends only on
    # its id (relative path), so adding images never moves existing ones.
    train_buckets: int = 8
    eval_buckets: int = 2
    image_extensions: List[str] = field(
        default_factory=lambda: [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"])
    # Formats the model decodes (sniffed from the bytes); others are rejected.
    accepted_formats: List[str] = field(default_factory=lambda: ["JPEG", "PNG"])
    max_pixels: int = 40_000_000
    min_side: int = 8
    max_aspect_ratio: float = 50.0
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
        check(all(e.startswith(".") for e in self.image_extensions), "data.image_extensions",
               "a list of extensions starting with '.', e.g. ['.jpg', '.png']")
        check(set(self.accepted_formats) <= {"JPEG", "PNG", "GIF", "BMP"},
               "data.accepted_formats", "a subset of JPEG, PNG, GIF, BMP")
        check(self.max_pixels > 0, "data.max_pixels", "a positive integer")
        check(self.min_side >= 1, "data.min_side", "an integer >= 1")
        check(self.max_aspect_ratio >= 1, "data.max_aspect_ratio", "a number >= 1")
        check(0 <= self.max_rejected_fraction <= 1, "data.max_rejected_fraction",
               "a fraction between 0 and 1")


def split_source(source: str) -> Tuple[str, Optional[str]]:
    """DataConfig.source -> (input_base, manifest file name or None); for spans, input_base
    is the folder holding them (span_names.split_span_source)."""
    if source.lower().endswith(".csv"):
        return os.path.dirname(source) or ".", os.path.basename(source)
    return split_span_source(source)[0], None
