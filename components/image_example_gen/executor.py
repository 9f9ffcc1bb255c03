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
input (placement.py; the examples are built by tf_example.py). The split names and sizes
come from output_config (hash_buckets per split), and fingerprints.tsv (the index of this
run) is written beside the report.

Every outcome also feeds the ingestion report (report.py). Do() then sets the int
custom properties ingested_count / rejected_count / files_seen on the Examples artifact
and fails when nothing was ingested or when the rejected fraction exceeds
max_rejected_fraction; it also records the number of near-duplicate groups and the
largest one's size.

With a span listing (exec property `span_listing`, spans.py) each span of the window is
ingested alone, once, into the span store (span_store.py), its image ids prefixed with
the span's name, the index files of earlier spans passed as custom_config
`prior_fingerprint_indexes`; the Examples are then assembled from the stored spans, their
reports merged into the window's (span_ingestion.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, Iterator, List, Tuple

import apache_beam as beam
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx import types
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.artifacts import ingestion
from components.image_example_gen import image_checks as checks
from components.image_example_gen import reasons
from components.image_example_gen import labels, listing, placement, span_ingestion
from components.image_example_gen import report as ingestion_report
from components.image_example_gen import split_rule
from components.artifacts import spans
from components.image_example_gen import span_store
from components.image_example_gen.config import ingestion_config
from components.image_example_gen.image_checks import Candidate, Outcome
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
            yield o.rejected(reasons.REASON_CONFLICTING_DUPLICATE,
                             f"same content as {others}: labels {labels} disagree")
        return
    kept, *others = copies
    yield kept
    for o in others:
        yield o.rejected(reasons.REASON_DUPLICATE, f"same content as kept {kept.image_id}")


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
    options = ingestion_config(custom)
    settings = placement.split_settings(exec_properties, options)
    prior_uris = placement.prior_indexes(custom)
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
            | "GatherFingerprints" >> beam.CombineGlobally(placement.MembersCombineFn())
            | "PlanSplits" >> beam.Map(placement.plan_splits, prior_uris, settings))
    placed = deduplicated | "Place" >> beam.FlatMap(
        placement.place, beam.pvalue.AsSingleton(plan)).with_outputs(*split_rule.SPLITS,
                                                                     main=_OUTCOMES)
    outcomes = (placed[_OUTCOMES], rejected) | "AllOutcomes" >> beam.Flatten()

    report_dir = exec_properties.get(_REPORT_DIR_KEY)
    if report_dir:
        _ = (outcomes
             | "Report" >> beam.CombineGlobally(ingestion_report.ReportCombineFn())
             | "AddNearDuplicates" >> beam.Map(placement.with_near_duplicates,
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
        options = ingestion_config(parse_custom_config(exec_properties))
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
        report = span_ingestion.merge_reports(
            [ingestion_report.read_report(f) for f in folders], folders)
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
            manifest_name = span_ingestion.input_pattern(exec_properties)
        folder, manifest = spans.span_layout(root, span, manifest_name)
        if not fileio.isdir(folder):
            raise spans.SpanError(f"span {span.name!r}: {folder} is gone (listed, then "
                                  "removed before ingestion)")
        prior = [listing.join(f, split_rule.INDEX_FILE)
                 for f in span_ingestion.stored_before(store, span)]
        artifact = standard_artifacts.Examples()
        artifact.uri = partial
        span_properties = {
            **exec_properties,
            standard_component_specs.INPUT_BASE_KEY: folder,
            standard_component_specs.INPUT_CONFIG_KEY: span_ingestion.with_pattern(
                exec_properties, manifest or span_ingestion.input_pattern(exec_properties)),
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
        options = ingestion_config(parse_custom_config(exec_properties))
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
