"""imgpipe compile --target kubeflow: the KFP v2 spec of the very DAG the local run uses."""
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from cluster_settings import CLUSTER, IMAGE, sets
from pipeline.runners import kubeflow
from pipeline.cli import main
from pipeline.config import load_config
from trainer.config_fields import ConfigError

REPO = Path(__file__).resolve().parents[4]
TRAINER_RESOURCES = ("kubeflow.resources.trainer.cpu=8", "kubeflow.resources.trainer.memory_gb=30",
                     "kubeflow.resources.trainer.gpu=1")
BEAM_COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Both formats, compiled by the CLI with a GPU Trainer and a changed learning rate."""
    out = tmp_path_factory.mktemp("compiled")
    overrides = (*CLUSTER, *TRAINER_RESOURCES, "train.learning_rate=0.0005",
                 "eval.min_accuracy=0.75")
    for fmt in ("yaml", "json"):
        assert main(["compile", "--target", "kubeflow", "--format", fmt,
                     "--output", str(out / f"p.{fmt}"), *sets(*overrides)]) == 0
    job = json.loads((out / "p.json").read_text())
    return {"yaml": yaml.safe_load((out / "p.yaml").read_text()), "job": job,
            "config": load_config(overrides=overrides)}


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


def _executor(spec, task):
    component = spec["components"][_tasks(spec)[task]["componentRef"]["name"]]
    return spec["deploymentSpec"]["executors"][component["executorLabel"]]


def _containers(spec):
    return {name: _executor(spec, name)["container"] for name in _tasks(spec)
            if "container" in _executor(spec, name)}


def test_both_formats_parse_with_the_kfp_pipeline_spec_proto(compiled):
    spec = json_format.ParseDict(compiled["yaml"], pipeline_spec_pb2.PipelineSpec())
    job = json_format.ParseDict(compiled["job"], pipeline_spec_pb2.PipelineJob())
    assert spec.schema_version == "2.1.0" and spec.pipeline_info.name == "imgpipe"
    assert compiled["job"]["pipelineSpec"] == compiled["yaml"]
    assert job.runtime_config.gcs_output_directory == "gs://imgpipe/root"
    assert spec.default_pipeline_root == "gs://imgpipe/root"


def _local_graph(config):
    """Nodes, edges and artifact wiring of the local pipeline (create_pipeline)."""
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(config, "/data/flowers")
    nodes = {c.id for c in pipeline.components}
    edges = {(u.id, c.id) for c in pipeline.components for u in c.upstream_nodes}
    wiring = {(c.id, key, ch.producer_component_id, ch.output_key)
              for c in pipeline.components for key, ch in c.inputs.items()}
    return nodes, edges, wiring


def _compiled_graph(spec):
    nodes = set(_tasks(spec))
    edges = {(d, t) for t, task in _tasks(spec).items() for d in task.get("dependentTasks", [])}
    wiring = {(t, key, a["taskOutputArtifact"]["producerTask"],
               a["taskOutputArtifact"]["outputArtifactKey"])
              for t, task in _tasks(spec).items()
              for key, a in task.get("inputs", {}).get("artifacts", {}).items()}
    return nodes, edges, wiring


def test_dag_has_the_local_pipelines_components_edges_and_artifacts(compiled):
    local_config = load_config(overrides=("registry.enabled=false",))
    local_nodes, local_edges, local_wiring = _local_graph(local_config)
    nodes, edges, wiring = _compiled_graph(compiled["yaml"])
    assert nodes == local_nodes
    assert edges == local_edges
    assert wiring == local_wiring
    assert {"ImageExampleGen", "Transform", "Trainer", "LatestBlessedModel", "Evaluator",
            "Pusher"} <= nodes
    assert ("LatestBlessedModel", "model", "Trainer", "model") in wiring
    assert ("Evaluator", "baseline_model", "LatestBlessedModel", "baseline_model") in wiring


def test_every_task_is_a_container_running_the_configured_image(compiled):
    """No metadata-query resolver tasks: the open-source KFP backend rejects them."""
    containers = _containers(compiled["yaml"])
    assert set(containers) == set(_tasks(compiled["yaml"]))
    assert {c["image"] for c in containers.values()} == {IMAGE}
    assert not any("resolver" in e for e in compiled["yaml"]["deploymentSpec"]["executors"]
                   .values())


def test_only_the_span_listing_and_the_steps_reading_the_serving_root_are_never_cached(
        compiled):
    caching = {name: task.get("cachingOptions", {}).get("enableCache", False)
               for name, task in _tasks(compiled["yaml"]).items()}
    assert {name for name, cached in caching.items() if not cached} == {
        "LatestBlessedModel", "SpanListing", "DataGuard", "DataReference"}
    # Transform waits for the data guard, without taking any of its output.
    assert "DataGuard" in _tasks(compiled["yaml"])["Transform"]["dependentTasks"]


def test_the_span_listing_reaches_ingestion_as_a_parameter_value(compiled):
    """KFP's cache key holds parameter values, not artifact contents: the listing must be
    an output parameter of a task that exists, read by ImageExampleGen."""
    spec = compiled["yaml"]
    listing = _tasks(spec)["ImageExampleGen"]["inputs"]["parameters"]["span_listing"]
    assert listing == {"taskOutputParameter": {"producerTask": "SpanListing",
                                               "outputParameterKey": "span_listing"}}
    producer = spec["components"][_tasks(spec)["SpanListing"]["componentRef"]["name"]]
    assert producer["outputDefinitions"]["parameters"]["span_listing"] == {
        "parameterType": "STRING"}
    # The champion a retrain starts from reaches the Trainer the same way.
    assert _tasks(spec)["Trainer"]["inputs"]["parameters"]["warm_start"] == {
        "taskOutputParameter": {"producerTask": "SpanListing",
                                "outputParameterKey": "warm_start"}}


def test_trainer_gets_the_configured_resources_and_every_task_has_some(compiled):
    containers = _containers(compiled["yaml"])
    assert containers["Trainer"]["resources"] == {
        "cpuRequest": 8.0, "cpuLimit": 8.0, "memoryRequest": 30.0, "memoryLimit": 30.0,
        "accelerator": {"type": "nvidia.com/gpu", "count": "1"}}
    defaults = compiled["config"].kubeflow.resources
    assert containers["Transform"]["resources"]["memoryLimit"] == defaults.transform.memory_gb
    assert containers["ImageExampleGen"]["resources"]["cpuLimit"] == \
        defaults.image_example_gen.cpu
    assert all("accelerator" not in c["resources"] for n, c in containers.items()
               if n != "Trainer")


def test_runtime_parameters_are_declared_wired_and_default_to_the_config(compiled):
    spec = compiled["yaml"]
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert set(declared) == {"data_root", "train_config", "eval_config"}
    assert {p["parameterType"] for p in declared.values()} == {"STRING"}
    assert declared["data_root"]["defaultValue"] == "gs://imgpipe-data/flowers"
    train = json.loads(declared["train_config"]["defaultValue"])["train"]
    assert train["learning_rate"] == 0.0005  # set by the fixture's config
    assert train["phase1_epochs"] == compiled["config"].train.phase1_epochs  # a default
    assert '"lowerBound": 0.75' in declared["eval_config"]["defaultValue"]

    inputs = {t: _tasks(spec)[t]["inputs"]["parameters"] for t in _tasks(spec)
              if "parameters" in _tasks(spec)[t].get("inputs", {})}
    assert inputs["ImageExampleGen"]["input_base"] == {"componentInputParameter": "data_root"}
    assert inputs["Trainer"]["custom_config"] == {"componentInputParameter": "train_config"}
    assert inputs["Evaluator"]["eval_config"] == {"componentInputParameter": "eval_config"}
    assert compiled["job"]["runtimeConfig"]["parameterValues"]["data_root"] == \
        "gs://imgpipe-data/flowers"


def _beam_args(spec, task):
    args = _containers(spec)[task]["args"]
    return args[[a.startswith("--runner=") for a in args].index(True):]


def _compile(*overrides):
    config = kubeflow.cluster_config(load_config(overrides=CLUSTER + overrides))
    return kubeflow.compile_spec(config)["pipelineSpec"]


@pytest.mark.parametrize("profile, overrides, expected", [
    ("direct", ("beam.kubeflow_direct_num_workers=3",),
     ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
      "--direct_num_workers=3", f"--sdk_container_image={IMAGE}"]),
    ("dataflow", ("beam.runner=dataflow", "beam.dataflow.project=vision-prod",
                  "beam.dataflow.region=europe-west4",
                  "beam.dataflow.temp_location=gs://imgpipe/tmp",
                  "beam.dataflow.max_num_workers=20"),
     ["--runner=DataflowRunner", "--project=vision-prod", "--region=europe-west4",
      "--temp_location=gs://imgpipe/tmp", "--max_num_workers=20",
      f"--sdk_container_image={IMAGE}"]),
    ("flink", ("beam.runner=flink", "beam.flink.job_endpoint=flink-jobserver:8099"),
     ["--runner=PortableRunner", "--job_endpoint=flink-jobserver:8099",
      "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
      f"--sdk_container_image={IMAGE}"]),
    ("spark", ("beam.runner=spark", "beam.spark.job_endpoint=spark-jobserver:8099",
               "beam.spark.environment_type=DOCKER", "beam.extra_args=[--experiments=beam_fn_api]"),
     ["--runner=PortableRunner", "--job_endpoint=spark-jobserver:8099",
      "--environment_type=DOCKER", f"--environment_config={IMAGE}",
      f"--sdk_container_image={IMAGE}", "--experiments=beam_fn_api"]),
])
def test_beam_profiles_reach_the_beam_components(profile, overrides, expected):
    spec = _compile(*overrides)
    for task in BEAM_COMPONENTS:
        assert _beam_args(spec, task) == expected, task
    hook = _executor(spec, "ImageExampleGen")["container"]["lifecycle"]["preCacheCheck"]
    assert hook["args"][-len(expected):] == expected


@pytest.mark.parametrize("overrides, field", [
    (("beam.runner=dataflow",), "beam.dataflow.project"),
    (("beam.runner=flink",), "beam.flink.job_endpoint"),
    (("beam.runner=spark", "beam.spark.job_endpoint=js:8099",
      "beam.spark.environment_type=SSH"), "beam.spark.environment_type"),
    (("data.source=demo",), "data.source"),
    (("kubeflow.pipeline_root=",), "kubeflow.pipeline_root"),
    (("serving_root=",), "serving_root"),
    (("serving_root=relative/serving",), "serving_root"),
    (("registry.tracking_uri=",), "registry.tracking_uri"),
    (("name=img_pipe",), "name"),
    (("kubeflow.resources.trainer.memory_gb=0",), "kubeflow.resources.trainer.memory_gb"),
])
def test_cluster_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=re.escape(f"'{field}'")):
        kubeflow.cluster_config(load_config(overrides=CLUSTER + overrides))


def _entrypoints(spec):
    """Every module run with `python -m` and every --executor_class_path in the spec."""
    modules, classes = set(), set()
    for container in _containers(spec).values():
        for run in (container, container.get("lifecycle", {}).get("preCacheCheck")):
            if run:
                assert run["command"][:2] == ["python", "-m"]
                modules.add(run["command"][2])
                args = run.get("args", [])
                if "--executor_class_path" in args:
                    classes.add(args[args.index("--executor_class_path") + 1])
    return modules, classes


def _project_packages():
    """What setup.py installs into the image (pip install . in the Dockerfile)."""
    from setuptools import find_packages

    include = re.search(r"find_packages\(include=(\[[^\]]*\])", (REPO / "setup.py").read_text())
    return set(find_packages(where=str(REPO), include=eval(include.group(1))))  # noqa: S307


def test_every_executor_and_module_in_the_spec_imports_here_and_ships_in_the_image(compiled):
    modules, classes = _entrypoints(compiled["yaml"])
    assert "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor" in modules
    assert "components.image_example_gen.executor.Executor" in classes
    packages = _project_packages()
    for module in modules:
        importlib.import_module(module)
    for path in classes:
        module, name = path.rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), name), type), path
        if module.split(".")[0] in {"components", "pipeline", "trainer"}:
            assert module.rsplit(".", 1)[0] in packages, f"{path} is not installed by setup.py"


def _constant(spec, task: str, parameter: str) -> str:
    return _tasks(spec)[task]["inputs"]["parameters"][parameter]["runtimeValue"]["constant"]


def test_the_specs_preprocessing_fn_runs_as_transform_loads_it(compiled, tmp_path):
    """Loaded from its dotted path the way TFX's Transform does, and run by tf.Transform
    on raw examples: labels become vocabulary ids (most frequent first), images pass."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tfx.components.util import udf_utils

    from trainer import features

    name = "preprocessing_fn"
    preprocessing_fn = udf_utils.get_fn(
        {name: _constant(compiled["yaml"], "Transform", name)}, name)
    spec = {features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            features.LABEL_KEY: tf.io.FixedLenFeature([], tf.string)}
    rows = [{features.IMAGE_KEY: f"img{i}".encode(), features.LABEL_KEY: label}
            for i, label in enumerate([b"tulip ", b"daisy", b" tulip"])]
    with tft_beam.Context(temp_dir=str(tmp_path)):
        (transformed, _), _ = (rows, tft.DatasetMetadata.from_feature_spec(spec)) | \
            tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    assert [row[features.LABEL_ID_KEY] for row in transformed] == [0, 1, 0]
    assert [row[features.TRANSFORMED_IMAGE_KEY] for row in transformed] == \
        [row[features.IMAGE_KEY] for row in rows]


def test_the_specs_run_fn_gets_the_train_section_it_was_compiled_with(compiled):
    """The Trainer loads run_fn from its dotted path (trained for real in
    tests/trainer/test_task.py) and hands it the train_config parameter as custom_config:
    by default, the compiled train section, which run_fn rebuilds the same."""
    from tfx.components.util import udf_utils

    from trainer import task
    from trainer.config_fields import section_from_dict
    from trainer.train_config import TrainConfig

    assert udf_utils.get_fn({"run_fn": _constant(compiled["yaml"], "Trainer", "run_fn")},
                            "run_fn") is task.run_fn
    declared = compiled["yaml"]["root"]["inputDefinitions"]["parameters"]
    custom_config = json.loads(declared["train_config"]["defaultValue"])
    rebuilt = section_from_dict(TrainConfig, custom_config["train"], "train")
    assert rebuilt == compiled["config"].train and rebuilt.learning_rate == 0.0005
