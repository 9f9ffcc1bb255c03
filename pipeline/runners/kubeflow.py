"""imgpipe on Kubeflow Pipelines: compile the one DAG into a KFP v2 pipeline spec, submit
it, schedule it (`imgpipe compile --target kubeflow`, `submit`, `schedule`).

The spec comes from the same create_pipeline() as the local run. This module imports only
light modules at the top: `imgpipe --help` must not load TensorFlow.
"""
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from typing import Any, Dict, Iterator, Optional, Tuple

import yaml

from components.image_example_gen.config import DEMO_DATA, split_source
from pipeline.component_ids import NEVER_CACHED, RESOURCE_FIELDS
from pipeline.runners import kubeflow_notify
from pipeline.config import PipelineConfig
from pipeline.kubeflow_config import ResourceConfig
from trainer.config_fields import check
from trainer.files import is_remote

FORMATS = ("yaml", "json")
# The pipeline roots the KFP v2 backend accepts (objectstore.ParseBucketConfig).
KFP_ROOT_SCHEMES = ("gs://", "s3://", "minio://")
# KFP's pipeline name rule, checked by TFX's PipelineBuilder too.
_KFP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
# The compiled job's Kubernetes platform spec (the Secret mounted in the exit handler),
# written as the YAML spec's second document, as KFP's compiler does.
PLATFORM_SPEC = "platformSpec"


# -- the cluster's view of the config -------------------------------------------------------
def cluster_config(config: PipelineConfig, image: Optional[str] = None) -> PipelineConfig:
    """`config` as the cluster runs it: its image, its Beam profile, its serving root."""
    kubeflow = dataclasses.replace(config.kubeflow, image=image or config.kubeflow.image)
    check(bool(_KFP_NAME.fullmatch(config.name)), "name",
             "lowercase letters, digits and '-' (KFP's pipeline name rule)")
    check(config.data.source != DEMO_DATA, "data.source",
             "a folder or CSV manifest the task pods can read (gs://..., or a path mounted "
             "in the image); the demo data exist only on this machine")
    check(bool(kubeflow.pipeline_root), "kubeflow.pipeline_root",
             "where KFP keeps the artifacts, e.g. gs://bucket/imgpipe")
    check(is_remote(config.serving_root) or config.serving_root.startswith("/"),
          "serving_root", "where the Pusher writes models, a URI the task pods reach (e.g. "
          "gs://bucket/serving) or an absolute path mounted in every pod")
    tracking_uri = config.registry.tracking_uri
    check(not config.registry.enabled or (
        bool(tracking_uri) and not tracking_uri.startswith(("sqlite:", "file:", "/"))),
        "registry.tracking_uri", "an MLflow server the task pods reach (e.g. "
        "http://mlflow.mlflow:5000), or registry.enabled=false: a file in a pod is lost")
    cluster = dataclasses.replace(config, kubeflow=kubeflow,
                                  beam=config.beam.for_kubeflow(kubeflow.image))
    return cluster.validate()


def cluster_data_root(config: PipelineConfig) -> Tuple[str, Optional[str]]:
    """(input_base, manifest name or None) of data.source, read by the task pods."""
    return split_source(config.data.source)


def require_kfp_pipeline_root(config: PipelineConfig) -> None:
    check(config.kubeflow.pipeline_root.startswith(KFP_ROOT_SCHEMES),
             "kubeflow.pipeline_root", "a gs://, s3:// or minio:// URI (the roots the KFP v2 "
             "backend accepts)")


# -- compile -----------------------------------------------------------------------------------
def compile_spec(config: PipelineConfig) -> Dict[str, Any]:
    """The KFP v2 PipelineJob (as a dict) for a cluster_config(); pipelineSpec inside."""
    # tfx.v1.orchestration.experimental's runner, imported from its module: `tfx.v1` would
    # also load the Google Cloud extensions.
    from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import (
        KubeflowV2DagRunner, KubeflowV2DagRunnerConfig)

    from pipeline.pipeline import create_pipeline, runtime_parameter_values  # TFX: heavy

    data_root, manifest = cluster_data_root(config)
    tfx_pipeline = create_pipeline(config, data_root, manifest, runtime_parameters=True,
                                   pipeline_root=config.kubeflow.pipeline_root)
    runner = KubeflowV2DagRunner(config=KubeflowV2DagRunnerConfig(
        display_name=config.name, default_image=config.kubeflow.image,
        # Schema 2.1 (parameterType, parameterValues): what the KFP 2.x backend reads.
        use_pipeline_spec_2_1=True))
    if config.notify.on_kubeflow:
        runner.set_exit_handler(kubeflow_notify.exit_handler(config))
    job = runner.run(tfx_pipeline, write_out=False)
    defaults = runtime_parameter_values(config, data_root)
    _finalize(job["pipelineSpec"], config, defaults)
    if config.notify.on_kubeflow:
        job[PLATFORM_SPEC] = kubeflow_notify.platform_spec(job["pipelineSpec"])
    job["runtimeConfig"]["parameterValues"] = defaults
    return job


