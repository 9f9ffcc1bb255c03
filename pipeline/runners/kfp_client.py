"""The Kubeflow Pipelines API (v2beta1) through kfp.Client: authentication, a versioned
pipeline upload, runs and recurring runs. Every failure becomes a KfpError whose message
says what went wrong and what to check.

Authentication, first match wins (the kfp SDK's mechanisms):
  KF_PIPELINES_TOKEN   a bearer token (e.g. an identity token for an IAP-protected host)
  KF_PIPELINES_COOKIE  a session cookie, e.g. "authservice_session=..." (Dex/oauth2-proxy)
  a projected service-account token (audience pipelines.kubeflow.org) at
  $KF_PIPELINES_SA_TOKEN_PATH or /var/run/secrets/kubeflow/pipelines/token: in-cluster
  otherwise none (a port-forwarded or single-user KFP).
"""
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import re
import socket
import urllib.error
import urllib.request
import warnings
from typing import Any, Dict, Iterator, List, Optional

from kfp import client as kfp_client_module
from kfp.client import set_volume_credentials
import kfp_server_api

from pipeline.config import PipelineConfig

TOKEN_ENV = "KF_PIPELINES_TOKEN"
COOKIE_ENV = "KF_PIPELINES_COOKIE"
IN_CLUSTER_HOST = "http://ml-pipeline.runners.kubeflow.svc.cluster.local:8888"
HEALTHZ = "/apis/v2beta1/healthz"
_HINT_AUTH = (f"set {TOKEN_ENV} (a bearer token) or {COOKIE_ENV} (a session cookie), or run "
              "in the cluster with a projected service-account token for audience "
              "pipelines.kubeflow.org")


class KfpError(Exception):
    """A Kubeflow Pipelines call failed; the message is meant for the user."""


# -- connection ---------------------------------------------------------------------------
@dataclasses.dataclass
class Auth:
    kind: str  # token | cookie | service-account | none
    token: Optional[str] = None
    cookie: Optional[str] = None
    token_path: Optional[str] = None

    def headers(self) -> Dict[str, str]:
        if self.kind == "cookie":
            return {"Cookie": self.cookie or ""}
        token = self.token
        if self.kind == "service-account":
            with open(self.token_path or "") as f:
                token = f.read().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def client_kwargs(self) -> Dict[str, Any]:
        if self.kind == "token":
            return {"existing_token": self.token}
        if self.kind == "cookie":
            return {"cookies": self.cookie}
        if self.kind == "service-account":
            return {"credentials": set_volume_credentials.ServiceAccountTokenVolumeCredentials(
                self.token_path)}
        return {}


def resolve_auth(env: Optional[Dict[str, str]] = None) -> Auth:
    env = dict(os.environ if env is None else env)
    if env.get(TOKEN_ENV):
        return Auth("token", token=env[TOKEN_ENV])
    if env.get(COOKIE_ENV):
        return Auth("cookie", cookie=env[COOKIE_ENV])
    path = env.get(kfp_client_module.KF_PIPELINES_SA_TOKEN_ENV) or \
        kfp_client_module.KF_PIPELINES_SA_TOKEN_PATH
    if os.path.isfile(path):
        return Auth("service-account", token_path=path)
    return Auth("none")


def resolve_host(cli_host: Optional[str], config: PipelineConfig) -> str:
    host = cli_host or config.kubeflow.host or \
        os.environ.get(kfp_client_module.KF_PIPELINES_ENDPOINT_ENV)
    if not host and os.environ.get("KUBERNETES_SERVICE_HOST"):
        host = IN_CLUSTER_HOST
    if not host:
        raise KfpError("no Kubeflow Pipelines host: pass --host URL, set kubeflow.host, or "
                       f"{kfp_client_module.KF_PIPELINES_ENDPOINT_ENV}")
    if not host.startswith(("http://", "https://")):
        raise KfpError(f"host {host!r}: expected a URL starting with http:// or https://")
    return host.rstrip("/")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is reported, not followed: it is usually a login page


