"""create_pipeline(config): the one DAG every runner uses. Pure: builds, runs nothing.

ImageExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> Trainer
-> Resolver (latest blessed model) -> Evaluator -> Pusher
"""
import hashlib
import os
from typing import Any, Dict, List, Optional

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tensorflow_metadata.proto.v0 import schema_pb2

import trainer
from components.image_example_gen.component import ImageExampleGen
from pipeline.config import PipelineConfig
from trainer import features


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


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.eval.min_accuracy}),
        # Passes while candidate - baseline >= -max_accuracy_drop.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.eval.max_accuracy_drop}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_tf_example",
            preprocessing_function_names=["transform_features"],
            label_key=features.LABEL_ID_KEY,
            prediction_key="probabilities",
            inference_batch_size=config.eval.inference_batch_size)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL_KEY])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              config='{"name": "accuracy"}', threshold=accuracy_threshold),
            tfma.MetricConfig(class_name="ExampleCount"),
        ])])


def create_pipeline(config: PipelineConfig, data_root: str, manifest: Optional[str] = None,
                    metadata_connection_config: Any = None) -> tfx.dsl.Pipeline:
    """The full DAG for `config`, reading images from `data_root` (or its `manifest`).

    Runners add what is theirs: the local one an MLMD sqlite connection; on Kubeflow the
    cluster's MLMD is used and the argument stays None.
    """
    example_gen = ImageExampleGen(input_base=data_root, data=config.data, manifest=manifest)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=stats_options())
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])

    code_version = {"code_version": source_fingerprint(trainer)}
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn="trainer.preprocessing.preprocessing_fn",
        custom_config=code_version, disable_statistics=True)
    trainer_component = tfx.components.Trainer(
        run_fn="trainer.task.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config={"train": config.to_dict()["train"], **code_version})

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer_component.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config(config))
    pusher = tfx.components.Pusher(
        model=trainer_component.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)))

    components: List[Any] = [example_gen, statistics_gen, schema_gen, example_validator,
                             transform, trainer_component, model_resolver, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam.pipeline_args())
