"""imgpipe on Kubeflow Pipelines: compile the one DAG into a KFP v2 pipeline spec, submit
it, schedule it.

    imgpipe compile --target kubeflow [--format yaml|json] [--image REF] [--output PATH]
    imgpipe submit [--host URL]
    imgpipe schedule [create] --cron "0 3 * * *" | list | pause NAME | resume NAME | delete NAME

The spec comes from the same create_pipeline() as the local run. This module imports only
light modules at the top: `imgpipe --help` must not load TensorFlow.
"""
import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import yaml

from pipeline.config import DEMO_DATA, ConfigError, PipelineConfig, ResourceConfig

FORMATS = ("yaml", "json")
# The pipeline roots the KFP v2 backend accepts (objectstore.ParseBucketConfig).
KFP_ROOT_SCHEMES = ("gs://", "s3://", "minio://")
# KFP's pipeline name rule, checked by TFX's PipelineBuilder too.
_KFP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


# -- the cluster's view of the config -------------------------------------------------------
def cluster_config(config: PipelineConfig, image: Optional[str] = None) -> PipelineConfig:
    """`config` as the cluster runs it: its image, its Beam profile, its serving root."""
    kubeflow = dataclasses.replace(config.kubeflow, image=image or config.kubeflow.image)
    _require(bool(_KFP_NAME.fullmatch(config.name)), "name",
             "lowercase letters, digits and '-' (KFP's pipeline name rule)")
    _require(config.data.source != DEMO_DATA, "data.source",
             "a folder or CSV manifest the task pods can read (gs://..., or a path mounted "
             "in the image); the demo data exist only on this machine")
    _require(bool(kubeflow.pipeline_root), "kubeflow.pipeline_root",
             "where KFP keeps the artifacts, e.g. gs://bucket/imgpipe")
    _require(bool(kubeflow.serving_root), "kubeflow.serving_root",
             "where the Pusher writes models, e.g. gs://bucket/serving")
    tracking_uri = config.registry.tracking_uri
    _require(not config.registry.enabled or (
        bool(tracking_uri) and not tracking_uri.startswith(("sqlite:", "file:", "/"))),
        "registry.tracking_uri", "an MLflow server the task pods reach (e.g. "
        "http://mlflow.mlflow:5000), or registry.enabled=false: a file in a pod is lost")
    cluster = dataclasses.replace(config, kubeflow=kubeflow, serving_root=kubeflow.serving_root,
                                  beam=config.beam.for_kubeflow(kubeflow.image))
    return cluster.validate()


def cluster_data_root(config: PipelineConfig) -> Tuple[str, Optional[str]]:
    """(input_base, manifest name or None) of data.source, read by the task pods."""
    from components.image_example_gen.component import split_source

    return split_source(config.data.source)


def require_kfp_pipeline_root(config: PipelineConfig) -> None:
    _require(config.kubeflow.pipeline_root.startswith(KFP_ROOT_SCHEMES),
             "kubeflow.pipeline_root", "a gs://, s3:// or minio:// URI (the roots the KFP v2 "
             "backend accepts)")


def _require(ok: bool, name: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}': expected {expected}")


# -- compile -----------------------------------------------------------------------------------
def compile_spec(config: PipelineConfig) -> Dict[str, Any]:
    """The KFP v2 PipelineJob (as a dict) for a cluster_config(); pipelineSpec inside."""
    # tfx.v1.orchestration.experimental's runner, imported from its module: `tfx.v1` would
    # also load the Google Cloud extensions.
    from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import (
        KubeflowV2DagRunner, KubeflowV2DagRunnerConfig)

    from pipeline.pipeline import create_pipeline, runtime_parameter_values

    data_root, manifest = cluster_data_root(config)
    tfx_pipeline = create_pipeline(config, data_root, manifest, runtime_parameters=True)
    tfx_pipeline.pipeline_info.pipeline_root = config.kubeflow.pipeline_root
    runner = KubeflowV2DagRunner(config=KubeflowV2DagRunnerConfig(
        display_name=config.name, default_image=config.kubeflow.image,
        # Schema 2.1 (parameterType, parameterValues): what the KFP 2.x backend reads.
        use_pipeline_spec_2_1=True))
    job = runner.run(tfx_pipeline, write_out=False)
    defaults = runtime_parameter_values(config, data_root)
    _finalize(job["pipelineSpec"], config, defaults)
    job["runtimeConfig"]["parameterValues"] = defaults
    return job


