"""A pipeline run read back from ML Metadata: its outputs by component, and the summary
`imgpipe run` prints (also what the report starts from)."""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata
from tfx.utils import path_utils

from components.artifacts import baseline, evaluation, ingestion, model_contract
from components.artifacts import data_guard as guard_report
from components.artifacts import pushed_model as pusher
from components.artifacts.confidence import format_interval
from components.artifacts.metric_names import ACCURACY, RECALL
from components.artifacts.span_names import PLAIN_SPAN
from pipeline import component_ids as ids
from pipeline.config import PipelineConfig
from trainer import contract, warm_start


# Where `imgpipe run` leaves the summary of its run, in home (dump_summary's JSON).
LAST_RUN_FILE = "last_run_summary.json"
# What stopped a run, kept on the data guard's failed execution (record_stop).
STOP_FINDINGS = "data_guard_findings"


@dataclasses.dataclass
class RunSummary:
    run_id: str
    executions: Dict[str, str]  # component id -> MLMD state (COMPLETE, CACHED, ...)
    files_seen: Optional[int] = None
    ingested: Optional[int] = None
    rejected: Optional[int] = None
    rejection_report: Optional[str] = None
    near_duplicate_groups: Optional[int] = None  # groups of 2 or more ingested images
    largest_near_duplicate_group: Optional[int] = None
    window_spans: List[str] = dataclasses.field(default_factory=list)  # trained on
    ingested_spans: List[str] = dataclasses.field(default_factory=list)  # by its execution
    newly_ingested: Optional[int] = None  # images its execution ingested (not stored ones)
    started_from: Optional[Dict[str, Any]] = None  # trainer/warm_start.py's record
    accuracy: Optional[float] = None
    accuracy_interval: Optional[List[float]] = None  # bootstrap, at interval_level
    # (class name, recall, its bootstrap interval or None), in class id order
    class_recall: List[Tuple[str, float, Optional[List[float]]]] = dataclasses.field(
        default_factory=list)
    interval_level: float = 0.95
    baseline_accuracy: Optional[float] = None
    had_baseline: bool = False  # a blessed model existed (LatestBlessedModel found one)
    baseline_version: Optional[int] = None  # its serving version
    baseline_is_candidate: bool = False  # it was this very model: evaluated alone
    blessed: Optional[bool] = None
    failures: List[str] = dataclasses.field(default_factory=list)  # thresholds missed
    # The same, as {metric, value, threshold, baseline}: the candidate's and the
    # baseline's own values of the metric (for notifications).
    failure_details: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    pushed_to: Optional[str] = None
    push_status: Optional[str] = None  # pushed | already_pushed | not_blessed
    pushed_version: Optional[int] = None
    registry_status: Optional[str] = None  # registered | failed | disabled | unchanged
    registry_version: Optional[str] = None
    registry_error: Optional[str] = None
    wall_seconds: float = 0.0
    # component id -> seconds from its launch to its end, as the progress lines show them
    component_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)
    # The data guard's anomalies and drift beyond its thresholds; data_stopped: they
    # stopped the run before training.
    data_findings: List[str] = dataclasses.field(default_factory=list)
    data_stopped: bool = False

    def _baseline(self) -> str:
        if not self.had_baseline:
            return "no baseline yet (value thresholds only)"
        name = f"version {self.baseline_version}" if self.baseline_version else "a model"
        if self.baseline_is_candidate:
            return f"baseline {name} is this same model (evaluated alone)"
        if self.baseline_accuracy is None:
            return f"baseline {name}"
        return f"baseline {name}, accuracy {self.baseline_accuracy:.4f}"

    def _near_duplicates(self) -> str:
        if not self.near_duplicate_groups:
            return "near-duplicate groups: none"
        return (f"near-duplicate groups: {self.near_duplicate_groups}, the largest of "
                f"{self.largest_near_duplicate_group} images (each group in one split)")

    @property
    def ingested_this_run(self) -> int:
        """Images this run ingested: 0 when ingestion came from the cache."""
        if self.executions.get(ids.EXAMPLE_GEN) != "COMPLETE":
            return 0
        return self.newly_ingested or 0

    def _spans(self) -> List[str]:
        if self.window_spans in ([], [PLAIN_SPAN]):  # a plain folder: "images" says it all
            return []
        spans = self.ingested_spans if self.executions.get(ids.EXAMPLE_GEN) == "COMPLETE" else []
        return [f"spans: {', '.join(self.window_spans)}; ingested this run: "
                f"{self.ingested_this_run} images"
                + (f" (span {', '.join(spans)})" if spans else " (all from the cache)")]

    def _start(self) -> str:
        start = self.started_from or {}
        if start.get("started_from") == "champion":
            return f"champion version {start.get('champion_version')}"
        return f"{start.get('started_from')} ({start.get('reason')})"

    def lines(self) -> List[str]:
        if self.data_stopped:
            return [f"run {self.run_id} STOPPED before training after {self.wall_seconds:.1f} s",
                    f"images: {self.files_seen} seen, {self.ingested} ingested, "
                    f"{self.rejected} rejected",
                    "the data guard found:", *[f"  {f}" for f in self.data_findings],
                    "if the change is intended, `imgpipe schema accept` makes this run's data "
                    "the reference"]
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        if self.accuracy_interval:
            acc += f" ({format_interval(self.accuracy_interval, self.interval_level)})"
        return [
            f"run {self.run_id} finished in {self.wall_seconds:.1f} s",
            f"images: {self.files_seen} seen, {self.ingested} ingested, {self.rejected} rejected"
            + (f" (see {self.rejection_report})" if self.rejected else ""),
            *([self._near_duplicates()] if self.near_duplicate_groups is not None else []),
            *self._spans(),
            *([f"training started from {self._start()}"] if self.started_from else []),
            *[f"data (warning): {f}" for f in self.data_findings],
            f"eval accuracy: {acc}; {self._baseline()}",
            *([f"recall by class ({round(100 * self.interval_level)}% CI): " + ", ".join(
                f"{name} {recall:.3f}" + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "")
                for name, recall, iv in self.class_recall)] if self.class_recall else []),
            f"blessed: {'yes' if self.blessed else 'no'}",
            *[f"  failed: {f}" for f in self.failures],
            f"pushed: {self._pushed()}",
            *([f"registry: {self._registry()}"] if self.registry_status else []),
        ]

    def _pushed(self) -> str:
        if not self.pushed_to:
            return "nothing (model not blessed)"
        if self.push_status == "already_pushed":
            return f"nothing new: this model is already version {self.pushed_version} " \
                   f"({self.pushed_to})"
        return f"version {self.pushed_version} at {self.pushed_to}"

    def _registry(self) -> str:
        return {
            "registered": f"MLflow version {self.registry_version}, now the champion",
            "failed": f"FAILED ({self.registry_error}); the pushed model is kept, "
                      "`imgpipe registry sync` registers it",
            "disabled": "disabled (registry.enabled=false)",
            "unchanged": "unchanged",
            "caught_up": f"caught up: the push of version {self.pushed_version} was cut "
                         "short and is now finished (stable in models.config, champion)",
        }.get(self.registry_status or "", self.registry_status or "")


