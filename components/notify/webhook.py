"""One notification: a Slack-compatible JSON body, POSTed to the webhook.

The body has Slack's `text` (what a person reads) and `attachments[].fields` (title and
value pairs Slack shows as a table), plus `imgpipe`: the same facts as plain JSON for
any other receiver. Posting never fails a run and never logs the URL (a secret).
"""
from __future__ import annotations

import dataclasses
import json
import os
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from absl import logging

from components.notify.config import WEBHOOK_URL_ENV

# Events, as `imgpipe.event` spells them.
RUN_FAILED = "run_failed"
NOT_BLESSED = "not_blessed"
DATA_STOPPED = "data_stopped"
PUSHED = "pushed"
RUN_SUCCEEDED = "run_succeeded"

_COLOURS = {RUN_FAILED: "danger", NOT_BLESSED: "warning", DATA_STOPPED: "danger",
            PUSHED: "good", RUN_SUCCEEDED: "good"}


@dataclasses.dataclass
class Message:
    event: str
    text: str
    fields: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    details: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def body(self) -> Dict[str, Any]:
        return {
            "text": self.text,
            "attachments": [{"color": _COLOURS.get(self.event, "#888888"),
                             "fields": [{"title": t, "value": v, "short": len(v) < 40}
                                        for t, v in self.fields]}],
            "imgpipe": {"event": self.event, **self.details},
        }


def webhook_url(configured: str) -> str:
    """The configured URL, else the environment's, else ''."""
    return configured or os.environ.get(WEBHOOK_URL_ENV, "")


def post(url: str, message: Message, timeout_s: float) -> Optional[int]:
    """POSTs `message`; returns the HTTP status, or None when it could not be sent."""
    request = urllib.request.Request(
        url, data=json.dumps(message.body()).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as e:
        logging.warning("notification '%s' refused by the webhook: HTTP %d", message.event,
                        e.code)
        return e.code
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        logging.warning("notification '%s' not sent: %s", message.event,
                        type(reason).__name__)
        return None
