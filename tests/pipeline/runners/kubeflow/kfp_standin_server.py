"""KFP STAND-IN SERVER, for tests only: not Kubeflow Pipelines.

Serves the few Kubeflow Pipelines REST endpoints (API v2beta1) that imgpipe's submit and
schedule use, on 127.0.0.1, and records every request. It checks requests the way the real
API server does where imgpipe depends on it: only the fields the v2beta1 messages define
(snake_case or lowerCamelCase, as protojson accepts), required fields present, referenced
pipelines/versions/experiments existing, an uploaded spec parsing as a KFP PipelineSpec,
run parameters declared by that spec with the declared type, pipeline roots the backend
accepts, and cron triggers in the backend's 6-field, seconds-first format. Invalid
requests get the API's error shape with HTTP 400/401/404/409. Nothing runs.
"""
import dataclasses
import email.parser
import email.policy
import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

API = "/apis/v2beta1"
# Field names of the v2beta1 messages (backend/api/v2beta1/*.proto).
FIELDS = {
    "Pipeline": {"pipeline_id", "display_name", "description", "created_at", "namespace",
                 "error"},
    "Experiment": {"experiment_id", "display_name", "description", "created_at", "namespace",
                   "storage_state", "last_run_created_at"},
    "Run": {"experiment_id", "run_id", "display_name", "storage_state", "description",
            "pipeline_version_id", "pipeline_spec", "pipeline_version_reference",
            "runtime_config", "service_account", "created_at", "scheduled_at", "finished_at",
            "state", "error", "run_details", "recurring_run_id", "state_history"},
    "RecurringRun": {"recurring_run_id", "display_name", "description", "pipeline_version_id",
                     "pipeline_spec", "pipeline_version_reference", "runtime_config",
                     "service_account", "max_concurrency", "trigger", "mode", "created_at",
                     "updated_at", "status", "error", "no_catchup", "namespace",
                     "experiment_id"},
    "RuntimeConfig": {"parameters", "pipeline_root"},
    "PipelineVersionReference": {"pipeline_id", "pipeline_version_id"},
    "Trigger": {"cron_schedule", "periodic_schedule"},
    "CronSchedule": {"start_time", "end_time", "cron"},
}
ROOT_SCHEMES = ("gs://", "s3://", "minio://")
# robfig/cron with seconds, as KFP's ScheduledWorkflow controller parses it.
CRON_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
CRON_NAMES = {4: "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(),
              5: "SUN MON TUE WED THU FRI SAT".split()}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]  # names lower-cased: HTTP header names ignore case
    body: Any  # parsed JSON, {"fields": ..., "files": ...} for multipart, or None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _message(body: Any, kind: str, required: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Checks a JSON object against a v2beta1 message's fields; returns it snake_cased."""
    if not isinstance(body, dict):
        raise ApiError(400, f"{kind}: expected a JSON object")
    normalised = {_snake(k): v for k, v in body.items()}
    unknown = sorted(set(normalised) - FIELDS[kind])
    if unknown:
        raise ApiError(400, f"{kind}: unknown field {unknown[0]!r}")
    for name in required:
        if not normalised.get(name):
            raise ApiError(400, f"{kind}.{name} is required")
    return normalised


def cron_problem(expression: str) -> Optional[str]:
    fields = expression.split()
    if len(fields) != 6:
        return f"expected 6 fields (seconds first), got {len(fields)}"
    for index, (value, (low, high)) in enumerate(zip(fields, CRON_RANGES)):
        if value == "?" and index in (3, 5):
            continue
        for part in value.split(","):
            match = re.fullmatch(r"(\*|\w+(?:-\w+)?)(?:/(\d+))?", part)
            if not match:
                return f"field {index}: {part!r}"
            if match.group(1) == "*":
                continue
            for bound in match.group(1).split("-"):
                names = CRON_NAMES.get(index, [])
                number = (int(bound) if bound.isdigit() else
                          names.index(bound.upper()) + (index == 4) if bound.upper() in names
                          else None)
                if number is None or not low <= number <= high:
                    return f"field {index}: {bound!r} outside {low}-{high}"
    return None


