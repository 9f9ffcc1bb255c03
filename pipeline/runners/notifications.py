"""The local runner's notifications: what a finished or failed run says to the webhook
(notify.webhook_url, else $IMGPIPE_NOTIFY_WEBHOOK_URL; nothing when neither is set)."""
from typing import Any, Dict, List, Optional

from absl import logging
from ml_metadata.proto import metadata_store_pb2

from components.artifacts import data_guard as guard_report
from components.notify import messages, webhook
from components.notify.webhook import Message
from pipeline.config import PipelineConfig
from pipeline.run_summary import RunSummary, node_ids, find_run, open_store

# The task a failure is blamed on when no component execution failed (e.g. the DAG
# could not start).
RUNNER_TASK = "runner"


def failed_task(config: PipelineConfig) -> tuple:
    """(run id, id of the component whose execution failed) of the newest run."""
    try:
        with open_store(config) as m:
            run = find_run(m.store, config.name)
            executions = m.store.get_executions_by_context(run.id)
            nodes = node_ids(m.store, executions)
            failed = [e for e in executions
                      if e.last_known_state == metadata_store_pb2.Execution.FAILED]
            task = nodes[max(failed, key=lambda e: e.id).id] if failed else RUNNER_TASK
            return run.name, task
    except RuntimeError:  # no run recorded at all
        return "", RUNNER_TASK


def failure_message(config: PipelineConfig, error: BaseException) -> Message:
    run_id, task = failed_task(config)
    text = f"{type(error).__name__}: {error}"
    findings = guard_report.findings_in(
        [line.strip() for line in str(error).splitlines() if line.strip()])
    if findings:
        return messages.data_stopped(config.name, run_id, findings)
    return messages.run_failed(config.name, run_id, task, text)


def summary_messages(config: PipelineConfig, summary: RunSummary) -> List[Message]:
    """Not blessed, or a new version pushed: one message each (a re-run that pushes
    nothing new and blesses the same model says nothing)."""
    found: List[Message] = []
    if summary.blessed is False:
        found.append(messages.not_blessed(config.name, summary.run_id,
                                          summary.failure_details))
    if summary.push_status == "pushed" and summary.pushed_version is not None:
        found.append(messages.pushed(
            config.name, summary.run_id, summary.pushed_version, summary.accuracy,
            summary.accuracy_interval, summary.interval_level, summary.pushed_to or ""))
    return found


class Notifier:
    """Sends a run's notifications when a webhook is configured."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.url = webhook.webhook_url(config.notify.webhook_url)
        self.sent: List[Dict[str, Any]] = []

    def _send(self, message: Message) -> Optional[int]:
        if not self.url:
            return None
        status = webhook.post(self.url, message, self.config.notify.timeout_s)
        logging.info("notification '%s' sent: HTTP %s", message.event, status)
        self.sent.append(message.body())
        return status

    def run_failed(self, error: BaseException) -> None:
        if self.url:
            self._send(failure_message(self.config, error))

    def run_done(self, summary: RunSummary) -> None:
        for message in summary_messages(self.config, summary):
            self._send(message)
