"""create_pipeline(config): the one DAG every runner uses. Pure: builds, runs nothing.

SpanListing -> ImageExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform
-> Trainer -> LatestBlessedModel (the baseline) -> Evaluator -> Pusher -> DataReference
StatisticsGen -> DataGuard (the champion's schema and data) -> Transform (order only)
"""
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

import tensorflow_data_validation as tfdv
from google.protobuf import json_format
# Not `from tfx import v1`: it also imports the Google Cloud extensions, which cost about
# ten seconds of start-up on every local run.
from tfx.components import ExampleValidator, SchemaGen, StatisticsGen, Transform
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.data_types import RuntimeParameter
from tfx.proto.orchestration import pipeline_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

import trainer
from components.data_guard.component import DataGuard
from components.data_reference.component import DataReference
from components.evaluator.component import Evaluator
from components.evaluator.tfma_config import eval_config
from components.image_example_gen.component import ImageExampleGen
from components.artifacts.span_names import split_span_source
from components.latest_blessed_model.component import LatestBlessedModel
from components.registry_pusher.component import RegistryPusher
from components.span_listing.component import SpanListing
from components.warm_start_trainer.component import WarmStartTrainer
from pipeline import component_ids as ids
from pipeline.component_ids import NEVER_CACHED
from pipeline.config import PipelineConfig
from trainer import features
from trainer.files import is_remote

SPAN_STORE_DIR = "spans"  # under the pipeline root: each span ingested once


def source_fingerprint(package: Any) -> str:
    """Hash of a package's .py sources: changes exactly when its code changes.

    Transform and Trainer name their functions by dotted path, so TFX's cache would not
    notice an edit; passing this in custom_config makes it notice.
    """
    digest = hashlib.sha256()
    root = os.path.dirname(package.__file__)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:16]


def stats_options() -> tfdv.StatsOptions:
    """Statistics that treat the image as opaque bytes (no top-k of JPEG strings)."""
    schema = schema_pb2.Schema()
    image = schema.feature.add(name=features.IMAGE_KEY, type=schema_pb2.BYTES)
    image.image_domain.SetInParent()
    return tfdv.StatsOptions(schema=schema, num_top_values=10, num_rank_histogram_buckets=10)


def trainer_custom_config(config: PipelineConfig) -> Dict[str, Any]:
    return {"train": config.to_dict()["train"], "code_version": source_fingerprint(trainer)}


def runtime_parameter_values(config: PipelineConfig, data_root: str) -> Dict[str, str]:
    """What a Kubeflow run may change without recompiling, as the components take it:
    the data root, the Trainer's custom_config (the train section) and the Evaluator's
    eval_config (the thresholds), the last two as JSON."""
    return {
        "data_root": data_root,
        "train_config": json.dumps(trainer_custom_config(config), sort_keys=True),
        "eval_config": json_format.MessageToJson(_eval_config(config), sort_keys=True),
    }


def _eval_config(config: PipelineConfig) -> Any:
    return eval_config(config.eval, config.train.top_k)


def _parameters(config: PipelineConfig, data_root: str, runtime: bool) -> Dict[str, Any]:
    if not runtime:
        return {"data_root": data_root, "train_config": trainer_custom_config(config),
                "eval_config": _eval_config(config)}
    return {name: RuntimeParameter(name=name, ptype=str, default=value)
            for name, value in runtime_parameter_values(config, data_root).items()}


PROJECT_SETUP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "setup.py")


def beam_pipeline_args(config: PipelineConfig) -> List[str]:
    """The Beam profile's flags and, unless an SDK image carries the code, this project's
    setup.py: what a staging runner (Dataflow) must ship to its workers. Without any such
    flag TFX packages its own sources at every Beam component (~1.5 s each), which no
    runner here uses: the direct runner stages nothing, remote workers need this project."""
    args = config.beam.pipeline_args()
    if not config.beam.sdk_container_image and os.path.isfile(PROJECT_SETUP):
        args.append(f"--setup_file={PROJECT_SETUP}")
    return args


def _absolute(path: str) -> str:
    """Local paths made absolute (components may run elsewhere than the cwd); URIs kept."""
    return path if is_remote(path) else os.path.abspath(path)


def span_store(pipeline_root: str) -> str:
    return (pipeline_root.rstrip("/") + "/" + SPAN_STORE_DIR if is_remote(pipeline_root)
            else os.path.join(pipeline_root, SPAN_STORE_DIR))