def check_health(host: str, auth: Auth, timeout: float = 15.0) -> Dict[str, Any]:
    """GET the healthz endpoint: fails fast and clearly on a wrong host, a host that is
    down or credentials the API rejects (kfp.Client would retry for half a minute)."""
    request = urllib.request.Request(host + HEALTHZ, headers=auth.headers())
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as e:
        raise _http_error(host, e.code, e.headers.get("Location")) from None
    except (urllib.error.URLError, socket.timeout, ConnectionError,
            http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise KfpError(f"cannot reach Kubeflow Pipelines at {host}: {reason}. Check the URL "
                       "and that the API is reachable from here (e.g. kubectl port-forward "
                       "-n kubeflow svc/ml-pipeline-ui 8080:80, then --host "
                       "http://localhost:8080)") from None
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise KfpError(f"{host}{HEALTHZ} did not answer JSON: is {host} the Kubeflow "
                       "Pipelines API (on a full Kubeflow it ends in /pipeline)?") from None


def _http_error(host: str, status: int, location: Optional[str]) -> KfpError:
    if status in (401, 403):
        return KfpError(f"Kubeflow Pipelines at {host} rejected the credentials "
                        f"(HTTP {status}): {_HINT_AUTH}")
    if 300 <= status < 400:
        return KfpError(f"Kubeflow Pipelines at {host} redirected to {location} (a login "
                        f"page?): not authenticated; {_HINT_AUTH}")
    if status == 404:
        return KfpError(f"{host}{HEALTHZ} not found: is {host} the Kubeflow Pipelines v2 API "
                        "(on a full Kubeflow it ends in /pipeline)?")
    return KfpError(f"Kubeflow Pipelines at {host} answered HTTP {status} on {HEALTHZ}")


@dataclasses.dataclass
class Connection:
    client: Any  # kfp.Client
    host: str
    namespace: Optional[str]  # the profile namespace on a multi-user Kubeflow, else None


def connect(cli_host: Optional[str], config: PipelineConfig) -> Connection:
    """A kfp.Client for the configured host, after a health check."""
    host = resolve_host(cli_host, config)
    auth = resolve_auth()
    health = check_health(host, auth)
    # A single-user KFP keeps everything in its one namespace: the setting is not sent.
    namespace = config.kubeflow.namespace if health.get("multi_user") else None
    if health.get("multi_user") and not namespace:
        raise KfpError("this Kubeflow is multi-user: set kubeflow.namespace to your profile "
                       "namespace")
    with warnings.catch_warnings(), _api_errors(host, "connecting"):
        warnings.simplefilter("ignore")  # kfp warns about the server version on every call
        return Connection(kfp_client_module.Client(
            host=host, namespace=namespace or "kubeflow", **auth.client_kwargs()), host,
            namespace)


@contextlib.contextmanager
def _api_errors(host: str, doing: str) -> Iterator[None]:
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        yield
    except kfp_server_api.ApiException as e:
        if e.status in (401, 403):
            raise KfpError(f"{doing}: Kubeflow Pipelines at {host} rejected the credentials "
                           f"(HTTP {e.status}): {_HINT_AUTH}") from None
        raise KfpError(f"{doing}: Kubeflow Pipelines at {host} answered HTTP {e.status} "
                       f"{e.reason}: {_server_message(e.body)}") from None
    except Urllib3Error as e:
        raise KfpError(f"{doing}: lost the connection to {host}: {e}") from None
    except TimeoutError as e:  # kfp.Client's own health check, after its retries
        raise KfpError(f"{doing}: {host}: {e}") from None


def _server_message(body: Any) -> str:
    try:
        return json.loads(body).get("message") or str(body)
    except (TypeError, ValueError, AttributeError):
        return str(body)


# -- pipeline versions, runs, recurring runs -------------------------------------------------
@dataclasses.dataclass
class Target:
    experiment_id: str
    pipeline_id: str
    version_id: str
    version_name: str


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key,
                                       "stringValue": value}]})


