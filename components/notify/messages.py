"""What each notification says, from plain values (the runners gather them)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from components.notify.webhook import (DATA_STOPPED, NOT_BLESSED, PUSHED, RUN_FAILED,
                                       RUN_SUCCEEDED, Message)

# The longest error text sent: a traceback's tail is what names the cause.
MAX_ERROR_CHARS = 1500


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _ci(interval: Optional[Sequence[float]], level: float) -> str:
    return f"{round(100 * level)}% CI {interval[0]:.3f}-{interval[1]:.3f}" if interval else \
        "no CI"


def run_failed(pipeline: str, run_id: str, task: str, error: str) -> Message:
    error = error if len(error) <= MAX_ERROR_CHARS else "..." + error[-MAX_ERROR_CHARS:]
    return Message(RUN_FAILED, f"imgpipe {pipeline}: run {run_id} FAILED in {task}",
                   [("task", task), ("error", error)],
                   {"pipeline": pipeline, "run_id": run_id, "task": task, "error": error})


def not_blessed(pipeline: str, run_id: str, failures: List[Dict[str, Any]]) -> Message:
    """`failures`: {metric, value, threshold, baseline} per threshold missed (value and
    baseline are the candidate's and the baseline's own values, not their difference)."""
    fields = [(f["metric"], f"value {_number(f['value'])}, needs {f['threshold']}, "
                            f"baseline {_number(f.get('baseline'))}") for f in failures]
    return Message(NOT_BLESSED, f"imgpipe {pipeline}: run {run_id}: candidate NOT blessed "
                                f"({len(failures)} threshold(s) missed), nothing pushed",
                   fields, {"pipeline": pipeline, "run_id": run_id, "failures": failures})


def data_stopped(pipeline: str, run_id: str, findings: List[str]) -> Message:
    return Message(DATA_STOPPED, f"imgpipe {pipeline}: run {run_id} STOPPED before training: "
                                 "the data changed", [("finding", f) for f in findings],
                   {"pipeline": pipeline, "run_id": run_id, "findings": findings})


def pushed(pipeline: str, run_id: str, version: int, accuracy: Optional[float],
           interval: Optional[Sequence[float]], level: float, destination: str) -> Message:
    return Message(PUSHED, f"imgpipe {pipeline}: run {run_id} pushed version {version}, "
                           f"accuracy {_number(accuracy)} ({_ci(interval, level)})",
                   [("version", str(version)), ("accuracy", _number(accuracy)),
                    ("interval", _ci(interval, level)), ("serving path", destination)],
                   {"pipeline": pipeline, "run_id": run_id, "version": version,
                    "accuracy": accuracy, "interval": list(interval) if interval else None,
                    "interval_level": level, "destination": destination})


def run_succeeded(pipeline: str, run_id: str, champion: Optional[Dict[str, Any]]) -> Message:
    """Kubeflow's exit handler after a run that succeeded: what serves now."""
    fields = []
    details: Dict[str, Any] = {"pipeline": pipeline, "run_id": run_id}
    if champion:
        fields = [("champion version", str(champion["version"])),
                  ("accuracy", _number(champion.get("accuracy"))),
                  ("interval", _ci(champion.get("interval"), champion.get("level", 0.95)))]
        details["champion"] = champion
    return Message(RUN_SUCCEEDED, f"imgpipe {pipeline}: run {run_id} succeeded", fields,
                   details)
