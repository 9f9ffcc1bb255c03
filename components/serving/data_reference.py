"""The data reference: the schema and training-data statistics a run is checked against,
kept in the serving root beside the models, so every runner finds it without ML
Metadata (the open-source KFP backend runs no TFX resolver).

    <serving_dir>/data_reference/v<version>/     recorded when <version> was pushed
    <serving_dir>/data_reference/accepted-<n>/   `imgpipe schema accept`, for a champion
      schema.pbtxt  statistics.pb  record.json   (record.json last: marks it complete)

The reference of a run is that of the champion (models.config's `stable` version, else
the newest): the last change accepted while it was champion, else its own.
"""
import datetime
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.dsl.io import fileio

from components.serving import serving_config, serving_root
from trainer import features

FOLDER = "data_reference"
SCHEMA_FILE = "schema.pbtxt"
STATISTICS_FILE = "statistics.pb"
RECORD_FILE = "record.json"
_ACCEPTED = re.compile(r"accepted-(\d+)$")


class Reference:
    def __init__(self, path: str, schema: schema_pb2.Schema,
                 statistics: statistics_pb2.DatasetFeatureStatisticsList,
                 record: Dict[str, Any]):
        self.path, self.schema, self.statistics, self.record = path, schema, statistics, record

    def describe(self) -> str:
        if self.record.get("kind") == "accepted":
            return (f"accepted on {self.record['recorded_at']} from run "
                    f"{self.record.get('run_id')} (champion v{self.record['version']})")
        return f"champion v{self.record['version']}'s training data"


def champion_version(serving_dir: str) -> Optional[int]:
    versions = [v for v, path in serving_root.serving_versions(serving_dir)
                if fileio.exists(os.path.join(path, serving_root.SAVED_MODEL_FILE))]
    stable = serving_config.stable_version(serving_dir)
    return stable if stable in versions else (versions[0] if versions else None)


def _root(serving_dir: str) -> str:
    return os.path.join(serving_dir, FOLDER)


def _read(path: str) -> Optional[Reference]:
    if not fileio.exists(os.path.join(path, RECORD_FILE)):
        return None  # never written, or a write that did not finish
    with fileio.open(os.path.join(path, RECORD_FILE), "r") as f:
        record = json.loads(f.read())
    schema = tfdv.load_schema_text(os.path.join(path, SCHEMA_FILE))
    statistics = tfdv.load_stats_binary(os.path.join(path, STATISTICS_FILE))
    return Reference(path, schema, statistics, record)


def _accepted(serving_dir: str) -> List[Tuple[int, str]]:
    root = _root(serving_dir)
    if not fileio.isdir(root):
        return []
    found = [(int(m.group(1)), os.path.join(root, name.rstrip("/")))
             for name in fileio.listdir(root) if (m := _ACCEPTED.match(name.rstrip("/")))]
    return sorted(found, reverse=True)


def current(serving_dir: str) -> Optional[Reference]:
    """The reference for the champion, None without a champion or its reference."""
    version = champion_version(serving_dir)
    if version is None:
        return None
    for _, path in _accepted(serving_dir):
        reference = _read(path)
        if reference is not None and reference.record.get("version") == version:
            return reference
    return _read(version_path(serving_dir, version))


def version_path(serving_dir: str, version: int) -> str:
    return os.path.join(_root(serving_dir), f"v{version}")


def reference_schema(schema: schema_pb2.Schema,
                     statistics: statistics_pb2.DatasetFeatureStatisticsList,
                     size_range_factor: float) -> schema_pb2.Schema:
    """The inferred schema made a reference: identity features take any value, and image
    and file sizes get a range around the data's (tfdv flags values outside it)."""
    fixed = schema_pb2.Schema()
    fixed.CopyFrom(schema)
    for name in features.OPEN_VALUED_FEATURES:
        feature = _feature(fixed, name)
        if feature is not None and feature.HasField("domain"):
            feature.ClearField("domain")
    _label_values(fixed, statistics)
    ranges = _numeric_ranges(statistics)
    for name in features.SIZE_FEATURES:
        feature = _feature(fixed, name)
        if feature is not None and name in ranges:
            low, high = ranges[name]
            feature.int_domain.min = int(low / size_range_factor)
            feature.int_domain.max = int(high * size_range_factor) + 1
    return fixed


