"""The local runner tells the webhook what happened: a failed run (its task and error), a
candidate not blessed (each threshold missed), a pushed version (with its CI). The URL,
a secret, is in no log."""
import logging
import os

import pytest

from pipeline.cli import main as imgpipe
from pipeline.runners.notifications import Notifier


def test_a_failed_run_names_the_task_and_the_error_and_logs_no_url(webhook, tmp_path):
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        (data / label / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    home = tmp_path / "home"
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        with pytest.raises(Exception, match="ingest"):
            imgpipe(["run", "--data", str(data), "--home", str(home),
                     "--set", f"notify.webhook_url={webhook.url}"])
    finally:
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
            handler.close()
    (body,) = [b["json"] for b in webhook.bodies]
    assert body["imgpipe"]["event"] == "run_failed"
    assert body["imgpipe"]["task"] == "ImageExampleGen"
    assert "ingest" in body["imgpipe"]["error"]
    assert "FAILED in ImageExampleGen" in body["text"]
    logs = [os.path.join(home, "logs", f) for f in os.listdir(home / "logs")]
    assert logs
    for path in logs:
        with open(path) as f:
            text = f.read()
        assert "notification 'run_failed' sent" in text
        assert webhook.token not in text


def test_a_pushed_version_is_announced_with_its_accuracy_and_ci(webhook, e2e):
    notifier = Notifier(e2e["config"])
    notifier.url = webhook.url  # as if notify.webhook_url had been set for the run
    notifier.run_done(e2e["first"])
    (body,) = [b["json"] for b in webhook.bodies]
    first = e2e["first"]
    assert body["imgpipe"]["event"] == "pushed"
    assert body["imgpipe"]["version"] == first.pushed_version == 1
    assert body["imgpipe"]["accuracy"] == pytest.approx(first.accuracy)
    assert body["imgpipe"]["interval"] == pytest.approx(first.accuracy_interval)
    assert f"pushed version 1, accuracy {first.accuracy:.4f} (95% CI" in body["text"]


def test_a_rerun_that_pushes_nothing_new_says_nothing(webhook, e2e):
    notifier = Notifier(e2e["config"])
    notifier.url = webhook.url
    notifier.run_done(e2e["second"])
    assert webhook.bodies == []


def test_a_candidate_not_blessed_lists_each_threshold_with_the_baseline(webhook, promotion):
    worse = promotion["worse"]
    assert worse.blessed is False
    notifier = Notifier(promotion["worse_config"])
    notifier.url = webhook.url
    notifier.run_done(worse)
    (body,) = [b["json"] for b in webhook.bodies]
    assert body["imgpipe"]["event"] == "not_blessed"
    failures = body["imgpipe"]["failures"]
    assert len(failures) == len(worse.failures) >= 1
    accuracy = [f for f in failures if f["metric"] == "accuracy"]
    assert accuracy, failures
    assert accuracy[0]["value"] == pytest.approx(worse.accuracy)
    assert accuracy[0]["baseline"] == pytest.approx(worse.baseline_accuracy)
    assert "vs baseline" in accuracy[0]["threshold"]
    assert len(body["attachments"][0]["fields"]) == len(failures)
