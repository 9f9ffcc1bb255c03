"""`imgpipe history`: one row per run of the pipeline, read from ML Metadata: when, what
data (span, images), the accuracy with its CI, the baseline, blessed, the version pushed,
and the data guard's drift and anomaly findings (or where a failed run stopped)."""
import dataclasses
import datetime
import json
from typing import Any, List, Optional

from google.protobuf import json_format

from ml_metadata.proto import metadata_store_pb2
from tfx.proto.orchestration import execution_result_pb2

from components.artifacts import data_guard as guard_report
from components.artifacts.confidence import format_interval
from pipeline import component_ids as ids
from pipeline.config import PipelineConfig
from pipeline import run_summary
from pipeline.run_summary import (RunSummary, artifact_property, node_ids,
                                  open_store, pipeline_runs, run_artifacts,
                                  summarize_latest_run)

# Where TFX keeps a failed execution's result (its error) on the execution.
_EXECUTION_RESULT = "__execution_result__"
# What the local runner keeps on the data guard's execution that stopped a run.


@dataclasses.dataclass
class RunRecord:
    run_id: str
    started: datetime.datetime
    summary: RunSummary
    span: Optional[int] = None
    failed_task: Optional[str] = None  # the component whose execution failed
    error: Optional[str] = None  # the last line of its error
    findings: List[str] = dataclasses.field(default_factory=list)  # drift, anomalies

    @property
    def state(self) -> str:
        if self.failed_task:
            return "stopped" if self.failed_task == ids.DATA_GUARD and \
                self.findings else "failed"
        return "complete" if self.summary.blessed is not None else "incomplete"


def _error_lines(execution: metadata_store_pb2.Execution) -> List[str]:
    if _EXECUTION_RESULT not in execution.custom_properties:
        return []
    result = execution_result_pb2.ExecutionResult()

    json_format.Parse(execution.custom_properties[_EXECUTION_RESULT].string_value, result,
                      ignore_unknown_fields=True)
    return [line.strip() for line in result.result_message.splitlines() if line.strip()]


def _record(store: Any, config: PipelineConfig, run: metadata_store_pb2.Context) -> RunRecord:
    record = RunRecord(run.name, datetime.datetime.fromtimestamp(
        run.create_time_since_epoch / 1000), summarize_latest_run(config, run.name))
    artifacts = run_artifacts(store, run)
    examples = artifacts.get(("ImageExampleGen", "examples"))
    if examples is not None:  # TFX's `span` property, when ingestion sets one
        if "span" in examples.properties:
            record.span = examples.properties["span"].int_value
        elif artifact_property(examples, "span") is not None:
            record.span = int(artifact_property(examples, "span"))
    guard = artifacts.get((ids.DATA_GUARD, guard_report.OUTPUT_KEY))
    if guard is not None:
        record.findings = json.loads(artifact_property(guard, guard_report.FINDINGS) or "[]")
    executions = store.get_executions_by_context(run.id)
    nodes = node_ids(store, executions)
    failed = [e for e in executions
              if e.last_known_state == metadata_store_pb2.Execution.FAILED]
    if failed:
        execution = max(failed, key=lambda e: e.id)
        record.failed_task = nodes[execution.id]
        lines = _error_lines(execution)
        record.error = lines[-1] if lines else None
        if run_summary.STOP_FINDINGS in execution.custom_properties:
            record.findings = json.loads(
                execution.custom_properties[run_summary.STOP_FINDINGS].string_value)
    return record


def history(config: PipelineConfig, limit: Optional[int] = None) -> List[RunRecord]:
    """The runs of config.name, oldest first (the newest `limit` when given)."""
    with open_store(config) as m:
        runs = pipeline_runs(m.store, config.name)
        runs = runs[-limit:] if limit else runs
        return [_record(m.store, config, run) for run in runs]


def _accuracy(s: RunSummary) -> str:
    if s.accuracy is None:
        return "-"
    ci = format_interval(s.accuracy_interval, s.interval_level) if s.accuracy_interval else ""
    return f"{s.accuracy:.4f}" + (f" ({ci})" if ci else "")


def _baseline(s: RunSummary) -> str:
    if s.blessed is None and not s.had_baseline:
        return "-"  # the run stopped before the Evaluator
    if not s.had_baseline:
        return "none"
    if s.baseline_is_candidate:
        return f"v{s.baseline_version} (same model)"
    acc = f" {s.baseline_accuracy:.4f}" if s.baseline_accuracy is not None else ""
    return f"v{s.baseline_version}{acc}"


def _pushed(s: RunSummary) -> str:
    if s.push_status == "pushed":
        return f"v{s.pushed_version}"
    if s.push_status == "already_pushed":
        return f"(v{s.pushed_version})"
    return "-"


HEADERS = ("date", "run", "span", "images", "accuracy", "baseline", "blessed", "pushed",
           "data")


def rows(records: List[RunRecord]) -> List[List[str]]:
    table = []
    for r in records:
        s = r.summary
        blessed = "-" if s.blessed is None else "yes" if s.blessed else "no"
        data = "; ".join(r.findings) or ("ok" if r.state == "complete" else "")
        if r.failed_task and r.state == "failed":
            data = f"FAILED in {r.failed_task}: {r.error or ''}"
        elif r.state == "stopped":
            data = "STOPPED: " + data
        table.append([r.started.strftime("%Y-%m-%d %H:%M"), r.run_id,
                      "-" if r.span is None else str(r.span),
                      "-" if s.ingested is None else str(s.ingested), _accuracy(s),
                      _baseline(s), blessed, _pushed(s), data])
    return table


def lines(records: List[RunRecord]) -> List[str]:
    """A fixed-width table, the last column unpadded (findings may be long)."""
    table = [list(HEADERS)] + rows(records)
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS) - 1)]
    return ["  ".join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]).rstrip()
            for row in table]
