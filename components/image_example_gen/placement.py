"""The split rule's glue for the Beam transform: its settings from output_config, the prior
fingerprint indexes, the members gathered in one place, the plan applied to every image,
and the near-duplicate figures added to the ingestion report (the rule is split_rule.py).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List

import apache_beam as beam
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.artifacts import ingestion
from components.image_example_gen import report as ingestion_report
from components.image_example_gen import split_rule
from components.image_example_gen.config import DataConfig
from components.image_example_gen.image_checks import Outcome
from components.image_example_gen.tf_example import to_example
from trainer import features


def split_settings(exec_properties: Dict[str, Any],
                   options: DataConfig) -> split_rule.Settings:
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
