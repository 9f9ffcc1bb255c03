"""The eval section of the config: the blessing's thresholds, the slices, TFMA's batch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from trainer.config_fields import check


@dataclass
class EvalConfig:
    # Value thresholds, checked on every candidate: overall accuracy and the recall of
    # each class (0 disables the per-class floor).
    min_accuracy: float = 0.5
    min_class_recall: float = 0.0
    # Change thresholds, checked only when a blessed baseline exists: the candidate may
    # fall at most this far below the baseline (accuracy; recall of each class).
    max_accuracy_drop: float = 0.01
    max_class_recall_drop: float = 0.1
    # Extra slices besides overall and true label: features ingestion records.
    slice_features: List[str] = field(default_factory=lambda: ["size_bucket", "source_dir"])
    inference_batch_size: int = 64

    def validate(self) -> None:
        for name in ("min_accuracy", "min_class_recall", "max_accuracy_drop",
                     "max_class_recall_drop"):
            check(0 <= getattr(self, name) <= 1, f"eval.{name}", "a fraction between 0 and 1")
        check(all(bool(f) for f in self.slice_features), "eval.slice_features",
               "a list of feature names, e.g. [size_bucket, source_dir]")
        check(self.inference_batch_size > 0, "eval.inference_batch_size", "a positive integer")
