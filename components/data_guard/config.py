"""The guard section of the config: the fixed schema and the drift thresholds."""
from __future__ import annotations

from dataclasses import dataclass

from trainer.config_fields import check

STOP = "stop"
WARN = "warn"


@dataclass
class GuardConfig:
    enabled: bool = True
    # A schema file (text tf.metadata Schema) to validate against instead of the
    # champion's; empty: the champion's (or the one last accepted with
    # `imgpipe schema accept`).
    schema: str = ""
    # TFDV's drift comparators against the champion's training data: L-infinity distance
    # between the label distributions, Jensen-Shannon divergence of each image property.
    label_linf_threshold: float = 0.2
    property_jsd_threshold: float = 0.2
    on_drift: str = STOP  # stop | warn
    # Jensen-Shannon compares histograms: with fewer images than this on either side it
    # measures sampling noise, not drift, so image properties are then not compared.
    min_property_drift_examples: int = 200
    # The reference schema admits image sizes and file sizes from the champion's
    # smallest / this factor to its largest * this factor.
    size_range_factor: float = 2.0

    def validate(self) -> None:
        check(0 < self.label_linf_threshold <= 1, "guard.label_linf_threshold",
              "a number in (0, 1]")
        check(0 < self.property_jsd_threshold <= 1, "guard.property_jsd_threshold",
              "a number in (0, 1]")
        check(self.on_drift in (STOP, WARN), "guard.on_drift", f"'{STOP}' or '{WARN}'")
        check(self.min_property_drift_examples >= 0, "guard.min_property_drift_examples",
              "an integer >= 0")
        check(self.size_range_factor >= 1, "guard.size_range_factor", "a number >= 1")