class StandInKfp:
    """The stand-in's state and request handling; `serve()` starts it on a free port."""

    def __init__(self, required_token: Optional[str] = None, multi_user: bool = False):
        self.required_token = required_token
        self.multi_user = multi_user
        self.requests: List[Recorded] = []
        self.pipelines: Dict[str, Dict[str, Any]] = {}
        self.versions: Dict[str, Dict[str, Any]] = {}
        self.specs: Dict[str, Dict[str, Any]] = {}  # version id -> PipelineSpec dict
        self.experiments: Dict[str, Dict[str, Any]] = {}
        self.runs: Dict[str, Dict[str, Any]] = {}
        self.recurring_runs: Dict[str, Dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server: Optional[ThreadingHTTPServer] = None

    # -- lifecycle ---------------------------------------------------------------------
    def serve(self) -> "StandInKfp":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def do_DELETE(self) -> None:
                standin._handle(self, "DELETE")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def calls(self, method: str, path_pattern: str) -> List[Recorded]:
        return [r for r in self.requests
                if r.method == method and re.fullmatch(path_pattern, r.path)]

    # -- HTTP --------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = self._parse_body(handler.headers.get("Content-Type", ""), raw)
            record = Recorded(method, parsed.path, parse_qs(parsed.query),
                              {k.lower(): v for k, v in handler.headers.items()}, body)
            with self._lock:
                self.requests.append(record)
                self._authorize(record)
                status, answer = 200, self._route(record)
        except ApiError as e:
            status, answer = e.status, {"error": str(e), "message": str(e),
                                        "code": {400: 3, 401: 16, 404: 5, 409: 6}.get(e.status, 2)}
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _parse_body(content_type: str, raw: bytes) -> Any:
        if not raw:
            return None
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
            files = {part.get_param("name", header="content-disposition"):
                     part.get_payload(decode=True) for part in message.iter_parts()}
            return {"files": files}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "body is not JSON") from None

    def _authorize(self, record: Recorded) -> None:
        if self.required_token and \
                record.headers.get("authorization") != f"Bearer {self.required_token}":
            raise ApiError(401, "Unauthenticated: missing or invalid bearer token")

    def _route(self, r: Recorded) -> Any:
        path = r.path[len(API):] if r.path.startswith(API) else None
        routes = [
            ("GET", r"/healthz", lambda m: {"multi_user": self.multi_user,
                                             "commit_sha": "stand-in", "tag_name": "2.0.5"}),
            ("GET", r"/pipelines", lambda m: self._list("pipelines", self.pipelines, r)),
            ("POST", r"/pipelines", lambda m: self._create_pipeline(r)),
            ("GET", r"/pipelines/([^/]+)/versions", lambda m: self._list(
                "pipeline_versions", {k: v for k, v in self.versions.items()
                                      if v["pipeline_id"] == m.group(1)}, r)),
            ("POST", r"/pipelines/upload_version", lambda m: self._upload_version(r)),
            ("GET", r"/experiments", lambda m: self._list("experiments", self.experiments, r)),
            ("POST", r"/experiments", lambda m: self._create_experiment(r)),
            ("POST", r"/runs", lambda m: self._create_run(r)),
            # The v2beta1 proto names this list field recurringRuns (camelCase).
            ("GET", r"/recurringruns", lambda m: self._list("recurringRuns", {
                k: v for k, v in self.recurring_runs.items()
                if v["experiment_id"] in r.query.get("experiment_id", [v["experiment_id"]])}, r)),
            ("POST", r"/recurringruns", lambda m: self._create_recurring_run(r)),
            ("POST", r"/recurringruns/([^/:]+):(enable|disable)",
             lambda m: self._set_mode(m.group(1), m.group(2))),
            ("DELETE", r"/recurringruns/([^/:]+)", lambda m: self._delete_recurring(m.group(1))),
        ]
        for method, pattern, action in routes:
            match = re.fullmatch(pattern, path or "")
            if match and method == r.method:
                return action(match)
        raise ApiError(404, f"{r.method} {r.path}: not an endpoint of this stand-in")

    # -- resources -----------------------------------------------------------------------
    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    @staticmethod
    def _list(key: str, items: Dict[str, Dict[str, Any]], r: Recorded) -> Dict[str, Any]:
        """List with the API's filter: predicates EQUALS on string keys."""
        selected = list(items.values())
        for predicate in json.loads(r.query.get("filter", ["{}"])[0]).get("predicates", []):
            if predicate.get("operation") not in ("EQUALS", 1):
                raise ApiError(400, f"stand-in supports EQUALS filters only: {predicate}")
            value = predicate.get("string_value", predicate.get("stringValue"))
            selected = [i for i in selected if i.get(predicate["key"]) == value]
        return {key: selected, "total_size": len(selected)} if selected else {}

    def _create_pipeline(self, r: Recorded) -> Dict[str, Any]:
        body = _message(r.body, "Pipeline", required=("display_name",))
        if any(p["display_name"] == body["display_name"] for p in self.pipelines.values()):
            raise ApiError(409, f"pipeline {body['display_name']!r} already exists")
        pipeline = {**body, "pipeline_id": self._new_id("pipeline"),
                    "created_at": "2026-01-01T00:00:00Z"}
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        return pipeline

    def _upload_version(self, r: Recorded) -> Dict[str, Any]:
        name = r.query.get("name", [""])[0]
        pipeline_id = r.query.get("pipelineid", [""])[0]
        upload = (r.body or {}).get("files", {}).get("uploadfile")
        if not name or pipeline_id not in self.pipelines or upload is None:
            raise ApiError(400, "upload_version needs name, an existing pipelineid and the "
                           "multipart file 'uploadfile'")
        if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name
               for v in self.versions.values()):
            raise ApiError(409, f"version {name!r} already exists")
        spec = next(yaml.safe_load_all(upload))  # a platform spec may follow
        try:
            json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
        except json_format.ParseError as e:
            raise ApiError(400, f"uploaded file is not a PipelineSpec: {e}") from None
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": self._new_id("version"),
                   "display_name": name,
                   "description": r.query.get("description", [""])[0],
                   "created_at": "2026-01-01T00:00:00Z"}
        self.versions[version["pipeline_version_id"]] = version
        self.specs[version["pipeline_version_id"]] = spec
        return version

    def _create_experiment(self, r: Recorded) -> Dict[str, Any]:
        body = _message(r.body, "Experiment", required=("display_name",))
        experiment = {**body, "experiment_id": self._new_id("experiment"),
                      "storage_state": "AVAILABLE"}
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _check_run_config(self, body: Dict[str, Any]) -> None:
        """What the API server checks before it starts a run of a stored version."""
        if body.get("experiment_id") and body["experiment_id"] not in self.experiments:
            raise ApiError(404, f"experiment {body['experiment_id']} not found")
        if bool(body.get("pipeline_spec")) == bool(body.get("pipeline_version_reference")):
            raise ApiError(400, "exactly one of pipeline_spec and pipeline_version_reference")
        reference = _message(body["pipeline_version_reference"], "PipelineVersionReference",
                             required=("pipeline_id", "pipeline_version_id"))
        version = self.versions.get(reference["pipeline_version_id"])
        if version is None or version["pipeline_id"] != reference["pipeline_id"]:
            raise ApiError(404, f"pipeline version {reference} not found")
        runtime = _message(body.get("runtime_config") or {}, "RuntimeConfig")
        root = runtime.get("pipeline_root") or \
            self.specs[reference["pipeline_version_id"]].get("defaultPipelineRoot", "")
        if not root.startswith(ROOT_SCHEMES):
            raise ApiError(400, f"unsupported pipeline root {root!r}")
        declared = self.specs[reference["pipeline_version_id"]]["root"].get(
            "inputDefinitions", {}).get("parameters", {})
        for name, value in (runtime.get("parameters") or {}).items():
            if name not in declared:
                raise ApiError(400, f"parameter {name!r} is not an input of the pipeline")
            if declared[name]["parameterType"] == "STRING" and not isinstance(value, str):
                raise ApiError(400, f"parameter {name!r} must be a string")
        missing = [n for n, p in declared.items()
                   if "defaultValue" not in p and n not in (runtime.get("parameters") or {})]
        if missing:
            raise ApiError(400, f"parameters without value or default: {missing}")

    def _create_run(self, r: Recorded) -> Dict[str, Any]:
        body = _message(r.body, "Run", required=("display_name",))
        self._check_run_config(body)
        run = {**body, "run_id": self._new_id("run"), "state": "PENDING"}
        self.runs[run["run_id"]] = run
        return run

    def _create_recurring_run(self, r: Recorded) -> Dict[str, Any]:
        body = _message(r.body, "RecurringRun", required=("display_name", "trigger"))
        self._check_run_config(body)
        trigger = _message(body["trigger"], "Trigger")
        if len(trigger) != 1:
            raise ApiError(400, "trigger needs exactly one of cron_schedule, periodic_schedule")
        cron = _message(trigger.get("cron_schedule") or {}, "CronSchedule").get("cron", "")
        problem = "cron_schedule" in trigger and cron_problem(cron)
        if problem:
            raise ApiError(400, f"invalid cron {cron!r}: {problem}")
        if body.get("mode") not in ("ENABLE", "DISABLE"):
            raise ApiError(400, f"mode must be ENABLE or DISABLE, got {body.get('mode')!r}")
        if not 1 <= int(body.get("max_concurrency") or 1) <= 10:
            raise ApiError(400, "max_concurrency must be between 1 and 10")
        recurring = {**body, "recurring_run_id": self._new_id("recurring"),
                     "status": "ENABLED" if body["mode"] == "ENABLE" else "DISABLED"}
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring

    def _set_mode(self, recurring_run_id: str, verb: str) -> Dict[str, Any]:
        recurring = self._recurring(recurring_run_id)
        recurring["mode"] = verb.upper()
        recurring["status"] = {"enable": "ENABLED", "disable": "DISABLED"}[verb]
        return {}

    def _delete_recurring(self, recurring_run_id: str) -> Dict[str, Any]:
        self._recurring(recurring_run_id)
        del self.recurring_runs[recurring_run_id]
        return {}

    def _recurring(self, recurring_run_id: str) -> Dict[str, Any]:
        if recurring_run_id not in self.recurring_runs:
            raise ApiError(404, f"recurring run {recurring_run_id} not found")
        return self.recurring_runs[recurring_run_id]
