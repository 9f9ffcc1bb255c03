"""ImageExampleGen executor: image files -> tf.Examples holding the encoded bytes.

The files come from listing.py (a folder tree or a CSV manifest); each is read once and
checked by image_checks.check_candidate. Accepted files are then grouped by the sha256
of their content: copies under one label keep the smallest id (`duplicate` for the
others, naming the kept id); copies under different labels are all rejected
(`conflicting_duplicate`). Splits hash IMAGE_ID_KEY (TFX's sha256 partitioning), so an
image's split depends on its id only.

Every outcome also feeds the ingestion report (report.py). Do() then sets the int
custom properties ingested_count / rejected_count / files_seen on the Examples artifact
and fails when nothing was ingested or when the rejected fraction exceeds
max_rejected_fraction.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Tuple, Union

import apache_beam as beam
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx import types
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import image_checks as checks
from components.image_example_gen import listing
from components.image_example_gen import report as ingestion_report
from components.image_example_gen.image_checks import Candidate, IngestionOptions, Outcome
from trainer import features

# Private exec_properties key: where the PTransform writes the report (the artifact URI).
_REPORT_DIR_KEY = "_image_example_gen_report_dir"


# -- custom_config --------------------------------------------------------------------------
def parse_custom_config(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """The custom_config dict, whether it arrives as JSON (launchers), proto or dict."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        raise ValueError("ImageExampleGen needs custom_config; build the component with "
                         "components.image_example_gen.component.ImageExampleGen")
    if isinstance(raw, dict):
        return raw
    config = raw
    if isinstance(raw, str):
        config = example_gen_pb2.CustomConfig()
        proto_utils.json_to_proto(raw, config)
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        raise ValueError("ImageExampleGen custom_config must pack a google.protobuf.Struct")
    return json_format.MessageToDict(struct)


# -- duplicates -----------------------------------------------------------------------------
def resolve_duplicates(sha_and_outcomes: Tuple[str, Iterable[Outcome]]) -> Iterator[Outcome]:
    """Accepted outcomes sharing one content hash -> at most one stays accepted."""
    _, group = sha_and_outcomes
    copies = sorted(group, key=lambda o: o.image_id)
    labels = sorted({o.label for o in copies})
    if len(labels) > 1:
        for o in copies:
            others = ", ".join(f"{c.image_id} ({c.label})" for c in copies if c is not o)
            yield o.rejected(checks.REASON_CONFLICTING_DUPLICATE,
                             f"same content as {others}: labels {labels} disagree")
        return
    kept, *others = copies
    yield kept
    for o in others:
        yield o.rejected(checks.REASON_DUPLICATE, f"same content as kept {kept.image_id}")


# -- examples -------------------------------------------------------------------------------
def _bytes_feature(value: Union[str, bytes]) -> tf.train.Feature:
    value = value.encode("utf-8") if isinstance(value, str) else value
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def to_example(outcome: Outcome) -> tf.train.Example:
    image = outcome.image
    feature = {
        features.IMAGE_KEY: _bytes_feature(image.encoded),
        features.LABEL_KEY: _bytes_feature(outcome.label),
        features.IMAGE_ID_KEY: _bytes_feature(outcome.image_id),
        features.HEIGHT_KEY: _int_feature(image.height),
        features.WIDTH_KEY: _int_feature(image.width),
        features.CHANNELS_KEY: _int_feature(image.channels),
        features.FORMAT_KEY: _bytes_feature(image.format),
        features.SIZE_BUCKET_KEY: _bytes_feature(image.size_bucket),
        features.SOURCE_DIR_KEY: _bytes_feature(outcome.source_dir),
        features.FILE_SIZE_KEY: _int_feature(image.file_size),
        features.BRIGHTNESS_KEY: tf.train.Feature(
            float_list=tf.train.FloatList(value=[image.brightness])),
        features.SHARPNESS_KEY: tf.train.Feature(
            float_list=tf.train.FloatList(value=[image.sharpness])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


# -- the Beam transform ---------------------------------------------------------------------
@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImagesToExample(  # pylint: disable=invalid-name
        pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
        split_pattern: str) -> beam.pvalue.PCollection:
    """Lists, checks and de-duplicates the images; writes the report as a side branch."""
    custom = parse_custom_config(exec_properties)
    options = IngestionOptions.from_dict(custom)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    listed = listing.list_inputs(input_base, split_pattern,
                                 custom.get(listing.LAYOUT_KEY, listing.LAYOUT_FOLDER))
    logging.info("ImageExampleGen: %d files listed under %s", len(listed), input_base)

    checked = (pipeline
               | "ListFiles" >> beam.Create(listed)
               | "CheckFiles" >> beam.Map(
                   lambda item: checks.check_candidate(item, options)
                   if isinstance(item, Candidate) else item))
    accepted, rejected = checked | "SplitAccepted" >> beam.Partition(
        lambda outcome, _: 0 if outcome.accepted else 1, 2)
    deduplicated = (accepted
                    | "KeyByContent" >> beam.Map(lambda o: (o.sha256, o))
                    | "GroupByContent" >> beam.GroupByKey()
                    | "ResolveDuplicates" >> beam.FlatMap(resolve_duplicates))
    outcomes = (deduplicated, rejected) | "AllOutcomes" >> beam.Flatten()

    report_dir = exec_properties.get(_REPORT_DIR_KEY)
    if report_dir:
        _ = (outcomes
             | "Report" >> beam.CombineGlobally(ingestion_report.ReportCombineFn())
             | "WriteReport" >> beam.Map(ingestion_report.write_report, report_dir))
    return (outcomes
            | "KeepAccepted" >> beam.Filter(lambda o: o.accepted)
            | "ToExample" >> beam.Map(to_example))


# -- the executor ---------------------------------------------------------------------------
class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for image folders and CSV manifests."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImagesToExample

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        options = IngestionOptions.from_dict(parse_custom_config(exec_properties))
        report_path = listing.join(examples.uri, ingestion_report.REPORT_FILE)
        for stale in (report_path, listing.join(examples.uri, ingestion_report.REJECTED_CSV)):
            if fileio.exists(stale):  # a retried run's leftovers must not pass for its own
                fileio.remove(stale)
        super().Do(input_dict, output_dict, {**exec_properties, _REPORT_DIR_KEY: examples.uri})

        report = ingestion_report.read_report(examples.uri)
        rejected = len(report["rejected"])
        logging.info("ImageExampleGen: %d files seen, %d ingested %s, %d rejected %s, "
                     "%d normalised; report: %s", report["files_seen"], report["ingested"],
                     report["ingested_by_label"], rejected, report["counts_by_reason"],
                     len(report["normalised"]), report_path)
        examples.set_int_custom_property(ingestion_report.INGESTED_COUNT, report["ingested"])
        examples.set_int_custom_property(ingestion_report.REJECTED_COUNT, rejected)
        examples.set_int_custom_property(ingestion_report.FILES_SEEN, report["files_seen"])
        ingestion_report.check_report(report, options.max_rejected_fraction, report_path,
                                      exec_properties[standard_component_specs.INPUT_BASE_KEY])
