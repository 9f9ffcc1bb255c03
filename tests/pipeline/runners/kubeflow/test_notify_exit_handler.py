"""On Kubeflow, notifications come from an exit-handler task that runs whatever the
outcome; its webhook URL comes from a Kubernetes Secret, never from the spec."""
import json

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components.notify import config as notify_config
from cluster_settings import CLUSTER, sets
from pipeline.runners import kubeflow_notify
from pipeline.cli import main

SECRET = "https://hooks.slack.example/services/T00/B00/XXXXSECRETXXXX"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    overrides = (*CLUSTER, "notify.on_kubeflow=true", f"notify.webhook_url={SECRET}")
    for fmt in ("yaml", "json"):
        assert main(["compile", "--format", fmt, "--output", str(out / f"p.{fmt}"),
                     *sets(*overrides)]) == 0
    texts = {fmt: (out / f"p.{fmt}").read_text() for fmt in ("yaml", "json")}
    return {"texts": texts, "docs": list(yaml.safe_load_all(texts["yaml"])),
            "job": json.loads(texts["json"])}


def test_the_secret_url_is_in_no_compiled_file(compiled):
    for text in compiled["texts"].values():
        assert "XXXXSECRETXXXX" not in text
        assert "hooks.slack.example" not in text


def test_the_exit_handler_runs_after_the_whole_dag_whatever_its_outcome(compiled):
    spec_doc, platform_doc = compiled["docs"]
    spec = json_format.ParseDict(spec_doc, pipeline_spec_pb2.PipelineSpec())
    handler = spec.root.dag.tasks[kubeflow_notify.EXIT_HANDLER_ID]
    assert handler.trigger_policy.strategy == \
        pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.ALL_UPSTREAM_TASKS_COMPLETED
    assert list(handler.dependent_tasks) == [kubeflow_notify.DAG_NAME]
    assert handler.inputs.parameters["final_status"].task_final_status.producer_task == \
        kubeflow_notify.DAG_NAME
    executor = spec_doc["deploymentSpec"]["executors"][
        spec_doc["components"][handler.component_ref.name]["executorLabel"]]
    assert "components.notify.exit_handler.NotifyExitHandler_Executor" in \
        executor["container"]["args"]
    assert executor["container"]["resources"]["cpuLimit"] == 0.25
    # The pipeline's tasks moved into the sub-DAG, which receives every runtime parameter.
    tasks = kubeflow_notify.pipeline_tasks(spec_doc)
    assert {"ImageExampleGen", "Trainer", "Pusher"} <= set(tasks)
    assert tasks["LatestBlessedModel"]["cachingOptions"] == {"enableCache": False}
    dag_inputs = spec_doc["components"][kubeflow_notify.DAG_NAME]["inputDefinitions"]
    root_inputs = spec_doc["root"]["inputDefinitions"]["parameters"]
    assert set(dag_inputs["parameters"]) == set(root_inputs) == {
        "data_root", "train_config", "eval_config"}
    passed = spec_doc["root"]["dag"]["tasks"][kubeflow_notify.DAG_NAME]["inputs"]["parameters"]
    assert passed["data_root"] == {"componentInputParameter": "data_root"}
    used = tasks["ImageExampleGen"]["inputs"]["parameters"]["input_base"]
    assert used == {"componentInputParameter": "data_root"}
    assert platform_doc is not None


def test_the_secret_reaches_the_exit_handler_as_an_environment_variable(compiled):
    spec_doc, platform_doc = compiled["docs"]
    json_format.ParseDict(platform_doc, pipeline_spec_pb2.PlatformSpec())
    component = spec_doc["root"]["dag"]["tasks"][kubeflow_notify.EXIT_HANDLER_ID][
        "componentRef"]["name"]
    label = spec_doc["components"][component]["executorLabel"]
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert list(executors) == [label]
    (secret,) = executors[label]["secretAsEnv"]
    assert secret == {"secretName": notify_config.WEBHOOK_SECRET_NAME,
                      "keyToEnv": [{"secretKey": notify_config.WEBHOOK_SECRET_KEY,
                                    "envVar": notify_config.WEBHOOK_URL_ENV}]}


def test_the_json_job_has_no_platform_spec_and_parses(compiled):
    job = json_format.ParseDict(compiled["job"], pipeline_spec_pb2.PipelineJob())
    assert kubeflow_notify.EXIT_HANDLER_ID in job.pipeline_spec["root"]["dag"]["tasks"]


def test_without_on_kubeflow_there_is_no_exit_handler(tmp_path):
    assert main(["compile", "--output", str(tmp_path / "p.yaml"), *sets(*CLUSTER)]) == 0
    (spec,) = list(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    assert kubeflow_notify.EXIT_HANDLER_ID not in spec["root"]["dag"]["tasks"]
    assert kubeflow_notify.DAG_NAME not in spec["components"]


@pytest.mark.parametrize("overlay", ("dev", "prod"))
def test_each_overlay_creates_the_secret_in_the_runs_namespace(overlay):
    import shutil
    import subprocess
    from pathlib import Path

    from pipeline.config import load_config

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    folder = Path(__file__).resolve().parents[4] / "kubernetes" / "overlays" / overlay
    docs = [d for d in yaml.safe_load_all(subprocess.run(
        [kubectl, "kustomize", str(folder)], check=True, capture_output=True,
        text=True).stdout) if d]
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    config = load_config(str(folder / "pipeline.yaml"))
    assert secret["metadata"]["name"] == notify_config.WEBHOOK_SECRET_NAME
    assert set(secret["data"]) == {notify_config.WEBHOOK_SECRET_KEY}
    assert secret["metadata"]["namespace"] == config.kubeflow.namespace
    assert config.notify.on_kubeflow is True
    assert config.notify.webhook_url == ""