def prepare(conn: Connection, config: PipelineConfig, spec_path: str, digest: str) -> Target:
    """The experiment and the pipeline version for this spec, uploading it when new.

    Versions are named <name>-<digest>: an unchanged spec reuses its version, so every
    run and recurring run points at exactly the spec it was compiled from."""
    version_name = f"{config.name}-{digest[:12]}"
    pipeline_id = _pipeline_id(conn, config)
    version_id = _version_id(conn, pipeline_id, version_name, spec_path, digest)
    with _api_errors(conn.host, f"finding experiment '{config.kubeflow.experiment}'"):
        experiment_id = conn.client.create_experiment(  # gets it when it exists
            config.kubeflow.experiment, namespace=conn.namespace
        ).experiment_id
    return Target(experiment_id, pipeline_id, version_id, version_name)


def _pipeline_id(conn: Connection, config: PipelineConfig) -> str:
    with _api_errors(conn.host, f"finding pipeline '{config.name}'"):
        found = conn.client.list_pipelines(filter=_equals("display_name", config.name),
                                           namespace=conn.namespace).pipelines
    if found:
        return found[0].pipeline_id
    with _api_errors(conn.host, f"creating pipeline '{config.name}'"):
        return conn.client.pipelines.create_pipeline(body=kfp_server_api.V2beta1Pipeline(
            display_name=config.name, namespace=conn.namespace,
            description="imgpipe: fine-tunes an image classifier")).pipeline_id


def _version_id(conn: Connection, pipeline_id: str, version_name: str, spec_path: str,
                digest: str) -> str:
    with _api_errors(conn.host, f"finding version '{version_name}'"):
        found = conn.client.list_pipeline_versions(
            pipeline_id, filter=_equals("display_name", version_name)).pipeline_versions
    if found:
        return found[0].pipeline_version_id
    with _api_errors(conn.host, f"uploading version '{version_name}'"):
        return conn.client.upload_pipeline_version(
            spec_path, version_name, pipeline_id=pipeline_id,
            description=f"spec sha256 {digest}").pipeline_version_id


@dataclasses.dataclass
class StartedRun:
    run_id: str
    version_name: str


def submit(conn: Connection, config: PipelineConfig, spec_path: str, digest: str,
           parameters: Dict[str, str], run_name: Optional[str] = None) -> StartedRun:
    target = prepare(conn, config, spec_path, digest)
    now = datetime.datetime.now(datetime.timezone.utc)
    name = run_name or f"{config.name} {now:%Y-%m-%d %H:%M:%S} UTC"
    with _api_errors(conn.host, "creating the run"):
        run = conn.client.run_pipeline(
            experiment_id=target.experiment_id, job_name=name, params=parameters,
            pipeline_id=target.pipeline_id, version_id=target.version_id,
            pipeline_root=config.kubeflow.pipeline_root,
            service_account=config.kubeflow.service_account or None)
    return StartedRun(run.run_id, target.version_name)


def schedule(conn: Connection, config: PipelineConfig, spec_path: str, digest: str,
             parameters: Dict[str, str], name: str, cron: str) -> Any:
    """A recurring run of this spec on `cron` (KFP's 6-field form, see kfp_cron)."""
    target = prepare(conn, config, spec_path, digest)
    existing = [r for r in _recurring_runs(conn, target.experiment_id)
                if r.display_name == name]
    if existing:
        raise KfpError(f"recurring run '{name}' already exists ({existing[0].recurring_run_id}"
                       f"): delete it first (imgpipe schedule delete {name}) or pass --name")
    with _api_errors(conn.host, f"creating recurring run '{name}'"):
        return conn.client.create_recurring_run(
            experiment_id=target.experiment_id, job_name=name,
            description=f"imgpipe {config.name}, version {target.version_name}",
            cron_expression=cron, max_concurrency=1, no_catchup=True, params=parameters,
            pipeline_id=target.pipeline_id, version_id=target.version_id,
            pipeline_root=config.kubeflow.pipeline_root,
            service_account=config.kubeflow.service_account or None)


def _experiment_id(conn: Connection, config: PipelineConfig) -> str:
    with _api_errors(conn.host, f"finding experiment '{config.kubeflow.experiment}'"):
        found = conn.client.list_experiments(filter=_equals("display_name",
                                                       config.kubeflow.experiment),
                                        namespace=conn.namespace)
    if not found.experiments:
        raise KfpError(f"no experiment '{config.kubeflow.experiment}' (nothing was "
                       "submitted or scheduled there yet)")
    return found.experiments[0].experiment_id


