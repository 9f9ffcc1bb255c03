"""Run the pipeline locally: LocalDagRunner, sqlite MLMD, progress lines and a summary."""
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Dict, List, Optional, TextIO

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata

from pipeline import data_source
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline


class ProgressPrinter(logging.Handler):
    """Turns the runner's log records into one line per component with its elapsed time."""

    def __init__(self, out: TextIO):
        super().__init__(level=logging.INFO)
        self.out = out
        self.started: Dict[str, float] = {}
        self.cached = False
        self.current: Optional[str] = None

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith("Component %s is running"):
            self.current = str(record.args[0])
            self.started[self.current] = time.monotonic()
            self.cached = False
            print(f"  > {self.current} ...", file=self.out, flush=True)
        elif msg.startswith("A cached execution"):
            self.cached = True
        elif msg.startswith("Component %s is finished") and record.args[0] in self.started:
            name = str(record.args[0])
            took = time.monotonic() - self.started[name]
            print(f"  < {name} {took:6.1f} s{' (cached)' if self.cached else ''}",
                  file=self.out, flush=True)


@dataclasses.dataclass
class RunSummary:
    run_id: str
    executions: Dict[str, str]  # component id -> MLMD state (COMPLETE, CACHED, ...)
    files_seen: Optional[int] = None
    ingested: Optional[int] = None
    rejected: Optional[int] = None
    rejection_report: Optional[str] = None
    accuracy: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    had_baseline: bool = False
    blessed: Optional[bool] = None
    pushed_to: Optional[str] = None
    wall_seconds: float = 0.0

    def lines(self) -> List[str]:
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        base = ("no baseline yet (value thresholds only)" if not self.had_baseline else
                f"baseline accuracy {self.baseline_accuracy:.4f}"
                if self.baseline_accuracy is not None else "baseline present")
        return [
            f"run {self.run_id} finished in {self.wall_seconds:.1f} s",
            f"images: {self.files_seen} seen, {self.ingested} ingested, {self.rejected} rejected"
            + (f" (see {self.rejection_report})" if self.rejected else ""),
            f"eval accuracy: {acc}; {base}",
            f"blessed: {'yes' if self.blessed else 'no'}",
            f"pushed: {self.pushed_to or 'nothing (model not blessed)'}",
        ]


def _store(config: PipelineConfig) -> metadata.Metadata:
    return metadata.Metadata(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def run_local(config: PipelineConfig, out: TextIO = sys.stdout) -> RunSummary:
    """Runs the whole pipeline for `config` in this process and returns its summary."""
    start = time.monotonic()
    data_root, manifest = data_source.resolve(config)
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        config, data_root, manifest,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path))
    printer = ProgressPrinter(out)
    root_logger = logging.getLogger()
    root_logger.addHandler(printer)
    previous_level = root_logger.level
    root_logger.setLevel(min(previous_level, logging.INFO))
    try:
        print(f"imgpipe: running '{config.name}' on {data_root}"
              f"{'/' + manifest if manifest else ''}", file=out, flush=True)
        tfx.orchestration.LocalDagRunner().run(pipeline)
    finally:
        root_logger.removeHandler(printer)
        root_logger.setLevel(previous_level)
    summary = summarize_latest_run(config)
    summary.wall_seconds = time.monotonic() - start
    return summary


def summarize_latest_run(config: PipelineConfig) -> RunSummary:
    """Reads the newest pipeline run of `config.name` back from MLMD."""
    with _store(config) as m:
        store = m.store
        runs = [c for c in store.get_contexts_by_type("pipeline_run")]
        pipeline_ctx = store.get_context_by_type_and_name("pipeline", config.name)
        if pipeline_ctx is not None:
            in_pipeline = {e.id for e in store.get_executions_by_context(pipeline_ctx.id)}
            runs = [c for c in runs if {e.id for e in store.get_executions_by_context(c.id)}
                    & in_pipeline]
        if not runs:
            raise RuntimeError(f"no runs of pipeline '{config.name}' in {config.metadata_path}")
        run = max(runs, key=lambda c: c.create_time_since_epoch)
        executions = store.get_executions_by_context(run.id)
        summary = RunSummary(run_id=run.name, executions={})
        for execution in executions:
            node = _node_id(execution)
            summary.executions[node] = metadata_store_pb2.Execution.State.Name(
                execution.last_known_state)
        for artifact in _outputs(store, executions):
            _read_artifact(artifact, summary)
        return summary


def _node_id(execution: metadata_store_pb2.Execution) -> str:
    # TFX IR executions carry their node id in the type name's component and properties.
    for key in ("component_id", "node_id"):
        if key in execution.custom_properties:
            return execution.custom_properties[key].string_value
    return execution.name or str(execution.id)


def _outputs(store, executions) -> List[metadata_store_pb2.Artifact]:
    ids = [e.id for e in executions]
    events = store.get_events_by_execution_ids(ids) if ids else []
    output_ids = [ev.artifact_id for ev in events
                  if ev.type in (metadata_store_pb2.Event.OUTPUT,
                                 metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = store.get_artifacts_by_id(sorted(set(output_ids))) if output_ids else []
    types = {t.id: t.name for t in store.get_artifact_types()}
    for a in artifacts:
        a.type = types.get(a.type_id, "")
    return artifacts


def _prop(artifact, name):
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    return getattr(value, value.WhichOneof("value"))


def _read_artifact(artifact, summary: RunSummary) -> None:
    if artifact.type == "Examples" and _prop(artifact, "files_seen") is not None:
        summary.files_seen = _prop(artifact, "files_seen")
        summary.ingested = _prop(artifact, "ingested_count")
        summary.rejected = _prop(artifact, "rejected_count")
        summary.rejection_report = os.path.join(artifact.uri, "rejected.csv")
    elif artifact.type == "ModelBlessing":
        summary.blessed = bool(_prop(artifact, "blessed"))
    elif artifact.type == "ModelEvaluation":
        _read_evaluation(artifact.uri, summary)
    elif artifact.type == "PushedModel" and _prop(artifact, "pushed"):
        summary.pushed_to = _prop(artifact, "pushed_destination")


def _read_evaluation(uri: str, summary: RunSummary) -> None:
    import tensorflow_model_analysis as tfma  # heavy: only when summarising

    result = tfma.load_eval_result(uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key != ():
            continue
        for model_name, outputs in metrics.items():
            # outputs: {output_name: {sub_key: {metric: {"doubleValue" | ...}}}}
            value = outputs.get("", {}).get("", {}).get("accuracy", {})
            if "doubleValue" in value:
                summary.accuracy = value["doubleValue"]
            diff = outputs.get("", {}).get("", {}).get("accuracy - Diff", {})
            if "doubleValue" in diff:
                summary.had_baseline = True
                summary.baseline_accuracy = summary.accuracy - diff["doubleValue"]
    validation = tfma.load_validation_result(uri)
    if validation is not None and validation.HasField("validation_details"):
        summary.had_baseline = summary.had_baseline or bool(
            validation.validation_details.slicing_details
            and any(d.num_matching_slices for d in validation.validation_details.slicing_details))


def dump_summary(summary: RunSummary, path: str) -> None:
    with open(path, "w") as f:
        json.dump(dataclasses.asdict(summary), f, indent=1)