def open_store(config: PipelineConfig) -> metadata.Metadata:
    return metadata.Metadata(
        metadata.sqlite_metadata_connection_config(config.metadata_path))


def pipeline_runs(store: Any, pipeline_name: str) -> List[metadata_store_pb2.Context]:
    """The pipeline_run contexts of pipeline_name, oldest first."""
    runs = list(store.get_contexts_by_type("pipeline_run"))
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_ctx is not None:
        in_pipeline = {e.id for e in store.get_executions_by_context(pipeline_ctx.id)}
        runs = [c for c in runs if {e.id for e in store.get_executions_by_context(c.id)}
                & in_pipeline]
    return sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))


def find_run(store: Any, pipeline_name: str,
             run_id: Optional[str] = None) -> metadata_store_pb2.Context:
    """The pipeline_run context named run_id, or the newest run of pipeline_name."""
    runs = pipeline_runs(store, pipeline_name)
    if run_id is not None:
        runs = [c for c in runs if c.name == run_id]
        if not runs:
            raise RuntimeError(f"no run '{run_id}' of pipeline '{pipeline_name}'")
    if not runs:
        raise RuntimeError(f"no runs of pipeline '{pipeline_name}'")
    return max(runs, key=lambda c: c.create_time_since_epoch)


def run_artifacts(store: Any, run: metadata_store_pb2.Context
                  ) -> Dict[Tuple[str, str], metadata_store_pb2.Artifact]:
    """The run's outputs by (component id, output key), e.g. (ids.TRAINER, "model").

    Cached executions count: their outputs are the artifacts they reused."""
    executions = store.get_executions_by_context(run.id)
    nodes = node_ids(store, executions)
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    outputs = [ev for ev in events if ev.type in (metadata_store_pb2.Event.OUTPUT,
                                                  metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        sorted({ev.artifact_id for ev in outputs}))} if outputs else {}
    types = {t.id: t.name for t in store.get_artifact_types()}
    for a in artifacts.values():
        a.type = types.get(a.type_id, "")
    found = {}
    for ev in outputs:
        key = ev.path.steps[0].key if ev.path.steps else ""
        found[(nodes.get(ev.execution_id, ""), key)] = artifacts[ev.artifact_id]
    return found


