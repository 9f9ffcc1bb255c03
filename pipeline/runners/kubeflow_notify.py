"""Notifications on Kubeflow: an exit-handler task (components/notify/exit_handler.py) that
KFP runs after the pipeline whatever its outcome, its webhook URL mounted from a
Kubernetes Secret as an environment variable. The URL is in neither the spec nor the
config the spec carries: the spec names only the Secret.

TFX's KubeflowV2DagRunner puts the pipeline's tasks under one sub-DAG (`tfx-dag`) when
an exit handler is set, without passing the pipeline's runtime parameters down to it;
`wire_parameters` does.
"""
from typing import Any, Dict

from components.notify import config as notify_config
from pipeline import component_ids as ids
from pipeline.config import PipelineConfig

EXIT_HANDLER_ID = ids.NOTIFY_EXIT_HANDLER
DAG_NAME = "tfx-dag"  # TFX's name for the sub-DAG (tfx.orchestration.kubeflow.v2.utils)


def exit_handler(config: PipelineConfig) -> Any:
    """The exit-handler component for `config` (a cluster_config())."""
    from tfx.orchestration.kubeflow.decorators import FinalStatusStr

    from components.notify.exit_handler import NotifyExitHandler

    return NotifyExitHandler(final_status=FinalStatusStr(), pipeline_name=config.name,
                             serving_dir=config.serving_dir,
                             timeout_s=config.notify.timeout_s).with_id(EXIT_HANDLER_ID)


def pipeline_tasks(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The pipeline's own tasks, inside the sub-DAG or not."""
    if DAG_NAME in spec["components"]:
        return spec["components"][DAG_NAME]["dag"]["tasks"]
    return spec["root"]["dag"]["tasks"]


def wire_parameters(spec: Dict[str, Any]) -> None:
    """The sub-DAG declares the pipeline's parameters and the root passes them on."""
    if DAG_NAME not in spec["components"]:
        return
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    spec["components"][DAG_NAME]["inputDefinitions"] = {
        "parameters": {name: {"parameterType": p["parameterType"]}
                       for name, p in parameters.items()}}
    spec["root"]["dag"]["tasks"][DAG_NAME]["inputs"] = {
        "parameters": {name: {"componentInputParameter": name} for name in parameters}}


def platform_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """KFP's Kubernetes platform spec: the Secret's key as the exit handler's variable."""
    component = spec["root"]["dag"]["tasks"][EXIT_HANDLER_ID]["componentRef"]["name"]
    label = spec["components"][component]["executorLabel"]
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {label: {
        "secretAsEnv": [{"secretName": notify_config.WEBHOOK_SECRET_NAME,
                         "keyToEnv": [{"secretKey": notify_config.WEBHOOK_SECRET_KEY,
                                       "envVar": notify_config.WEBHOOK_URL_ENV}]}]}}}}}}
