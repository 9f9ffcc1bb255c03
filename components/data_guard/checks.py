"""The checks: TFDV's validate_statistics against the reference schema, with its drift
comparators against the reference statistics (L-infinity on the label distribution,
Jensen-Shannon divergence on each image property)."""
import dataclasses
from typing import Any, Dict, List, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components.data_guard.config import GuardConfig
from trainer import features

_DRIFT_REASONS = frozenset({
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH,
})


@dataclasses.dataclass
class Drift:
    feature: str
    measure: str  # L_INFTY | JENSEN_SHANNON_DIVERGENCE
    value: float
    threshold: float

    @property
    def breached(self) -> bool:
        return self.value > self.threshold

    def describe(self) -> str:
        verdict = "above" if self.breached else "within"
        return (f"drift: {self.feature} {self.measure} {self.value:.4f} {verdict} the "
                f"threshold {self.threshold:g}")


@dataclasses.dataclass
class Result:
    anomalies: List[str]  # "anomaly: <feature>: <what>"
    drift: List[Drift]
    # Why image properties were not compared ("" when they were).
    properties_not_compared: str = ""

    @property
    def breaches(self) -> List[Drift]:
        return [d for d in self.drift if d.breached]

    def to_dict(self) -> Dict[str, Any]:
        return {"anomalies": self.anomalies, "drift": [dataclasses.asdict(d) for d in self.drift],
                "properties_not_compared": self.properties_not_compared}


def with_comparators(schema: schema_pb2.Schema, config: GuardConfig,
                     properties: bool = True) -> schema_pb2.Schema:
    """A copy of `schema` whose drift comparators are the configured ones (only); the
    image properties' only when `properties`."""
    compared = schema_pb2.Schema()
    compared.CopyFrom(schema)
    for feature in compared.feature:
        feature.ClearField("drift_comparator")
        feature.ClearField("skew_comparator")
        if feature.name == features.LABEL_KEY:
            feature.drift_comparator.infinity_norm.threshold = config.label_linf_threshold
        elif properties and feature.name in features.PROPERTY_FEATURES:
            feature.drift_comparator.jensen_shannon_divergence.threshold = \
                config.property_jsd_threshold
    return compared


def check(statistics: statistics_pb2.DatasetFeatureStatisticsList,
          schema: schema_pb2.Schema,
          reference_statistics: Optional[statistics_pb2.DatasetFeatureStatisticsList],
          config: GuardConfig) -> Result:
    """Anomalies against `schema`; drift against `reference_statistics` when given (image
    properties only when both sides have config.min_property_drift_examples images)."""
    not_compared = ""
    if reference_statistics:
        sizes = (_num_examples(statistics), _num_examples(reference_statistics))
        if min(sizes) < config.min_property_drift_examples:
            not_compared = (f"{sizes[0]} images against the reference's {sizes[1]}: fewer "
                            f"than guard.min_property_drift_examples "
                            f"({config.min_property_drift_examples})")
    compared = (with_comparators(schema, config, properties=not not_compared)
                if reference_statistics else schema)
    found = tfdv.validate_statistics(statistics, compared,
                                     previous_statistics=reference_statistics)
    anomalies = []
    for name, info in sorted(found.anomaly_info.items()):
        reasons = [r for r in info.reason if r.type not in _DRIFT_REASONS]
        anomalies += [f"anomaly: {name}: {r.description.strip()}" for r in reasons]
    for info in found.dataset_anomaly_info.reason:
        anomalies.append(f"anomaly: dataset: {info.description.strip()}")
    drift = [Drift(".".join(d.path.step), anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(
                   m.type), m.value, m.threshold)
             for d in found.drift_skew_info for m in d.drift_measurements]
    return Result(anomalies, sorted(drift, key=lambda d: d.feature), not_compared)


def _num_examples(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    return int(statistics.datasets[0].num_examples) if statistics.datasets else 0
