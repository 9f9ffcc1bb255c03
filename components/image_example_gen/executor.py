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

With a span listing (exec property `span_listing`, spans.py) each span of the window is
ingested alone, once, into the span store (span_store.py), its image ids prefixed with
the span's name, the index files of earlier spans passed as custom_config
`prior_fingerprint_indexes`; the Examples are then assembled from the stored spans.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Dict, Iterable, Iterator, List, Tuple, Union

import apache_beam as beam
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx import types
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.artifacts import ingestion
from components.image_example_gen import fingerprint as fp
from components.image_example_gen import image_checks as checks
from components.image_example_gen import labels, listing
from components.image_example_gen import report as ingestion_report
from components.image_example_gen import split_rule
from components.artifacts import spans
from components.image_example_gen import span_store
from components.image_example_gen.image_checks import Candidate, IngestionOptions, Outcome
from trainer import features

# Private exec_properties keys: where the PTransform writes the report (the artifact URI),
# what a span's image ids start with, and a span's own layout.
_REPORT_DIR_KEY = "_image_example_gen_report_dir"
_ID_PREFIX_KEY = "_image_example_gen_id_prefix"
_LAYOUT_OVERRIDE_KEY = "_image_example_gen_layout"
# The exec property holding the span listing (spans.to_listing); custom_config keys: the
# span store's folder; the index files of earlier spans go in as the split rule's prior.
SPAN_LISTING_KEY = "span_listing"
SPAN_STORE_KEY = "span_store"


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
        features.FILE_SIZE_KEY: _int_feature(image.file_size),
        features.BRIGHTNESS_KEY: tf.train.Feature(
            float_list=tf.train.FloatList(value=[image.brightness])),
        features.SHARPNESS_KEY: tf.train.Feature(
            float_list=tf.train.FloatList(value=[image.sharpness])),
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
    layout = (exec_properties.get(_LAYOUT_OVERRIDE_KEY)
              or custom.get(listing.LAYOUT_KEY, listing.LAYOUT_FOLDER))
    listed = listing.list_inputs(input_base, split_pattern, layout)
    prefix = exec_properties.get(_ID_PREFIX_KEY, "")
    if prefix:
        listed = [dataclasses.replace(item, image_id=prefix + item.image_id)
                  for item in listed]
    logging.info("ImageExampleGen: %d files listed under %s", len(listed), input_base)
    labels.check_labels(item.label for item in listed if isinstance(item, Candidate))

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
        listing_json = exec_properties.get(SPAN_LISTING_KEY) or ""
        if not listing_json:  # the component used alone: one ingestion of input_base
            report = self._ingest(input_dict, examples, exec_properties)
            _set_counts(examples, report, report["ingested"])
        else:
            self._ingest_spans(input_dict, examples, exec_properties, listing_json)
        options = IngestionOptions.from_dict(parse_custom_config(exec_properties))
        if options.min_images_per_split:  # over what trains and evaluates: the window
            labels.check_split_counts(labels.split_label_counts({
                split: artifact_utils.get_split_uri([examples], split)
                for split in artifact_utils.decode_split_names(examples.split_names)}),
                options.min_images_per_split)

    def _ingest_spans(self, input_dict: Dict[str, List[types.Artifact]],
                      examples: types.Artifact, exec_properties: Dict[str, Any],
                      listing_json: str) -> None:
        """Each span of the window from the store, or ingested into it; then the Examples
        assembled from the stored spans."""
        custom = parse_custom_config(exec_properties)
        store = custom.get(SPAN_STORE_KEY)
        if not store:
            raise ValueError(f"ImageExampleGen custom_config needs '{SPAN_STORE_KEY}' "
                             "with a span listing")
        root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        window = spans.from_listing(listing_json)
        folders, ingested_now, newly = [], [], 0
        for span in window:
            folder = span_store.stored(store, span)
            if folder is None:
                folder = span_store.ingest(store, span, lambda partial, span=span: (
                    self._ingest_span(input_dict, exec_properties, custom, store, root,
                                      span, partial)))
                ingested_now.append(span.name)
                newly += span_store.read_record(folder)["ingested"]
                logging.info("ImageExampleGen: span %s ingested into %s", span.name, folder)
            else:
                logging.info("ImageExampleGen: span %s from the span store (%s)",
                             span.name, folder)
            folders.append(folder)
        span_store.assemble(window, folders, examples.uri)
        examples.split_names = artifact_utils.encode_split_names(
            [features.TRAIN_SPLIT, features.EVAL_SPLIT])
        report = _merge_reports([ingestion_report.read_report(f) for f in folders], folders)
        ingestion_report.write_report(report, examples.uri)
        examples.span = window[-1].number
        examples.version = 0
        _set_counts(examples, report, newly)
        examples.set_string_custom_property(ingestion.WINDOW_SPANS,
                                            ",".join(s.name for s in window))
        examples.set_string_custom_property(ingestion.INGESTED_SPANS, ",".join(ingested_now))

    def _ingest_span(self, input_dict: Dict[str, List[types.Artifact]],
                     exec_properties: Dict[str, Any], custom: Dict[str, Any], store: str,
                     root: str, span: spans.Span, partial: str) -> Dict[str, Any]:
        """One span, alone, into `partial`; errors name the span."""
        manifest_name = None
        if custom.get(listing.LAYOUT_KEY) == listing.LAYOUT_MANIFEST:
            manifest_name = _input_pattern(exec_properties)
        folder, manifest = spans.span_layout(root, span, manifest_name)
        if not fileio.isdir(folder):
            raise spans.SpanError(f"span {span.name!r}: {folder} is gone (listed, then "
                                  "removed before ingestion)")
        prior = [listing.join(f, split_rule.INDEX_FILE) for f in _stored_before(store, span)]
        artifact = standard_artifacts.Examples()
        artifact.uri = partial
        span_properties = {
            **exec_properties,
            standard_component_specs.INPUT_BASE_KEY: folder,
            standard_component_specs.INPUT_CONFIG_KEY: _with_pattern(
                exec_properties, manifest or _input_pattern(exec_properties)),
            standard_component_specs.CUSTOM_CONFIG_KEY: {
                **custom, split_rule.PRIOR_INDEXES_KEY: [p for p in prior if fileio.exists(p)]},
            _ID_PREFIX_KEY: spans.image_id_prefix(span.name),
            _LAYOUT_OVERRIDE_KEY: listing.LAYOUT_MANIFEST if manifest
            else listing.LAYOUT_FOLDER,
        }
        try:
            return self._ingest(input_dict, artifact, span_properties)
        except (RuntimeError, ValueError) as e:
            raise RuntimeError(f"span {span.name!r} ({folder}) was not ingested: {e}") from e

    def _ingest(self, input_dict: Dict[str, List[types.Artifact]],
                examples: types.Artifact, exec_properties: Dict[str, Any]) -> Dict[str, Any]:
        """Ingests input_base into examples.uri; returns the checked ingestion report."""
        options = IngestionOptions.from_dict(parse_custom_config(exec_properties))
        report_path = listing.join(examples.uri, ingestion.REPORT_FILE)
        for stale in (report_path, listing.join(examples.uri, ingestion.REJECTED_CSV),
                      listing.join(examples.uri, split_rule.INDEX_FILE)):
            if fileio.exists(stale):  # a retried run's leftovers must not pass for its own
                fileio.remove(stale)
        output_dict = {standard_component_specs.EXAMPLES_KEY: [examples]}
        super().Do(input_dict, output_dict, {**exec_properties, _REPORT_DIR_KEY: examples.uri})

        report = ingestion_report.read_report(examples.uri)
        rejected = len(report["rejected"])
        logging.info("ImageExampleGen: %d files seen, %d ingested %s, %d rejected %s, "
                     "%d normalised; report: %s", report["files_seen"], report["ingested"],
                     report["ingested_by_label"], rejected, report["counts_by_reason"],
                     len(report["normalised"]), report_path)
        logging.info("ImageExampleGen: %d near-duplicate groups of 2 or more images, the "
                     "largest of %d", report[ingestion.NEAR_DUPLICATE_GROUPS],
                     report[ingestion.LARGEST_NEAR_DUPLICATE_GROUP])
        for warning in report[ingestion_report.WARNINGS]:
            logging.warning("ImageExampleGen: %s %s: %s", warning["file"], warning["reason"],
                            warning["detail"])
        ingestion_report.check_report(report, options.max_rejected_fraction, report_path,
                                      exec_properties[standard_component_specs.INPUT_BASE_KEY])
        return report


