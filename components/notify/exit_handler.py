"""Kubeflow's exit handler: the task KFP runs after the pipeline, whatever its outcome,
to tell the webhook. The URL comes from the environment (WEBHOOK_URL_ENV, filled from a
Kubernetes Secret), never from the spec.

    runner.set_exit_handler([NotifyExitHandler(
        final_status=FinalStatusStr(), pipeline_name="imgpipe",
        serving_dir="gs://bucket/serving/image_classifier", timeout_s=10.0)])
"""
from typing import Any, Dict, Optional

from absl import logging
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.orchestration.kubeflow.decorators import exit_handler

from components.artifacts import data_guard as guard_report
from components.artifacts.metric_names import ACCURACY
from components.notify import messages, webhook
from components.serving import serving_config, serving_root

SUCCEEDED = "SUCCEEDED"


def champion(serving_dir: str) -> Optional[Dict[str, Any]]:
    """Version, accuracy and its interval of the served model, from its model card."""
    versions = dict(serving_root.serving_versions(serving_dir))
    if not versions:
        return None
    version = serving_config.stable_version(serving_dir)
    version = version if version in versions else max(versions)
    card = serving_root.read_card(versions[version])
    intervals = card.confidence_intervals or {}
    return {"version": version, "accuracy": card.metrics.get(ACCURACY),
            "interval": intervals.get("accuracy"), "level": intervals.get("level", 0.95)}


def final_status_message(final_status: str, pipeline_name: str,
                         serving_dir: str) -> webhook.Message:
    """The message for KFP's PipelineTaskFinalStatus (JSON) of a finished run."""
    status = json_format.Parse(final_status, pipeline_spec_pb2.PipelineTaskFinalStatus(),
                               ignore_unknown_fields=True)
    run_id = status.pipeline_job_name or status.pipeline_job_resource_name
    if status.state == SUCCEEDED:
        return messages.run_succeeded(pipeline_name, run_id, champion(serving_dir))
    error = status.error.message or f"the run ended {status.state}"
    findings = guard_report.findings_in([line.strip() for line in error.splitlines()])
    if findings:
        return messages.data_stopped(pipeline_name, run_id, findings)
    return messages.run_failed(pipeline_name, run_id, status.pipeline_task_name or "pipeline",
                               f"{status.state}: {error}")


@exit_handler
def NotifyExitHandler(final_status: Parameter[str], pipeline_name: Parameter[str],  # noqa: N802
                      serving_dir: Parameter[str], timeout_s: Parameter[float]) -> None:
    url = webhook.webhook_url("")
    if not url:
        logging.info("no %s in the environment: no notification", "webhook URL")
        return
    message = final_status_message(final_status, pipeline_name, serving_dir)
    webhook.post(url, message, timeout_s)