def _label_values(schema: schema_pb2.Schema,
                  statistics: statistics_pb2.DatasetFeatureStatisticsList) -> None:
    """The label as a set of names, whatever they look like: inference gives labels
    such as "0", "1" an int domain, which a new class would satisfy."""
    feature = _feature(schema, features.LABEL_KEY)
    stats = next((f.string_stats for d in statistics.datasets for f in d.features
                  if f.path.step[-1:] == [features.LABEL_KEY]), None)
    if feature is None or stats is None:
        return
    values = sorted({v.value for v in stats.top_values} |
                    {b.label for b in stats.rank_histogram.buckets})
    if len(values) != stats.unique:  # not every value is in the statistics: keep as is
        return
    feature.ClearField("domain_info")
    feature.string_domain.value.extend(values)


def _feature(schema: schema_pb2.Schema, name: str) -> Optional[schema_pb2.Feature]:
    return next((f for f in schema.feature if f.name == name), None)


def _numeric_ranges(statistics: statistics_pb2.DatasetFeatureStatisticsList
                    ) -> Dict[str, Tuple[float, float]]:
    ranges = {}
    for dataset in statistics.datasets:
        for feature in dataset.features:
            if feature.HasField("num_stats"):
                ranges[feature.path.step[-1]] = (feature.num_stats.min, feature.num_stats.max)
    return ranges


def write(path: str, schema: schema_pb2.Schema,
          statistics: statistics_pb2.DatasetFeatureStatisticsList,
          record: Dict[str, Any]) -> None:
    """Writes a reference folder; record.json last, so a half-written one is ignored and
    written again."""
    fileio.makedirs(path)
    tfdv.write_schema_text(schema, os.path.join(path, SCHEMA_FILE))
    with fileio.open(os.path.join(path, STATISTICS_FILE), "wb") as f:
        f.write(statistics.SerializeToString())
    record = {**record, "recorded_at": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds")}
    with fileio.open(os.path.join(path, RECORD_FILE), "w") as f:
        f.write(json.dumps(record, indent=1, sort_keys=True))


def record_version(serving_dir: str, version: int, schema: schema_pb2.Schema,
                   statistics: statistics_pb2.DatasetFeatureStatisticsList, run_id: str,
                   size_range_factor: float) -> Optional[str]:
    """The data a pushed version was trained on, once; returns the folder when written."""
    path = version_path(serving_dir, version)
    if fileio.exists(os.path.join(path, RECORD_FILE)):
        return None
    write(path, reference_schema(schema, statistics, size_range_factor), statistics,
          {"kind": "version", "version": version, "run_id": run_id})
    return path


def accept(serving_dir: str, statistics: statistics_pb2.DatasetFeatureStatisticsList,
           run_id: str, findings: List[str], size_range_factor: float,
           who: str) -> Tuple[str, Reference]:
    """Makes a run's data the champion's reference: the schema relaxed to admit it
    (tfdv.update_schema, sizes widened to its range) and its statistics for drift."""
    version = champion_version(serving_dir)
    before = current(serving_dir)
    if version is None or before is None:
        raise LookupError(f"no champion with a data reference in {serving_dir}: the next "
                          "pushed model records one, nothing to accept")
    schema = tfdv.update_schema(before.schema, statistics)
    ranges = _numeric_ranges(statistics)
    for name in features.SIZE_FEATURES:
        feature = _feature(schema, name)
        if feature is not None and feature.HasField("int_domain") and name in ranges:
            low, high = ranges[name]
            feature.int_domain.min = min(feature.int_domain.min, int(low / size_range_factor))
            feature.int_domain.max = max(feature.int_domain.max,
                                         int(high * size_range_factor) + 1)
    number = (_accepted(serving_dir) or [(0, "")])[0][0] + 1
    path = os.path.join(_root(serving_dir), f"accepted-{number}")
    write(path, schema, statistics, {
        "kind": "accepted", "version": version, "run_id": run_id, "accepted_by": who,
        "findings": findings, "replaces": os.path.basename(before.path)})
    return path, _read(path)
