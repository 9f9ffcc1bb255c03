"""Notifications: the Slack-compatible body, posting without failing a run or logging
the URL, and Kubeflow's exit handler run as KFP runs it (by its executor class path)."""
import json
import logging

import pytest
from tfx.utils import import_utils

from components.notify import config as notify_config
from components.notify import messages
from components.notify import webhook as hook
from components.notify.exit_handler import SUCCEEDED
from pipeline.config import load_config
from trainer.config_fields import ConfigError


def test_body_is_slack_compatible_with_structured_fields(webhook):
    message = messages.not_blessed("imgpipe", "run-1", [
        {"metric": "accuracy", "value": 0.71, "threshold": "diff >= -0.01 vs baseline",
         "baseline": 0.8}])
    assert webhook_post(webhook, message) == 200
    (received,) = webhook.bodies
    body = received["json"]
    assert received["content_type"] == "application/json"
    assert "NOT blessed" in body["text"] and "run-1" in body["text"]
    (field,) = body["attachments"][0]["fields"]
    assert field["title"] == "accuracy"
    assert field["value"] == "value 0.7100, needs diff >= -0.01 vs baseline, baseline 0.8000"
    assert body["imgpipe"]["event"] == webhook.events()[0] == "not_blessed"
    assert body["imgpipe"]["failures"][0]["baseline"] == 0.8


def webhook_post(receiver, message):
    return hook.post(receiver.url, message, timeout_s=5)


def test_a_refusing_or_absent_webhook_never_raises_nor_logs_the_url(webhook, caplog):
    caplog.set_level(logging.INFO)
    webhook.status = 500
    message = messages.run_failed("imgpipe", "r", "Trainer", "ValueError: boom")
    assert webhook_post(webhook, message) == 500
    url = webhook.url
    webhook.close()
    assert hook.post(url, message, timeout_s=2) is None
    assert "refused by the webhook: HTTP 500" in caplog.text
    assert "not sent" in caplog.text
    assert webhook.token not in caplog.text and "127.0.0.1" not in caplog.text


def test_the_url_is_validated_and_redacted_from_the_config_dict():
    with pytest.raises(ConfigError, match="notify.webhook_url"):
        load_config(overrides=("notify.webhook_url=hooks.example.com/x",))
    with pytest.raises(ConfigError, match="notify.timeout_s"):
        load_config(overrides=("notify.timeout_s=0",))
    config = load_config(overrides=("notify.webhook_url=https://hooks.example.com/SECRET",))
    assert config.notify.webhook_url.endswith("SECRET")
    assert "SECRET" not in json.dumps(config.to_dict())
    other = load_config(overrides=("notify.webhook_url=https://hooks.example.com/OTHER",))
    assert config.fingerprint() == other.fingerprint()


def _run_exit_handler(final_status: dict, serving_dir: str) -> None:
    """What KFP's container does: the executor class by the path the spec names."""
    executor = import_utils.import_class_by_path(
        "components.notify.exit_handler.NotifyExitHandler_Executor")()
    executor.Do({}, {}, {"final_status": json.dumps(final_status), "pipeline_name": "imgpipe",
                         "serving_dir": serving_dir, "timeout_s": 5.0})


def test_exit_handler_reports_a_failed_run_from_kfps_final_status(webhook, monkeypatch,
                                                                  tmp_path):
    monkeypatch.setenv(notify_config.WEBHOOK_URL_ENV, webhook.url)
    _run_exit_handler({"state": "FAILED", "pipelineJobName": "imgpipe-20261207",
                       "pipelineTaskName": "tfx-dag",
                       "error": {"code": 9, "message": "task Trainer failed: OOMKilled"}},
                      str(tmp_path / "serving"))
    body = webhook.bodies[0]["json"]
    assert body["imgpipe"]["event"] == "run_failed"
    assert body["imgpipe"]["run_id"] == "imgpipe-20261207"
    assert "task Trainer failed: OOMKilled" in body["imgpipe"]["error"]


def test_exit_handler_after_success_names_the_champion_with_its_ci(webhook, monkeypatch,
                                                                   tmp_path):
    serving = tmp_path / "serving"
    for version, accuracy in ((1, 0.8), (2, 0.9)):
        (serving / str(version)).mkdir(parents=True)
        (serving / str(version) / "model_card.json").write_text(json.dumps({
            "metrics": {"accuracy": accuracy},
            "confidence_intervals": {"level": 0.95, "accuracy": [accuracy - 0.05,
                                                                 accuracy + 0.05]}}))
    monkeypatch.setenv(notify_config.WEBHOOK_URL_ENV, webhook.url)
    _run_exit_handler({"state": SUCCEEDED, "pipelineJobName": "job-2"}, str(serving))
    body = webhook.bodies[0]["json"]
    assert body["imgpipe"]["event"] == "run_succeeded"
    assert body["imgpipe"]["champion"]["version"] == 2
    assert body["imgpipe"]["champion"]["interval"] == pytest.approx([0.85, 0.95])


def test_exit_handler_without_the_secret_sends_nothing(webhook, monkeypatch, tmp_path):
    monkeypatch.delenv(notify_config.WEBHOOK_URL_ENV, raising=False)
    _run_exit_handler({"state": "FAILED"}, str(tmp_path))
    assert webhook.bodies == []


def test_exit_handler_tells_a_data_guard_stop_from_a_crash(webhook, monkeypatch, tmp_path):
    from components.artifacts.data_guard import DataGuardStop

    monkeypatch.setenv(notify_config.WEBHOOK_URL_ENV, webhook.url)
    stop = DataGuardStop(["anomaly: label: Examples contain values missing from the "
                          "schema: fox (~10%)."], "hint")
    _run_exit_handler({"state": "FAILED", "pipelineJobName": "job-3",
                       "error": {"message": f"Traceback ...\nDataGuardStop: {stop}"}},
                      str(tmp_path))
    body = webhook.bodies[0]["json"]
    assert body["imgpipe"]["event"] == "data_stopped"
    assert body["imgpipe"]["findings"] == stop.findings
