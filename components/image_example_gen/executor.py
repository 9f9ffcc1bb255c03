"""ImageExampleGen executor: image files -> tf.Examples holding the encoded bytes.

The files come from listing.py (a folder tree or a CSV manifest); each is read once and
checked by image_checks.check_candidate. Accepted files are then grouped by the sha256
of their content: copies under one label keep the smallest id (`duplicate` for the
others, naming the kept id); copies under different labels are all rejected
(`conflicting_duplicate`). The remaining images are placed by the split rule
(split_rule.py): their fingerprints and sha256s (not their bytes) are gathered in one
step that finds the near-duplicate groups, honours the placements of the prior
fingerprint indexes and may reject images (`conflicting_near_duplicate`,
`near_duplicate_across_splits`); the placements come back to every image as a side
input. The split names and sizes come from output_config (hash_buckets per split), and
fingerprints.tsv (the index of this run) is written beside the report.

Every outcome also feeds the ingestion report (report.py). Do() then sets the int
custom properties ingested_count / rejected_count / files_seen on the Examples artifact
and fails when nothing was ingested or when the rejected fraction exceeds
max_rejected_fraction; it also records the number of near-duplicate groups and the
largest one's size.
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

from components.artifacts import ingestion
from components.image_example_gen import fingerprint as fp
from components.image_example_gen import image_checks as checks
from components.image_example_gen import listing
from components.image_example_gen import report as ingestion_report
from components.image_example_gen import split_rule
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
        features.FINGERPRINT_KEY: _int_feature(fp.to_int64(image.fingerprint)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


# -- splits ---------------------------------------------------------------------------------
def split_settings(exec_properties: Dict[str, Any],
                   options: IngestionOptions) -> split_rule.Settings:
    """The rule's settings: bucket counts from output_config, the rest from the options."""
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                              output_config)
    buckets = {s.name: s.hash_buckets for s in output_config.split_config.splits}
    if sorted(buckets) != sorted(split_rule.SPLITS):
        raise ValueError(f"ImageExampleGen output_config must split into "
                         f"{list(split_rule.SPLITS)} with hash_buckets, got {sorted(buckets)}")
    return split_rule.Settings(
        max_distance=options.near_duplicate_distance,
        train_buckets=buckets[features.TRAIN_SPLIT], eval_buckets=buckets[features.EVAL_SPLIT],
        conflicting_action=options.conflicting_near_duplicates)


def prior_indexes(custom: Dict[str, Any]) -> List[str]:
    uris = list(custom.get(split_rule.PRIOR_INDEXES_KEY) or [])
    missing = [uri for uri in uris if not fileio.exists(uri)]
    if missing:
        raise ValueError(f"custom_config {split_rule.PRIOR_INDEXES_KEY}: no such fingerprint "
                         f"index {missing[0]}")
    return uris


def plan_splits(members: List[split_rule.Member], prior_uris: List[str],
                settings: split_rule.Settings) -> split_rule.Plan:
    prior = [row for uri in prior_uris for row in split_rule.read_index(uri)]
    return split_rule.plan_splits(members, prior, settings)


class MembersCombineFn(beam.CombineFn):
    """Accepted outcomes -> the split rule's members (ids, hashes, fingerprints, labels)."""

    def create_accumulator(self) -> List[split_rule.Member]:
        return []

    def add_input(self, members: List[split_rule.Member], outcome: Outcome
                  ) -> List[split_rule.Member]:
        if outcome.accepted:
            members.append(split_rule.Member(outcome.image_id, outcome.sha256,
                                             outcome.image.fingerprint, outcome.label))
        return members

    def merge_accumulators(self, accumulators: Iterable[List[split_rule.Member]]
                           ) -> List[split_rule.Member]:
        return [m for members in accumulators for m in members]

    def extract_output(self, members: List[split_rule.Member]) -> List[split_rule.Member]:
        return members


def place(outcome: Outcome, plan: split_rule.Plan) -> Iterator[Any]:
    """The outcome (rejected if the rule says so) on the main output, and an accepted
    image's example on the output named after its split."""
    if not outcome.accepted:
        yield outcome
        return
    placement = plan.placements[outcome.image_id]
    if placement.reason:
        yield outcome.rejected(placement.reason, placement.detail)
        return
    yield outcome
    yield beam.pvalue.TaggedOutput(placement.split, to_example(outcome))


def with_near_duplicates(report: Dict[str, Any], plan: split_rule.Plan,
                         settings: split_rule.Settings) -> Dict[str, Any]:
    return {**report, ingestion_report.NEAR_DUPLICATE_DISTANCE: settings.max_distance,
            ingestion.NEAR_DUPLICATE_GROUPS: plan.groups,
            ingestion.LARGEST_NEAR_DUPLICATE_GROUP: plan.largest_group,
            ingestion_report.WARNINGS: sorted(plan.warnings, key=lambda w: w["file"])}


