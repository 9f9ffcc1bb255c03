"""The notify section of the config: where a run says what happened.

The webhook URL is a secret. Locally it is a config field like any other (or the
environment variable below); on Kubeflow it never enters the compiled spec: the exit
handler reads it from the environment, filled from a Kubernetes Secret.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainer.config_fields import check

WEBHOOK_URL_ENV = "IMGPIPE_NOTIFY_WEBHOOK_URL"
# On Kubeflow: the Secret (and its key) whose value becomes WEBHOOK_URL_ENV in the exit
# handler's pod; the overlays in kubernetes/ create it.
WEBHOOK_SECRET_NAME = "imgpipe-notify"
WEBHOOK_SECRET_KEY = "webhook_url"
REDACTED = "<redacted>"


@dataclass
class NotifyConfig:
    # A Slack-compatible incoming webhook (http:// or https://). Empty: the environment
    # variable IMGPIPE_NOTIFY_WEBHOOK_URL, else no notifications.
    webhook_url: str = ""
    timeout_s: float = 10.0
    # Kubeflow: add the exit-handler task that notifies after every run, its URL read
    # from the Secret WEBHOOK_SECRET_NAME (key WEBHOOK_SECRET_KEY) in the run's namespace.
    on_kubeflow: bool = False

    def validate(self) -> None:
        check(not self.webhook_url or self.webhook_url.startswith(("http://", "https://")),
              "notify.webhook_url", "an http:// or https:// URL, or empty")
        check(self.timeout_s > 0, "notify.timeout_s", "a positive number of seconds")
