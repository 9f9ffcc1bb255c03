"""The data section of the config: where the images come from, how they split, and what
ingestion accepts (ImageExampleGen's knobs)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from trainer import contract
from trainer.config_fields import check

DEMO_DATA = "demo"  # data.source value that selects the embedded digits dataset


@dataclass
class DataConfig:
    # A class-per-folder directory (root/<label>/<file>), a CSV manifest (path,label), or
    # "demo" for scikit-learn's digits written out as PNG files.
    source: str = DEMO_DATA
    # Split sizes in hash buckets out of their sum; the split of an image depends only on
    # its id (relative path), so adding images never moves existing ones.
    train_buckets: int = 8
    eval_buckets: int = 2
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
        check(self.train_buckets > 0, "data.train_buckets", "a positive integer")
        check(self.eval_buckets > 0, "data.eval_buckets", "a positive integer")
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


def split_source(source: str) -> Tuple[str, Optional[str]]:
    """DataConfig.source -> (input_base, manifest file name or None)."""
    if source.lower().endswith(".csv"):
        return os.path.dirname(source) or ".", os.path.basename(source)
    return source, None