def _finalize(spec: Dict[str, Any], config: PipelineConfig, defaults: Dict[str, str]) -> None:
    """What TFX's compiler leaves out: the pipeline root, the runtime parameters' defaults
    (so a run may omit them), every container's resources (TFX drops them for
    FileBasedExampleGen) and caching per task (TFX sets it for the whole pipeline); and
    what it gets wrong: a task output parameter names its producer `<task>_task`, a task
    that does not exist (the task is `<task>`)."""
    spec["defaultPipelineRoot"] = config.kubeflow.pipeline_root
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for name, value in defaults.items():
        parameters[name].update(defaultValue=value, isOptional=True)
    kubeflow_notify.wire_parameters(spec)
    executors = spec["deploymentSpec"]["executors"]
    tasks = {**kubeflow_notify.pipeline_tasks(spec), **spec["root"]["dag"]["tasks"]}
    tasks.pop(kubeflow_notify.DAG_NAME, None)
    for name, task in tasks.items():
        if name in NEVER_CACHED:
            task["cachingOptions"] = {"enableCache": False}
        for parameter in task.get("inputs", {}).get("parameters", {}).values():
            producer = parameter.get("taskOutputParameter", {})
            if producer and producer["producerTask"] not in spec["root"]["dag"]["tasks"]:
                producer["producerTask"] = producer["producerTask"].removesuffix("_task")
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = executors[label].get("container")
        if container is not None:
            container["resources"] = resource_spec(
                component_resources(config, task["taskInfo"]["name"]))


def component_resources(config: PipelineConfig, component_id: str) -> ResourceConfig:
    return getattr(config.kubeflow.resources, RESOURCE_FIELDS[component_id])


def resource_spec(resources: ResourceConfig) -> Dict[str, Any]:
    """KFP's PipelineContainerSpec.ResourceSpec (memory in GB) as JSON."""
    spec: Dict[str, Any] = {"cpuRequest": resources.cpu, "cpuLimit": resources.cpu,
                            "memoryRequest": resources.memory_gb,
                            "memoryLimit": resources.memory_gb}
    if resources.gpu:
        spec["accelerator"] = {"type": resources.gpu_type, "count": str(resources.gpu)}
    return spec


def write_spec(job: Dict[str, Any], path: str, fmt: str) -> str:
    """yaml: the PipelineSpec (what KFP uploads), then its Kubernetes platform spec when
    there is one; json: the whole PipelineJob (pipelineSpec plus runtimeConfig, as TFX's
    runner writes it; Vertex AI takes this form, which has no Kubernetes Secrets)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        if fmt == "yaml":
            documents = [job["pipelineSpec"]] + \
                ([job[PLATFORM_SPEC]] if PLATFORM_SPEC in job else [])
            yaml.safe_dump_all(documents, f, sort_keys=True)
        else:
            json.dump({k: v for k, v in job.items() if k != PLATFORM_SPEC}, f,
                      sort_keys=True, indent=1)
    return path


def spec_digest(spec: Dict[str, Any]) -> str:
    """Identifies a spec up to its parameter defaults (every run sets the parameters)."""
    stripped = json.loads(json.dumps(spec))
    for parameter in stripped["root"].get("inputDefinitions", {}).get("parameters", {}).values():
        parameter.pop("defaultValue", None)
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()


# -- submit and schedule ------------------------------------------------------------------
def submit(config: PipelineConfig, host: Optional[str], run_name: Optional[str] = None) -> Any:
    """Uploads (a new version of) the pipeline of a cluster_config() and starts a run;
    returns kfp_client.StartedRun."""
    from pipeline.runners import kfp_client  # the KFP client library: only for talking to KFP

    require_kfp_pipeline_root(config)
    conn = kfp_client.connect(host, config)  # fails fast, before compiling
    with _compiled(config) as (job, path):
        return kfp_client.submit(conn, config, path, spec_digest(job["pipelineSpec"]),
                                 job["runtimeConfig"]["parameterValues"], run_name)


def create_schedule(config: PipelineConfig, host: Optional[str], name: str, cron: str) -> Any:
    """A KFP recurring run of a cluster_config()'s pipeline on `cron` (KFP's form, see
    kfp_client.kfp_cron); returns the recurring run."""
    from pipeline.runners import kfp_client  # the KFP client library: only for talking to KFP

    require_kfp_pipeline_root(config)
    conn = kfp_client.connect(host, config)
    with _compiled(config) as (job, path):
        return kfp_client.schedule(conn, config, path, spec_digest(job["pipelineSpec"]),
                                   job["runtimeConfig"]["parameterValues"], name, cron)


@contextlib.contextmanager
def _compiled(config: PipelineConfig) -> Iterator[Tuple[Dict[str, Any], str]]:
    """Compiles `config` to a YAML spec in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-kfp-") as tmp:
        job = compile_spec(config)
        yield job, write_spec(job, os.path.join(tmp, "pipeline.yaml"), "yaml")