# -- the Beam transform ---------------------------------------------------------------------
_OUTCOMES = "outcomes"


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def _ImagesToExample(  # pylint: disable=invalid-name
        pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
        split_pattern: str) -> Dict[str, beam.pvalue.PCollection]:
    """Lists, checks, de-duplicates and places the images: {split name: examples}.
    Writes the report and the fingerprint index as side branches."""
    custom = parse_custom_config(exec_properties)
    options = IngestionOptions.from_dict(custom)
    settings = split_settings(exec_properties, options)
    prior_uris = prior_indexes(custom)
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
    # Only ids, hashes and labels meet in one place; the image bytes stay where they are.
    plan = (deduplicated
            | "GatherFingerprints" >> beam.CombineGlobally(MembersCombineFn())
            | "PlanSplits" >> beam.Map(plan_splits, prior_uris, settings))
    placed = deduplicated | "Place" >> beam.FlatMap(
        place, beam.pvalue.AsSingleton(plan)).with_outputs(*split_rule.SPLITS,
                                                           main=_OUTCOMES)
    outcomes = (placed[_OUTCOMES], rejected) | "AllOutcomes" >> beam.Flatten()

    report_dir = exec_properties.get(_REPORT_DIR_KEY)
    if report_dir:
        _ = (outcomes
             | "Report" >> beam.CombineGlobally(ingestion_report.ReportCombineFn())
             | "AddNearDuplicates" >> beam.Map(with_near_duplicates,
                                               beam.pvalue.AsSingleton(plan), settings)
             | "WriteReport" >> beam.Map(ingestion_report.write_report, report_dir))
        _ = plan | "WriteIndex" >> beam.Map(lambda p: split_rule.write_index(p.rows,
                                                                             report_dir))
    return {split: placed[split] for split in split_rule.SPLITS}


# -- the executor ---------------------------------------------------------------------------
class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for image folders and CSV manifests."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """{split name: examples}: the split rule, not a hash per example, decides."""
        return _ImagesToExample

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: Dict[str, Any]
                               ) -> Dict[str, beam.pvalue.PCollection]:
        """The examples of each split as the split rule placed them (TFX's default would
        hash a feature of each example on its own)."""
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        exec_properties["_beam_pipeline_args"] = self._beam_pipeline_args or []
        return pipeline | "InputToRecord" >> _ImagesToExample(  # pylint: disable=no-value-for-parameter
            exec_properties, input_config.splits[0].pattern)

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        options = IngestionOptions.from_dict(parse_custom_config(exec_properties))
        report_path = listing.join(examples.uri, ingestion.REPORT_FILE)
        for stale in (report_path, listing.join(examples.uri, ingestion.REJECTED_CSV),
                      listing.join(examples.uri, split_rule.INDEX_FILE)):
            if fileio.exists(stale):  # a retried run's leftovers must not pass for its own
                fileio.remove(stale)
        super().Do(input_dict, output_dict, {**exec_properties, _REPORT_DIR_KEY: examples.uri})

        report = ingestion_report.read_report(examples.uri)
        rejected = len(report["rejected"])
        logging.info("ImageExampleGen: %d files seen, %d ingested %s, %d rejected %s, "
                     "%d normalised; report: %s", report["files_seen"], report["ingested"],
                     report["ingested_by_label"], rejected, report["counts_by_reason"],
                     len(report["normalised"]), report_path)
        examples.set_int_custom_property(ingestion.INGESTED_COUNT, report["ingested"])
        examples.set_int_custom_property(ingestion.REJECTED_COUNT, rejected)
        examples.set_int_custom_property(ingestion.FILES_SEEN, report["files_seen"])
        for key in (ingestion.NEAR_DUPLICATE_GROUPS,
                    ingestion.LARGEST_NEAR_DUPLICATE_GROUP):
            examples.set_int_custom_property(key, report[key])
        logging.info("ImageExampleGen: %d near-duplicate groups of 2 or more images, the "
                     "largest of %d", report[ingestion.NEAR_DUPLICATE_GROUPS],
                     report[ingestion.LARGEST_NEAR_DUPLICATE_GROUP])
        for warning in report[ingestion_report.WARNINGS]:
            logging.warning("ImageExampleGen: %s %s: %s", warning["file"], warning["reason"],
                            warning["detail"])
        ingestion_report.check_report(report, options.max_rejected_fraction, report_path,
                                      exec_properties[standard_component_specs.INPUT_BASE_KEY])