def summarize_latest_run(config: PipelineConfig, run_id: Optional[str] = None) -> RunSummary:
    """Reads the newest pipeline run of `config.name` (or run `run_id`) back from MLMD."""
    with open_store(config) as m:
        store = m.store
        run = find_run(store, config.name, run_id)
        executions = store.get_executions_by_context(run.id)
        nodes = node_ids(store, executions)
        summary = RunSummary(run_id=run.name, executions={})
        for execution in executions:
            summary.executions[nodes[execution.id]] = metadata_store_pb2.Execution.State.Name(
                execution.last_known_state)
        artifacts = run_artifacts(store, run)
        model = artifacts.get((ids.TRAINER, "model"))
        if model is not None:
            summary.started_from = warm_start.read_start(
                path_utils.serving_model_dir(model.uri))
        for artifact in artifacts.values():
            _read_artifact(artifact, summary, model)
        return summary


def node_ids(store: Any, executions: List[metadata_store_pb2.Execution]) -> Dict[int, str]:
    """Execution id -> component id, from the `node` context ("<pipeline>.<component>")."""
    node_type = store.get_context_type("node")
    ids = {}
    for execution in executions:
        nodes = [c for c in store.get_contexts_by_execution(execution.id)
                 if c.type_id == node_type.id]
        ids[execution.id] = nodes[0].name.split(".", 1)[-1] if nodes else \
            (execution.name or str(execution.id))
    return ids