def _finalize(spec: Dict[str, Any], config: PipelineConfig, defaults: Dict[str, str]) -> None:
    """What TFX's compiler leaves out: the pipeline root, the runtime parameters' defaults
    (so a run may omit them), every container's resources (TFX drops them for
    FileBasedExampleGen) and caching per task (TFX sets it for the whole pipeline)."""
    from pipeline.pipeline import NEVER_CACHED

    spec["defaultPipelineRoot"] = config.kubeflow.pipeline_root
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for name, value in defaults.items():
        parameters[name].update(defaultValue=value, isOptional=True)
    executors = spec["deploymentSpec"]["executors"]
    for name, task in spec["root"]["dag"]["tasks"].items():
        if name in NEVER_CACHED:
            task["cachingOptions"] = {"enableCache": False}
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = executors[label].get("container")
        if container is not None:
            container["resources"] = resource_spec(
                component_resources(config, task["taskInfo"]["name"]))


def component_resources(config: PipelineConfig, component_id: str) -> ResourceConfig:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", component_id).lower()
    if not hasattr(config.kubeflow.resources, snake):
        raise ConfigError(f"config field 'kubeflow.resources.{snake}' is missing: component "
                          f"{component_id} needs its resources")
    return getattr(config.kubeflow.resources, snake)


def resource_spec(resources: ResourceConfig) -> Dict[str, Any]:
    """KFP's PipelineContainerSpec.ResourceSpec (memory in GB) as JSON."""
    spec: Dict[str, Any] = {"cpuRequest": resources.cpu, "cpuLimit": resources.cpu,
                            "memoryRequest": resources.memory_gb,
                            "memoryLimit": resources.memory_gb}
    if resources.gpu:
        spec["accelerator"] = {"type": resources.gpu_type, "count": str(resources.gpu)}
    return spec


