"""TF SERVING STAND-IN, for tests only: not TensorFlow Serving.

tensorflow_model_server is not installable here (no PyPI or Debian package; the Docker
image is not reachable), so this plays the part of a running server polling
--model_config_file, with the rules the project depends on, as TF Serving documents them
(serving_config.md, "Assigning String Labels to Model Versions"; the REST status API):

- every poll re-reads the file; a file that does not parse is ignored;
- a label may name only a version that is AVAILABLE. Otherwise the whole reload is
  rejected: no version is loaded or unloaded, no label moves. With
  allow_labels_for_unavailable (--allow_version_labels_for_unavailable_models) a label
  not yet assigned may name an unloaded version (as at start-up; on by default, as in
  the README's command);
- listed versions are loaded (LOADING, then AVAILABLE after load_s, or END with an error
  when the folder holds no saved_model.pb or the test says so), unlisted ones unloaded;
- GET /v1/models/<name>/versions/<N> and /v1/models/<name>/labels/<label> answer
  {"model_version_status": [{"version": "N", "state": ..., "status": {...}}]}, or 404.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Set, Tuple

from components.serving import serving_config


class TFServingStandin:
    def __init__(self, config_file: str, poll_s: float = 0.05, load_s: float = 0.2,
                 allow_labels_for_unavailable: bool = True,
                 fail_versions: Set[int] = frozenset(), stuck_versions: Set[int] = frozenset()):
        self.config_file, self.poll_s, self.load_s = config_file, poll_s, load_s
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.fail_versions = set(fail_versions)  # loading ends in an error
        self.stuck_versions = set(stuck_versions)  # loading never ends
        # model -> version -> (state, error, ready_at)
        self.versions: Dict[str, Dict[int, Tuple[str, str, float]]] = {}
        self.labels: Dict[str, Dict[str, int]] = {}
        self.rejected: List[str] = []  # why reloads were refused
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> "TFServingStandin":
        self._threads = [threading.Thread(target=self._http.serve_forever, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()

    # -- the model manager ---------------------------------------------------------------
    def state(self, model: str, version: int) -> Optional[Tuple[str, str]]:
        with self._lock:
            entry = self.versions.get(model, {}).get(version)
            if entry is None:
                return None
            state, error, ready_at = entry
            if state == "LOADING" and time.monotonic() >= ready_at:
                state = "END" if error else "AVAILABLE"
                self.versions[model][version] = (state, error, ready_at)
            return state, error

    def _poll(self) -> None:
        last = None
        while not self._stop.wait(self.poll_s):
            try:
                with open(self.config_file) as f:
                    text = f.read()
                config = serving_config.parse(text)
            except Exception:  # no file yet, or not a config: keep serving what is loaded
                continue
            if text != last:
                last = text
                self._reload(config)

    def _reload(self, config) -> None:
        wanted = {c.name: c for c in config.model_config_list.config}
        for name, c in wanted.items():
            for label, version in c.version_labels.items():
                available = self.state(name, version) == ("AVAILABLE", "")
                new_label = label not in self.labels.get(name, {})
                if not available and not (self.allow_labels_for_unavailable and new_label):
                    self.rejected.append(f"label '{label}' -> version {version} of '{name}', "
                                         "which is not currently available for inference")
                    return
        with self._lock:
            for name, c in wanted.items():
                listed = set(c.model_version_policy.specific.versions)
                loaded = self.versions.setdefault(name, {})
                for version in list(loaded):
                    if version not in listed:
                        del loaded[version]
                for version in listed - set(loaded):
                    folder = os.path.join(c.base_path, str(version))
                    error = "" if os.path.isfile(os.path.join(folder, "saved_model.pb")) \
                        and version not in self.fail_versions else \
                        f"Failed to load servable {name} version {version} from {folder}"
                    ready_at = time.monotonic() + (
                        float("inf") if version in self.stuck_versions else self.load_s)
                    loaded[version] = ("LOADING", error, ready_at)
                self.labels[name] = dict(c.version_labels)

    # -- REST ----------------------------------------------------------------------------
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                version = None
                if len(parts) == 5 and parts[:2] == ["v1", "models"]:
                    name, kind, key = parts[2:]
                    if kind == "versions" and key.isdigit():
                        version = int(key)
                    elif kind == "labels":
                        version = server.labels.get(name, {}).get(key)
                    found = server.state(name, version) if version is not None else None
                else:
                    found = None
                if found is None:
                    self._send(404, {"error": f"Servable not found for request: {self.path}"})
                    return
                state, error = found
                self._send(200, {"model_version_status": [{
                    "version": str(version), "state": state,
                    "status": {"error_code": "UNKNOWN" if error else "OK",
                               "error_message": error}}]})

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