def artifact_property(artifact: metadata_store_pb2.Artifact, name: str) -> Any:
    """A custom property's value (int, string...), None when absent."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    return getattr(value, value.WhichOneof("value"))


def _read_artifact(artifact, summary: RunSummary, model=None) -> None:
    if artifact.type == "Examples" and \
            artifact_property(artifact, ingestion.FILES_SEEN) is not None:
        summary.files_seen = artifact_property(artifact, ingestion.FILES_SEEN)
        summary.ingested = artifact_property(artifact, ingestion.INGESTED_COUNT)
        summary.rejected = artifact_property(artifact, ingestion.REJECTED_COUNT)
        summary.rejection_report = os.path.join(artifact.uri, ingestion.REJECTED_CSV)
        summary.near_duplicate_groups = artifact_property(artifact,
                                                          ingestion.NEAR_DUPLICATE_GROUPS)
        summary.largest_near_duplicate_group = artifact_property(
            artifact, ingestion.LARGEST_NEAR_DUPLICATE_GROUP)
        summary.newly_ingested = artifact_property(artifact, ingestion.NEWLY_INGESTED_COUNT)
        for field, key in (("window_spans", ingestion.WINDOW_SPANS),
                           ("ingested_spans", ingestion.INGESTED_SPANS)):
            value = artifact_property(artifact, key)
            setattr(summary, field, [s for s in (value or "").split(",") if s])
    elif artifact.type == "ModelBlessing":
        _read_blessing(artifact, summary)
    elif artifact.type == "ModelEvaluation":
        _read_evaluation(artifact.uri, summary, model)
    elif artifact.type == "PushedModel":
        _read_push(artifact, summary)
    elif artifact.type == "ExampleAnomalies" and \
            artifact_property(artifact, guard_report.FINDINGS) is not None:
        summary.data_findings = json.loads(artifact_property(artifact, guard_report.FINDINGS))


def _read_blessing(artifact, summary: RunSummary) -> None:
    summary.blessed = bool(artifact_property(artifact, "blessed"))
    summary.baseline_version = artifact_property(artifact, baseline.BASELINE_SERVING_VERSION)
    summary.baseline_is_candidate = bool(
        artifact_property(artifact, baseline.BASELINE_IS_CANDIDATE))
    summary.had_baseline = summary.baseline_version is not None


def _read_push(artifact, summary: RunSummary) -> None:
    summary.push_status = artifact_property(artifact, pusher.PUSH_STATUS)
    summary.registry_status = artifact_property(artifact, pusher.REGISTRY_STATUS)
    summary.registry_version = artifact_property(artifact, pusher.REGISTRY_VERSION)
    summary.registry_error = artifact_property(artifact, pusher.REGISTRY_ERROR)
    if artifact_property(artifact, pusher.PUSHED):
        summary.pushed_to = artifact_property(artifact, pusher.PUSHED_DESTINATION)
        version = artifact_property(artifact, pusher.PUSHED_VERSION)
        summary.pushed_version = int(version) if version else None


def _read_evaluation(uri: str, summary: RunSummary, model=None) -> None:
    result = evaluation.read_evaluation(uri)
    summary.accuracy = result.metrics.get(ACCURACY)
    summary.baseline_accuracy = result.baseline.get(ACCURACY)
    labels = model_contract.model_labels(model.uri) if model is not None else []
    if result.intervals is not None:
        summary.interval_level = result.intervals.level
        summary.accuracy_interval = list(result.intervals.accuracy or []) or None
        summary.class_recall = [
            (contract.class_name(c, labels), values[RECALL],
             list(result.intervals.recall.get(c) or []) or None)
            for c, values in sorted(result.per_class.items()) if RECALL in values]
    summary.had_baseline = summary.had_baseline or result.has_baseline
    summary.failures = [f.describe(labels) for f in result.failures]
    summary.failure_details = [_failure_detail(f, result, labels) for f in result.failures]


def _failure_detail(failure: Any, result: Any, labels: List[str]) -> Dict[str, Any]:
    if failure.class_id is None:
        value, base = result.metrics.get(failure.metric), result.baseline.get(failure.metric)
        metric = failure.metric
    else:
        value = result.per_class.get(failure.class_id, {}).get(failure.metric)
        base = result.baseline_per_class.get(failure.class_id, {}).get(failure.metric)
        metric = f"{failure.metric} of class {contract.class_name(failure.class_id, labels)}"
    threshold = f"{failure.threshold} vs baseline" if failure.is_change else failure.threshold
    return {"metric": metric, "value": value, "threshold": threshold, "baseline": base}


def dump_summary(summary: RunSummary, path: str) -> None:
    with open(path, "w") as f:
        json.dump(dataclasses.asdict(summary), f, indent=1)


def record_stop(config: PipelineConfig, findings: List[str], run_id: Optional[str] = None
                ) -> None:
    """Keeps what stopped the newest run on the guard's failed execution: TFX records no
    error for an executor that raised, and removes its outputs."""
    with open_store(config) as m:
        run = find_run(m.store, config.name, run_id)
        executions = m.store.get_executions_by_context(run.id)
        nodes = node_ids(m.store, executions)
        failed = [e for e in executions if nodes[e.id] == ids.DATA_GUARD and
                  e.last_known_state == metadata_store_pb2.Execution.FAILED]
        for execution in failed:
            execution.custom_properties[STOP_FINDINGS].string_value = json.dumps(findings)
        m.store.put_executions(failed)