def write_spec(job: Dict[str, Any], path: str, fmt: str) -> str:
    """yaml: the PipelineSpec (what KFP uploads); json: the whole PipelineJob (pipelineSpec
    plus runtimeConfig, as TFX's runner writes it; Vertex AI takes this form)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        if fmt == "yaml":
            yaml.safe_dump(job["pipelineSpec"], f, sort_keys=True)
        else:
            json.dump(job, f, sort_keys=True, indent=1)
    return path


def spec_digest(spec: Dict[str, Any]) -> str:
    """Identifies a spec up to its parameter defaults (every run sets the parameters)."""
    stripped = json.loads(json.dumps(spec))
    for parameter in stripped["root"].get("inputDefinitions", {}).get("parameters", {}).values():
        parameter.pop("defaultValue", None)
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()


# -- commands ----------------------------------------------------------------------------------
def add_commands(subparsers: Any) -> None:
    """Registers compile, submit and schedule on the `imgpipe` parser."""
    from pipeline import cli

    compile_ = subparsers.add_parser("compile", help="compile the pipeline for Kubeflow "
                                     "Pipelines (KubeflowV2DagRunner, offline)")
    cli._config_args(compile_)
    compile_.add_argument("--target", choices=("kubeflow",), default="kubeflow")
    compile_.add_argument("--format", choices=FORMATS, default="yaml",
                          help="yaml: the pipeline spec KFP uploads; json: the PipelineJob")
    compile_.add_argument("--output", help="default: <home>/kubeflow/<name>.<format>")
    _image_arg(compile_)
    compile_.set_defaults(func=cmd_compile)

    submit = subparsers.add_parser("submit", help="upload (a new version of) the pipeline "
                                   "to Kubeflow Pipelines and start a run")
    cli._config_args(submit)
    _cluster_args(submit)
    submit.add_argument("--run-name", help="default: <name> <UTC time>")
    submit.set_defaults(func=cmd_submit)

    schedule = subparsers.add_parser(
        "schedule", help="create, list, pause, resume or delete a KFP recurring run")
    cli._config_args(schedule)
    _cluster_args(schedule)
    schedule.add_argument("action", nargs="?", default="create",
                          choices=("create", "list", "pause", "resume", "delete"))
    schedule.add_argument("recurring_run", nargs="?", metavar="NAME_OR_ID",
                          help="pause/resume/delete: default <name>-schedule")
    schedule.add_argument("--cron", help="create: standard 5-field cron in UTC, "
                          "e.g. '0 3 * * *' (03:00 every day)")
    schedule.add_argument("--name", help="create: the recurring run's name "
                          "(default <name>-schedule)")
    schedule.set_defaults(func=cmd_schedule)


def _image_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="container image for every task "
                        "(default: kubeflow.image)")


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    _image_arg(parser)
    parser.add_argument("--host", help="KFP API URL (default: kubeflow.host, then "
                        "KF_PIPELINES_ENDPOINT, then the in-cluster service)")


def _load_cluster(args: argparse.Namespace) -> PipelineConfig:
    from pipeline import cli

    return cluster_config(cli._load(args), image=args.image)


def cmd_compile(args: argparse.Namespace) -> int:
    config = _load_cluster(args)
    path = args.output or os.path.join(config.home, "kubeflow", f"{config.name}.{args.format}")
    write_spec(compile_spec(config), path, args.format)
    print(f"imgpipe: wrote the KFP v2 pipeline spec to {path}")
    return 0


def _reports_kfp_errors(command: Callable[[argparse.Namespace], int]) -> Callable:
    """KFP failures end the command with their message and exit code 1, no traceback."""
    def run(args: argparse.Namespace) -> int:
        from pipeline.kfp_client import KfpError

        try:
            return command(args)
        except KfpError as e:
            print(f"imgpipe: {e}", file=sys.stderr)
            return 1
    return run


@_reports_kfp_errors
def cmd_submit(args: argparse.Namespace) -> int:
    from pipeline import kfp_client

    config = _load_cluster(args)
    require_kfp_pipeline_root(config)
    conn = kfp_client.connect(args.host, config)  # fails fast, before compiling
    with _compiled(config) as (job, path):
        run = kfp_client.submit(conn, config, path, spec_digest(job["pipelineSpec"]),
                                job["runtimeConfig"]["parameterValues"], args.run_name)
    print(f"imgpipe: started run {run.run_id} of {config.name} (version {run.version_name}) "
          f"in experiment '{config.kubeflow.experiment}'")
    return 0


@_reports_kfp_errors
def cmd_schedule(args: argparse.Namespace) -> int:
    from pipeline import cli, kfp_client

    config = cli._load(args)
    name = args.name or args.recurring_run or f"{config.name}-schedule"
    if args.action == "create":
        cron = kfp_client.kfp_cron(args.cron)  # invalid cron: error before connecting
        config = cluster_config(config, image=args.image)
        require_kfp_pipeline_root(config)
        conn = kfp_client.connect(args.host, config)
        with _compiled(config) as (job, path):
            created = kfp_client.schedule(conn, config, path, spec_digest(job["pipelineSpec"]),
                                          job["runtimeConfig"]["parameterValues"], name, cron)
        print(f"imgpipe: recurring run '{name}' ({created.recurring_run_id}) runs "
              f"{config.name} on cron '{cron}' (KFP: seconds first, UTC)")
        return 0
    conn = kfp_client.connect(args.host, config)
    if args.action == "list":
        for line in kfp_client.list_schedules(conn, config):
            print(line)
        return 0
    recurring_run_id = kfp_client.change_schedule(conn, config, name, args.action)
    print(f"imgpipe: {args.action}d recurring run '{name}' ({recurring_run_id})")
    return 0


@contextlib.contextmanager
def _compiled(config: PipelineConfig) -> Iterator[Tuple[Dict[str, Any], str]]:
    """Compiles `config` to a YAML spec in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-kfp-") as tmp:
        job = compile_spec(config)
        yield job, write_spec(job, os.path.join(tmp, "pipeline.yaml"), "yaml")