def _set_counts(examples: types.Artifact, report: Dict[str, Any], newly: int) -> None:
    examples.set_int_custom_property(ingestion.INGESTED_COUNT, report["ingested"])
    examples.set_int_custom_property(ingestion.REJECTED_COUNT, len(report["rejected"]))
    examples.set_int_custom_property(ingestion.FILES_SEEN, report["files_seen"])
    examples.set_int_custom_property(ingestion.NEWLY_INGESTED_COUNT, newly)
    for key in (ingestion.NEAR_DUPLICATE_GROUPS, ingestion.LARGEST_NEAR_DUPLICATE_GROUP):
        examples.set_int_custom_property(key, report[key])


def _merge_reports(reports: List[Dict[str, Any]], folders: List[str]) -> Dict[str, Any]:
    """The window's report: the stored spans' reports added up (ids name their span), and
    the near-duplicate groups counted over the spans' indexes (a group may span spans)."""
    merged: Dict[str, Any] = {"files_seen": 0, "ingested": 0, "rejected": [], "normalised": [],
                              "counts_by_reason": {}, "ingested_by_label": {},
                              ingestion_report.WARNINGS: []}
    for report in reports:
        for key in ("files_seen", "ingested"):
            merged[key] += report[key]
        for key in ("rejected", "normalised", ingestion_report.WARNINGS):
            merged[key] += report.get(key, [])
        for key in ("counts_by_reason", "ingested_by_label"):
            for name, count in report[key].items():
                merged[key][name] = merged[key].get(name, 0) + count
    for key in ("counts_by_reason", "ingested_by_label"):
        merged[key] = dict(sorted(merged[key].items()))
    sizes = collections.Counter(
        row.group for folder in folders
        for row in split_rule.read_index(listing.join(folder, split_rule.INDEX_FILE)))
    grouped = [n for n in sizes.values() if n > 1]
    merged[ingestion.NEAR_DUPLICATE_GROUPS] = len(grouped)
    merged[ingestion.LARGEST_NEAR_DUPLICATE_GROUP] = max(grouped, default=0)
    merged[ingestion_report.NEAR_DUPLICATE_DISTANCE] = (
        reports[-1].get(ingestion_report.NEAR_DUPLICATE_DISTANCE) if reports else None)
    return merged


def _input_pattern(exec_properties: Dict[str, Any]) -> str:
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], config)
    return config.splits[0].pattern


def _with_pattern(exec_properties: Dict[str, Any], pattern: str) -> str:
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], config)
    config.splits[0].pattern = pattern
    return proto_utils.proto_to_json(config)


def _stored_before(store: str, span: spans.Span) -> List[str]:
    """The stored folders of the spans before `span` (by span number): whose placements
    an ingestion of `span` must keep (SPLIT_RULE.md)."""
    folders = []
    if not fileio.isdir(store):
        return folders
    for name in fileio.listdir(store):
        parent = listing.join(store, name.rstrip("/"))
        for version in fileio.listdir(parent):
            folder = listing.join(parent, version.rstrip("/"))
            if fileio.exists(listing.join(folder, span_store.RECORD_FILE)):
                other = span_store.read_record(folder)["span"]
                if other["number"] < span.number:
                    folders.append(folder)
    return sorted(folders)