def create_pipeline(config: PipelineConfig, data_root: str, manifest: Optional[str] = None,
                    metadata_connection_config: Any = None,
                    runtime_parameters: bool = False, precomputed: str = "",
                    pipeline_root: Optional[str] = None) -> tfx_pipeline.Pipeline:
    """The full DAG for `config`, reading images from `data_root` (or its `manifest`).

    Runners add what is theirs: the local one an MLMD sqlite connection and the span
    listing it made before the run (SpanListing's `precomputed`); on Kubeflow the
    cluster's MLMD is used and the argument stays None, SpanListing lists the spans in
    the run, and `runtime_parameters` turns the values of runtime_parameter_values() into
    parameters a run may override. `pipeline_root` (default config.pipeline_root) holds
    the span store.
    """
    params = _parameters(config, data_root, runtime_parameters)
    root = pipeline_root or config.pipeline_root
    serving_dir = _absolute(config.serving_dir)
    listing = SpanListing(
        data_root=params["data_root"], span_pattern=split_span_source(config.data.source)[1],
        window_spans=config.data.window_spans, serving_dir=serving_dir,
        warm_start_mode=config.train.warm_start, precomputed=precomputed,
    ).with_id(ids.SPAN_LISTING)
    example_gen = ImageExampleGen(
        input_base=params["data_root"], data=config.data, manifest=manifest,
        span_listing=listing.outputs["span_listing"].future()[0].value,
        span_store=span_store(_absolute(root))).with_id(ids.EXAMPLE_GEN)
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=stats_options(),
    ).with_id(ids.STATISTICS_GEN)
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True,
    ).with_id(ids.SCHEMA_GEN)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
    ).with_id(ids.EXAMPLE_VALIDATOR)

    serving_dir = _absolute(config.serving_dir)
    guard = DataGuard(statistics=statistics_gen.outputs["statistics"], serving_dir=serving_dir,
                      guard=config.guard).with_id(ids.DATA_GUARD)

    code_version = {"code_version": source_fingerprint(trainer)}
    transform = Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn="trainer.preprocessing.preprocessing_fn",
        custom_config=code_version, disable_statistics=True).with_id(ids.TRANSFORM)
    if config.guard.enabled:
        transform.add_upstream_node(guard)  # nothing trains on data the guard stopped
    trainer_component = WarmStartTrainer(
        run_fn="trainer.task.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config=params["train_config"],
        warm_start=listing.outputs["warm_start"].future()[0].value).with_id(ids.TRAINER)

    baseline = LatestBlessedModel(
        model=trainer_component.outputs["model"], serving_dir=serving_dir).with_id(ids.BASELINE)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer_component.outputs["model"],
        baseline_model=baseline.outputs["baseline_model"],
        eval_config=params["eval_config"]).with_id(ids.EVALUATOR)
    pusher = RegistryPusher(
        model=trainer_component.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        model_evaluation=evaluator.outputs["evaluation"],
        examples=example_gen.outputs["examples"],
        serving_dir=serving_dir, model_name=config.registry_model_name,
        registry_uri=config.registry_uri if config.registry.enabled else "",
        config=config.to_dict(), config_hash=config.fingerprint(),
        tf_serving_url=config.registry.tf_serving_url,
        tf_serving_timeout_s=config.registry.tf_serving_timeout_s,
    ).with_id(ids.PUSHER)
    data_reference = DataReference(
        pushed_model=pusher.outputs["pushed_model"],
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        serving_dir=serving_dir, size_range_factor=config.guard.size_range_factor,
    ).with_id(ids.DATA_REFERENCE)

    components: List[Any] = [listing, example_gen, statistics_gen, schema_gen, example_validator,
                             transform, trainer_component, baseline, evaluator, pusher,
                             data_reference]
    if config.guard.enabled:
        components.append(guard)
    return tfx_pipeline.Pipeline(
        pipeline_name=config.name,
        pipeline_root=root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args(config))


def without_cache_for(ir: pipeline_pb2.Pipeline, node_ids=NEVER_CACHED) -> pipeline_pb2.Pipeline:
    """The compiled pipeline with caching turned off for node_ids (the local runner's IR)."""
    for node in ir.nodes:
        if node.pipeline_node.node_info.id in node_ids:
            node.pipeline_node.execution_options.caching_options.enable_cache = False
    return ir