def _recurring_runs(conn: Connection, experiment_id: str) -> List[Any]:
    with _api_errors(conn.host, "listing recurring runs"):
        return conn.client.list_recurring_runs(experiment_id=experiment_id,
                                          page_size=100).recurring_runs or []


def list_schedules(conn: Connection, config: PipelineConfig) -> List[str]:
    runs = _recurring_runs(conn, _experiment_id(conn, config))
    if not runs:
        return [f"no recurring runs in experiment '{config.kubeflow.experiment}'"]
    return [f"{r.recurring_run_id}  {r.display_name}  {r.mode}  cron '{_cron_of(r)}'"
            for r in runs]


def _cron_of(recurring_run: Any) -> str:
    trigger = recurring_run.trigger
    return trigger.cron_schedule.cron if trigger and trigger.cron_schedule else "-"


_CHANGES = {"pause": "disable_recurring_run", "resume": "enable_recurring_run",
            "delete": "delete_recurring_run"}


def change_schedule(conn: Connection, config: PipelineConfig, name_or_id: str,
                    action: str) -> str:
    """Pauses, resumes or deletes the recurring run with this name or id; returns its id."""
    runs = _recurring_runs(conn, _experiment_id(conn, config))
    matches = [r for r in runs if name_or_id in (r.recurring_run_id, r.display_name)]
    if not matches:
        raise KfpError(f"no recurring run named or with id '{name_or_id}' in experiment "
                       f"'{config.kubeflow.experiment}' (see: imgpipe schedule list)")
    if len(matches) > 1:
        raise KfpError(f"{len(matches)} recurring runs are named '{name_or_id}': pass an id ("
                       + ", ".join(r.recurring_run_id for r in matches) + ")")
    recurring_run_id = matches[0].recurring_run_id
    with _api_errors(conn.host, f"{action} of '{name_or_id}'"):
        getattr(conn.client, _CHANGES[action])(recurring_run_id=recurring_run_id)
    return recurring_run_id


# -- cron ------------------------------------------------------------------------------------
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
                ("day-of-week", 0, 6))
_NAMES = {"month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                    "NOV", "DEC"],
          "day-of-week": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}
_CRON_HELP = ("5 fields 'minute hour day-of-month month day-of-week' (UTC), e.g. '0 3 * * *' "
              "for 03:00 daily")


def kfp_cron(expression: Optional[str]) -> str:
    """A standard 5-field cron expression, checked, in KFP's form: KFP's scheduler parses
    6 fields with seconds first, so '0 3 * * *' becomes '0 0 3 * * *'."""
    if not expression:
        raise KfpError(f"schedule needs --cron: {_CRON_HELP}")
    fields = expression.split()
    if len(fields) != 5:
        raise KfpError(f"invalid cron '{expression}': expected {_CRON_HELP}")
    for value, (name, low, high) in zip(fields, _CRON_FIELDS):
        problem = _cron_field_problem(value, name, low, high)
        if problem:
            raise KfpError(f"invalid cron '{expression}': {name} field '{value}' {problem}; "
                           f"expected {_CRON_HELP}")
    return "0 " + " ".join(fields)


def _cron_field_problem(value: str, name: str, low: int, high: int) -> Optional[str]:
    if value == "?" and name in ("day-of-month", "day-of-week"):
        return None
    for part in value.split(","):
        match = re.fullmatch(r"(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d+))?", part)
        if not match:
            return "is not a number, range, list, step or '*'"
        if match.group(2) is not None and int(match.group(2)) < 1:
            return "has a step below 1"
        if match.group(1) != "*":
            bounds = [_cron_number(v, name) for v in match.group(1).split("-")]
            if any(b is None or not low <= b <= high for b in bounds):
                return f"is outside {low}-{high}"
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                return "is a decreasing range"
    return None


def _cron_number(value: str, name: str) -> Optional[int]:
    if value.isdigit():
        return int(value)
    names = _NAMES.get(name, [])
    if value.upper() in names:
        return names.index(value.upper()) + (1 if name == "month" else 0)
    return None
