"""What ingesting a window span by span needs besides the executor: the window's report
merged from the stored spans' reports, the input pattern of a span's ingestion, and the
stored spans whose placements it must keep."""
from __future__ import annotations

import collections
from typing import Any, Dict, List

from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.artifacts import ingestion, spans
from components.image_example_gen import listing, span_store, split_rule
from components.image_example_gen import report as ingestion_report


def merge_reports(reports: List[Dict[str, Any]], folders: List[str]) -> Dict[str, Any]:
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


def input_pattern(exec_properties: Dict[str, Any]) -> str:
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], config)
    return config.splits[0].pattern


def with_pattern(exec_properties: Dict[str, Any], pattern: str) -> str:
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], config)
    config.splits[0].pattern = pattern
    return proto_utils.proto_to_json(config)


def stored_before(store: str, span: spans.Span) -> List[str]:
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
