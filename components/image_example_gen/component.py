"""ImageExampleGen: TFX's FileBasedExampleGen running the image executor.

    example_gen = ImageExampleGen(input_base="data/flowers", data=config.data)
    example_gen = ImageExampleGen(input_base="data", data=config.data, manifest="labels.csv")

The ingestion knobs travel in custom_config (a google.protobuf.Struct of
`ingestion_options(...)`, plus `prior_fingerprint_indexes`: the fingerprints.tsv of
earlier runs or spans, whose placements the split rule honours), the split names and
sizes in output_config (hash_buckets); the executor places images by near-duplicate
group (split_rule.py), not by TFX's per-example hash.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from google.protobuf import any_pb2, struct_pb2
from tfx import types
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components.image_example_gen import executor, listing, split_rule
from components.image_example_gen.config import INGESTION_FIELDS, DataConfig, ingestion_config
from trainer import features

FOLDER_PATTERN = "*/*"  # root/<label>/<entry>: what TFX's driver fingerprints
_GLOB_CHARS = frozenset("*?[]{}")

DataLike = Union[DataConfig, Mapping[str, Any]]


def as_data_config(data: DataLike) -> DataConfig:
    """A validated DataConfig from a DataConfig or a dict of its fields."""
    config = data if isinstance(data, DataConfig) else DataConfig(**dict(data))
    config.validate()
    return config


def ingestion_options(data: DataLike, manifest: Optional[str] = None) -> Dict[str, Any]:
    """The JSON-serialisable custom_config of ImageExampleGen, built from the typed config."""
    config = as_data_config(data)
    options = ingestion_config(dataclasses.asdict(config))
    layout = listing.LAYOUT_MANIFEST if manifest else listing.LAYOUT_FOLDER
    return {**{name: getattr(options, name) for name in INGESTION_FIELDS},
            listing.LAYOUT_KEY: layout}


def _custom_config(values: Dict[str, Any]) -> example_gen_pb2.CustomConfig:
    struct = struct_pb2.Struct()
    struct.update(values)
    packed = any_pb2.Any()
    packed.Pack(struct)
    return example_gen_pb2.CustomConfig(custom_config=packed)


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's parameters and the span listing (a string that may come from
    an upstream step: it is what the cache key holds of the data)."""
    PARAMETERS = {**standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
                  executor.SPAN_LISTING_KEY: ExecutionParameter(type=str, optional=True)}


class _SpanExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen (its driver, its Kubeflow compilation) with the listing."""
    SPEC_CLASS = ImageExampleGenSpec

    def __init__(self, input_base: str, input_config: example_gen_pb2.Input,
                 output_config: example_gen_pb2.Output,
                 custom_config: example_gen_pb2.CustomConfig, span_listing: Any,
                 custom_executor_spec: executor_spec.ExecutorSpec):
        spec = ImageExampleGenSpec(
            input_base=input_base, input_config=input_config, output_config=output_config,
            custom_config=custom_config, span_listing=span_listing,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=types.Channel(type=standard_artifacts.Examples))
        base_beam_component.BaseBeamComponent.__init__(  # pylint: disable=non-parent-init-called
            self, spec=spec, custom_executor_spec=custom_executor_spec)


def ImageExampleGen(input_base: str, data: DataLike,  # pylint: disable=invalid-name
                    manifest: Optional[str] = None,
                    prior_fingerprint_indexes: Sequence[str] = (), span_listing: Any = None,
                    span_store: str = "") -> FileBasedExampleGen:
    """ExampleGen over root/<label>/<file> images, or over a CSV manifest in input_base.

    Args:
      input_base: the class-per-folder root, or the folder holding the manifest (its
        paths are relative to it).
      data: DataConfig, or a dict of its fields.
      manifest: the manifest's file name inside input_base; None for the folder layout.
      prior_fingerprint_indexes: URIs of fingerprints.tsv files of earlier runs or spans:
        their images keep their splits and new near-duplicates join them.
      span_listing: the window's spans (spans.to_listing, or an upstream step's String
        output's .future()[0].value): each is ingested once into span_store and the
        Examples are assembled from there. None: input_base ingested as it is.
      span_store: the span store's folder (with span_listing).
    """
    if manifest is not None and (os.path.basename(manifest) != manifest
                                 or _GLOB_CHARS & set(manifest) or not manifest):
        raise ValueError(f"manifest must be a file name inside input_base without glob "
                         f"characters, got {manifest!r}")
    config = as_data_config(data)
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="images", pattern=manifest or FOLDER_PATTERN)])
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name=features.TRAIN_SPLIT,
                                              hash_buckets=config.train_buckets),
            example_gen_pb2.SplitConfig.Split(name=features.EVAL_SPLIT,
                                              hash_buckets=config.eval_buckets),
        ]))
    options = {**ingestion_options(config, manifest),
               split_rule.PRIOR_INDEXES_KEY: list(prior_fingerprint_indexes)}
    if span_listing is not None:
        options[executor.SPAN_STORE_KEY] = span_store
    return _SpanExampleGen(
        span_listing=span_listing,
        input_base=input_base,
        input_config=input_config,
        output_config=output_config,
        custom_config=_custom_config(options),
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    )
