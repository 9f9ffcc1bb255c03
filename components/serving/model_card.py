"""The model card: what RegistryPusher writes beside each version (model_card.json), and
what the registry, the baseline lookup and the commands read back. Light to import.

A card written by another tool (or none) reads as an empty card: from_dict fills what
is missing with the defaults below, so a reader never needs to test for keys.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional

FORMAT = 1


@dataclasses.dataclass
class Lineage:
    """Where the pushed model comes from: the pipeline run, the Pusher's execution and its
    input artifacts (MLMD ids and the model's URI)."""
    pipeline_name: str = ""
    pipeline_run_id: Optional[str] = None
    pusher_execution_id: Optional[str] = None
    model_id: Optional[int] = None
    model_uri: str = ""
    blessing_id: Optional[int] = None
    evaluation_id: Optional[int] = None
    examples_id: Optional[int] = None


@dataclasses.dataclass
class ModelCard:
    model_name: str = ""
    labels: List[str] = dataclasses.field(default_factory=list)
    # The candidate's overall TFMA metrics, and per class name.
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    per_class: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    # Bootstrap intervals: {"level", "accuracy": [low, high], "recall": {class: [low, high]}}
    confidence_intervals: Optional[Dict[str, Any]] = None
    # The model compared with: {"model_id", "model_uri", "serving_version", "metrics",
    # "per_class"}; None on a first push.
    baseline: Optional[Dict[str, Any]] = None
    # {"mode": which thresholds applied, and the eval config's thresholds}
    thresholds: Dict[str, Any] = dataclasses.field(default_factory=dict)
    blessed: bool = False
    # Ingestion counts (files_seen, ingested, rejected) and eval_examples.
    data: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # What training started from and why (trainer/warm_start.py's record); None if unknown.
    started_from: Optional[Dict[str, Any]] = None
    config_hash: str = ""
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)  # the config, flattened
    lineage: Lineage = dataclasses.field(default_factory=Lineage)
    format: int = FORMAT
    # Set when the version is published.
    version: Optional[int] = None
    serving_path: str = ""
    pushed_at: str = ""

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ModelCard":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in names and v is not None}
        lineage = Lineage(**{k: v for k, v in (values.get("lineage") or {}).items()
                             if k in {f.name for f in dataclasses.fields(Lineage)}})
        return cls(**{**known, "lineage": lineage})

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
