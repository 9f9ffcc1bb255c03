"""Moving the champion in models.config, and in a running TF Serving that polls it.

TF Serving assigns a label only to a version it has loaded: a running server rejects a
reloaded config whose `stable` names a version not yet AVAILABLE, and since it rejects
the whole file, it never loads that version either. So with a server to wait for
(registry.tf_serving_url), a change of champion is written in two steps:

1. the file that loads the new champion, labels left where they are;
2. once the server reports it AVAILABLE (GET /v1/models/<name>/versions/<N>), the file
   that moves `stable` and `canary` onto it; done when /labels/stable names it.

Without a server, one write: a server started on the file loads it with its labels
(--allow_version_labels_for_unavailable_models). If the server fails to load the
version or times out, the file is restored to what it was and ServingError is raised:
what serves, what the file says and what the registry calls champion stay the same.
"""
import json
import os
import time
import urllib.error
import urllib.request
from typing import Iterable, Optional, Tuple

from components.serving import serving_config

AVAILABLE = "AVAILABLE"
END = "END"
# For a server to load a version, then move the label (registry.tf_serving_timeout_s).
LOAD_TIMEOUT_S = 600


class ServingError(RuntimeError):
    """TF Serving did not take the change; models.config is as it was before."""


def status(url: str, model: str, version: Optional[int] = None, label: str = ""
           ) -> Optional[Tuple[int, str, str]]:
    """(version, state, error message) the server reports for a version or a label of
    `model`; None when it does not know it (HTTP 404)."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else
                                    f"/labels/{label}")
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    (entry,) = body["model_version_status"]
    return (int(entry["version"]), entry["state"],
            entry.get("status", {}).get("error_message", ""))


def _wait(url: str, model: str, timeout_s: float, poll_s: float, what: str,
          version: Optional[int] = None, label: str = "", expect: Optional[int] = None
          ) -> None:
    deadline = time.monotonic() + timeout_s
    seen: Optional[Tuple[int, str, str]] = None
    while True:
        try:
            seen = status(url, model, version, label)
        except OSError as e:  # the server is down or restarting: wait for it
            seen = (expect or -1, f"unreachable ({e})", "")
        if seen is not None and seen[1] == AVAILABLE and seen[0] == expect:
            return
        if seen is not None and seen[1] == END and seen[0] == expect:
            raise ServingError(f"TF Serving at {url} failed to load {what}: {seen[2]}")
        if time.monotonic() > deadline:
            state = "unknown to it" if seen is None else f"version {seen[0]}, {seen[1]}"
            raise ServingError(f"TF Serving at {url} did not serve {what} within "
                               f"{timeout_s:g} s ({state})")
        time.sleep(poll_s)


def move_champion(serving_dir: str, champion: int, previous: Iterable[Optional[int]],
                  server_url: str = "", timeout_s: float = LOAD_TIMEOUT_S, poll_s: float = 1.0) -> str:
    """models.config with `stable`/`canary` on `champion`, `previous` kept loaded (see the
    module doc); returns the file's path."""
    keep = [v for v in previous if v is not None]
    if not server_url:
        return serving_config.write(serving_dir, keep, champion)
    path = serving_config.config_path(serving_dir)
    before = serving_config.read_text(path)
    model = os.path.basename(serving_dir.rstrip("/"))
    stable = serving_config.stable_version(serving_dir)
    try:
        if stable != champion:
            serving_config.write(serving_dir, [*serving_config.listed_versions(serving_dir), *keep,
                                               champion], stable)
            _wait(server_url, model, timeout_s, poll_s, f"version {champion} of '{model}'",
                  version=champion, expect=champion)
        serving_config.write(serving_dir, keep, champion)
        _wait(server_url, model, timeout_s, poll_s,
              f"label '{serving_config.STABLE}' on version {champion} of '{model}'",
              label=serving_config.STABLE, expect=champion)
    except BaseException:
        serving_config.restore(path, before)
        raise
    return path
