"""imgpipe submit / schedule against the KFP STAND-IN server (tests/pipeline/runners/kubeflow/
kfp_standin_server.py): the requests must be what the v2beta1 API accepts."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from cluster_settings import CLUSTER, sets
from kfp_standin_server import StandInKfp
from pipeline.cli import main
from pipeline.runners.kfp_client import KfpError, kfp_cron

V2 = "/apis/v2beta1"


def _submit(standin, *overrides, extra=()):
    return main(["submit", "--host", standin.url, *sets(*CLUSTER, *overrides), *extra])


def _schedule(standin, *args, overrides=()):
    return main(["schedule", *args, "--host", standin.url, *sets(*CLUSTER, *overrides)])


def test_submit_uploads_a_version_and_runs_it_with_the_runtime_parameters(standin):
    assert _submit(standin, "train.learning_rate=0.003") == 0

    (upload,) = standin.calls("POST", f"{V2}/pipelines/upload_version")
    spec = yaml.safe_load(upload.body["files"]["uploadfile"])
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # a valid PipelineSpec
    assert upload.query["name"][0].startswith("imgpipe-")
    (pipeline,) = standin.pipelines.values()
    assert pipeline["display_name"] == "imgpipe"
    assert upload.query["pipelineid"] == [pipeline["pipeline_id"]]
    assert upload.headers["content-type"].startswith("multipart/form-data")

    (run,) = standin.runs.values()
    (version,) = standin.versions.values()
    assert run["pipeline_version_reference"] == {
        "pipeline_id": pipeline["pipeline_id"],
        "pipeline_version_id": version["pipeline_version_id"]}
    assert standin.experiments[run["experiment_id"]]["display_name"] == "imgpipe"
    runtime = run["runtime_config"]
    assert runtime["pipeline_root"] == "gs://imgpipe/root"
    assert set(runtime["parameters"]) == {"data_root", "train_config", "eval_config"}
    assert runtime["parameters"]["data_root"] == "gs://imgpipe-data/flowers"
    train = json.loads(runtime["parameters"]["train_config"])["train"]
    assert train["learning_rate"] == 0.003


def test_resubmitting_reuses_the_version_a_changed_config_makes_a_new_one(standin):
    assert _submit(standin) == 0
    assert _submit(standin) == 0
    assert len(standin.calls("POST", f"{V2}/pipelines/upload_version")) == 1
    first, second = standin.runs.values()
    assert first["pipeline_version_reference"] == second["pipeline_version_reference"]

    assert _submit(standin, "train.phase1_epochs=7", "eval.min_accuracy=0.9") == 0
    assert len(standin.versions) == 2 and len(standin.pipelines) == 1
    parameters = list(standin.runs.values())[-1]["runtime_config"]["parameters"]
    assert json.loads(parameters["train_config"])["train"]["phase1_epochs"] == 7
    assert '"lowerBound": 0.9' in parameters["eval_config"]


def test_schedule_creates_a_recurring_run_with_the_cron_trigger(standin, capsys):
    assert _schedule(standin, "--cron", "0 3 * * *") == 0

    (recurring,) = standin.recurring_runs.values()
    assert recurring["display_name"] == "imgpipe-schedule"
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert recurring["mode"] == "ENABLE"
    assert int(recurring["max_concurrency"]) == 1 and recurring["no_catchup"] is True
    assert set(recurring["runtime_config"]["parameters"]) == {
        "data_root", "train_config", "eval_config"}
    assert "'0 0 3 * * *'" in capsys.readouterr().out


def test_schedule_list_pause_resume_delete(standin, capsys):
    assert _schedule(standin, "--cron", "30 2 * * MON-FRI", "--name", "weekdays") == 0
    (recurring_id,) = standin.recurring_runs
    capsys.readouterr()

    assert _schedule(standin, "list") == 0
    listing = capsys.readouterr().out
    assert recurring_id in listing and "weekdays" in listing and "0 30 2 * * MON-FRI" in listing

    assert _schedule(standin, "pause", "weekdays") == 0
    assert standin.recurring_runs[recurring_id]["mode"] == "DISABLE"
    assert _schedule(standin, "resume", recurring_id) == 0
    assert standin.recurring_runs[recurring_id]["mode"] == "ENABLE"
    assert _schedule(standin, "delete", "weekdays") == 0
    assert not standin.recurring_runs
    assert standin.calls("DELETE", f"{V2}/recurringruns/{recurring_id}")


def test_scheduling_the_same_name_twice_is_refused(standin, capsys):
    assert _schedule(standin, "--cron", "0 3 * * *") == 0
    assert _schedule(standin, "--cron", "0 4 * * *") == 1
    assert "already exists" in capsys.readouterr().err
    assert len(standin.recurring_runs) == 1


@pytest.mark.parametrize("cron, problem", [
    ("0 3 * *", "5 fields"),
    ("61 3 * * *", "minute field '61' is outside 0-59"),
    ("0 24 * * *", "hour field '24' is outside 0-23"),
    ("0 3 * * FUNDAY", "day-of-week field 'FUNDAY'"),
    ("0 3 5-1 * *", "decreasing range"),
    ("*/0 * * * *", "step below 1"),
])
def test_invalid_cron_is_refused_before_connecting(standin, capsys, cron, problem):
    assert _schedule(standin, "--cron", cron) == 1
    assert problem in capsys.readouterr().err
    assert standin.requests == []


def test_kfp_cron_adds_the_seconds_field():
    assert kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert kfp_cron("*/15 8-18 ? JAN,DEC sun") == "0 */15 8-18 ? JAN,DEC sun"
    with pytest.raises(KfpError, match="needs --cron"):
        kfp_cron(None)


def test_bad_credentials_are_a_clear_error(monkeypatch, capsys):
    standin = StandInKfp(required_token="s3cret").serve()
    try:
        assert _submit(standin) == 1
        err = capsys.readouterr().err
        assert "rejected the credentials (HTTP 401)" in err and "KF_PIPELINES_TOKEN" in err
        assert not standin.runs

        monkeypatch.setenv("KF_PIPELINES_TOKEN", "s3cret")
        assert _submit(standin) == 0
        assert {r.headers.get("authorization") for r in standin.requests[1:]} == {
            "Bearer s3cret"}
    finally:
        standin.close()


def test_service_account_token_is_used_in_cluster(standin, monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("projected-sa-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    assert _submit(standin) == 0
    assert standin.calls("POST", f"{V2}/runs")[0].headers["authorization"] == \
        "Bearer projected-sa-token"


def test_a_host_that_is_not_the_kfp_api_is_named(standin, capsys):
    assert main(["submit", "--host", standin.url + "/not-kfp", *sets(*CLUSTER)]) == 1
    assert "not found: is" in capsys.readouterr().err


def test_multi_user_kubeflow_needs_the_namespace(capsys):
    standin = StandInKfp(multi_user=True).serve()
    try:
        assert _submit(standin) == 1
        assert "kubeflow.namespace" in capsys.readouterr().err
        assert _submit(standin, "kubeflow.namespace=team-vision") == 0
        (pipeline,) = standin.pipelines.values()
        assert pipeline["namespace"] == "team-vision"
    finally:
        standin.close()


def test_single_user_kfp_gets_no_namespace(standin):
    assert _submit(standin, "kubeflow.namespace=team-vision") == 0
    (pipeline,) = standin.pipelines.values()
    (experiment,) = standin.experiments.values()
    assert not pipeline.get("namespace") and not experiment.get("namespace")


def test_submit_refuses_a_pipeline_root_kfp_cannot_use(standin, capsys):
    assert _submit(standin, "kubeflow.pipeline_root=/mnt/pvc/root") == 2
    assert "'kubeflow.pipeline_root'" in capsys.readouterr().err
    assert standin.requests == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_exits_nonzero_with_a_clear_message_and_no_traceback(tmp_path):
    imgpipe = Path(sys.executable).with_name("imgpipe")
    done = subprocess.run(
        [str(imgpipe), "submit", "--host", f"http://127.0.0.1:{_free_port()}",
         *sets(*CLUSTER)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "cannot reach Kubeflow Pipelines at http://127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
