"""ImageExampleGen executor: image files -> tf.Examples holding the encoded bytes.

Inputs (custom_config "layout"):
  folder    root/<label>/<file>, or deeper root/<label>/<sub>/.../<file>: the label is
            the first folder, source_dir the second ("" when the file sits directly in
            the class folder). The whole tree is walked; a file directly in the root has
            no label and is rejected (`no_label`). Symlinks are followed only when their
            resolved target is inside the root (`path_escapes_root` otherwise; dangling:
            `missing_file`; a folder linking to one of its parents: `symlink_loop`).
            Pipes, sockets and devices are `not_an_image` without being read.
            The split pattern ("*/*") is only what TFX's driver fingerprints for caching:
            it sees the class folders' entries, so a file edited in place two levels
            down does not invalidate the cache.
  manifest  a CSV file with header `path,label` (extra columns ignored), paths relative
            to the manifest's folder (input_base); the split pattern is its file name.
            Rows become `bad_manifest_row` (empty path or label, wrong column count, not
            a regular file, a path listed twice: repeats are rejected, and if the labels differ
            every row for that path is), `path_escapes_root` (absolute or `..` paths
            outside the manifest's folder, symlinks resolving outside it) or
            `missing_file`. source_dir is the first folder of the path ("" for files
            beside the manifest). Only the manifest is fingerprinted for caching.

Each file is read once and checked by image_checks.check_candidate. Accepted files are
then grouped by the sha256 of their content: copies under one label keep the smallest
id (`duplicate` for the others, naming the kept id); copies under different labels are
all rejected (`conflicting_duplicate`). Splits hash IMAGE_ID_KEY (TFX's sha256
partitioning), so an image's split depends on its id only.

Beside the examples, the artifact folder receives ingestion_report.json and rejected.csv
(written to a temporary name and renamed, so each is complete or absent). Do() then sets
the int custom properties ingested_count / rejected_count / files_seen on the Examples
artifact and fails when nothing was ingested or when the rejected fraction exceeds
max_rejected_fraction.
"""
from __future__ import annotations

import collections
import csv
import io
import json
import os
import posixpath
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

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
from components.image_example_gen.image_checks import Candidate, IngestionOptions, Outcome
from trainer import features

REPORT_FILE = "ingestion_report.json"
REJECTED_CSV = "rejected.csv"
LAYOUT_FOLDER = "folder"
LAYOUT_MANIFEST = "manifest"
# custom_config keys besides the IngestionOptions fields.
LAYOUT_KEY = "layout"
# Private exec_properties key: where the PTransform writes the report (the artifact URI).
_REPORT_DIR_KEY = "_image_example_gen_report_dir"

Listed = Union[Candidate, Outcome]  # a file to check, or one rejected while listing


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


# -- listing the inputs ---------------------------------------------------------------------
def list_inputs(input_base: str, pattern: str, layout: str) -> List[Listed]:
    if layout == LAYOUT_FOLDER:
        return list(list_folder(input_base))
    if layout == LAYOUT_MANIFEST:
        return list(list_manifest(_join(input_base, pattern)))
    raise ValueError(f"custom_config layout must be '{LAYOUT_FOLDER}' or "
                     f"'{LAYOUT_MANIFEST}', got {layout!r}")


def _is_remote(path: str) -> bool:
    return "://" in path


def _join(base: str, relative: str) -> str:
    return posixpath.join(base, relative) if _is_remote(base) else os.path.join(base, relative)


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/\\") + os.sep)


def _candidate_from_parts(parts: Sequence[str], path: str) -> Listed:
    """A file at root/<parts...>: label = first folder, source_dir = second."""
    image_id = "/".join(parts)
    if len(parts) < 2:
        return Outcome(image_id, reason=checks.REASON_NO_LABEL,
                       detail="the file is directly in the root; expected root/<label>/<file>")
    return Candidate(image_id, parts[0], parts[1] if len(parts) > 2 else "", path)


def list_folder(root: str) -> Iterator[Listed]:
    if not fileio.isdir(root):
        raise ValueError(f"ImageExampleGen input folder does not exist: {root}")
    if _is_remote(root):
        yield from _list_remote_folder(root)
    else:
        real_root = os.path.realpath(root)
        yield from _list_local_folder(real_root, real_root, (), frozenset([real_root]))


def _list_remote_folder(root: str) -> Iterator[Listed]:
    """Object stores have no symlinks: every object under the root is a file."""
    prefix = root.rstrip("/") + "/"
    for directory, _, files in fileio.walk(root):
        for name in sorted(files):
            path = posixpath.join(directory, name)
            yield _candidate_from_parts(path[len(prefix):].split("/"), path)


def _list_local_folder(real_root: str, directory: str, parts: Tuple[str, ...],
                       ancestors: frozenset) -> Iterator[Listed]:
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        entry_parts = parts + (entry.name,)
        target = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
        image_id = "/".join(entry_parts)
        if not _is_within(target, real_root):
            yield Outcome(image_id, reason=checks.REASON_PATH_ESCAPES_ROOT,
                          detail=f"symlink to {target}, outside the input root")
        elif os.path.isdir(target):
            if target in ancestors:
                yield Outcome(image_id, reason=checks.REASON_SYMLINK_LOOP,
                              detail=f"symlink to {target}, a parent folder")
            else:
                yield from _list_local_folder(real_root, target, entry_parts,
                                              ancestors | {target})
        elif not os.path.exists(target):
            yield Outcome(image_id, reason=checks.REASON_MISSING_FILE,
                          detail=f"dangling symlink to {target}")
        elif not os.path.isfile(target):  # reading a pipe or device could block forever
            yield Outcome(image_id, reason=checks.REASON_NOT_AN_IMAGE,
                          detail="not a regular file")
        else:
            yield _candidate_from_parts(entry_parts, target)


def list_manifest(manifest_path: str) -> Iterator[Listed]:
    name = posixpath.basename(manifest_path)
    rows = _read_manifest(manifest_path)
    base = posixpath.dirname(manifest_path) if _is_remote(manifest_path) \
        else os.path.dirname(os.path.abspath(manifest_path))
    resolved = [_resolve_manifest_row(base, name, line, row) for line, row in rows]
    by_id: Dict[str, List[Candidate]] = collections.defaultdict(list)
    for item in resolved:
        if isinstance(item, Candidate):
            by_id[item.image_id].append(item)
        else:
            yield item
    for image_id, rows_for_id in by_id.items():
        yield from _dedupe_manifest_rows(image_id, rows_for_id)


def _read_manifest(manifest_path: str) -> List[Tuple[int, Dict[str, str]]]:
    """[(line number, {column: value})], or raises ValueError naming the problem."""
    if not fileio.exists(manifest_path):
        raise ValueError(f"ImageExampleGen manifest not found: {manifest_path}")
    with fileio.open(manifest_path, "rb") as f:
        text = f.read().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "path" not in header or "label" not in header:
        raise ValueError(f"manifest {manifest_path}: the header must name the columns "
                         f"'path,label', got {','.join(header) or 'an empty file'}")
    rows = []
    for row in reader:
        if row:  # csv yields [] for an empty line
            values = dict(zip(header, (c.strip() for c in row))) \
                if len(row) == len(header) else {}
            rows.append((reader.line_num, values))
    return rows


def _relative_to(base: str, path: str) -> Optional[str]:
    """`path` (relative to base, or absolute) as a normalised posix path under base;
    None when it leaves base lexically (`..`, or absolute elsewhere)."""
    if _is_remote(path) or os.path.isabs(path):
        prefix = base.rstrip("/") + "/"
        path = path if _is_remote(path) else os.path.normpath(path)
        if not path.startswith(prefix):
            return None
        path = path[len(prefix):]
    relative = posixpath.normpath(path)
    return None if relative == ".." or relative.startswith("../") else relative


def _resolve_manifest_row(base: str, name: str, line: int, row: Dict[str, str]) -> Listed:
    path, label = row.get("path", ""), row.get("label", "")
    if not row:
        return _bad_row(f"{name}:{line}", f"line {line} does not have the header's "
                                          "number of columns")
    if not path or not label:
        return _bad_row(path or f"{name}:{line}",
                        f"line {line} has an empty {'path' if not path else 'label'}")
    relative = _relative_to(base, path)
    escapes = Outcome(path, label, reason=checks.REASON_PATH_ESCAPES_ROOT,
                      detail=f"line {line}: {path} resolves outside the manifest's folder")
    if relative is None:
        return escapes
    full = _join(base, relative)
    if not _is_remote(full):
        full = os.path.realpath(full)  # read the checked target, not the link
        if not _is_within(full, os.path.realpath(base)):
            return escapes
    if not fileio.exists(full):
        return Outcome(relative, label, reason=checks.REASON_MISSING_FILE,
                       detail=f"line {line}: {path} does not exist")
    if fileio.isdir(full) or not (_is_remote(full) or os.path.isfile(full)):
        return _bad_row(relative, f"line {line}: {path} is not a regular file")
    first_folder = relative.split("/")[0] if "/" in relative else ""
    return Candidate(relative, label, first_folder, full)


def _bad_row(where: str, detail: str) -> Outcome:
    return Outcome(where, reason=checks.REASON_BAD_MANIFEST_ROW, detail=detail)


def _dedupe_manifest_rows(image_id: str, rows: List[Candidate]) -> Iterator[Listed]:
    """One id must be one example: repeats are rejected, all rows if labels disagree."""
    labels = sorted({r.label for r in rows})
    if len(labels) > 1:
        for r in rows:
            yield Outcome(image_id, r.label, reason=checks.REASON_BAD_MANIFEST_ROW,
                          detail=f"listed {len(rows)} times with different labels {labels}")
        return
    yield rows[0]
    for r in rows[1:]:
        yield Outcome(image_id, r.label, reason=checks.REASON_BAD_MANIFEST_ROW,
                      detail="the path is listed more than once; the first row is used")


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
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


# -- report ---------------------------------------------------------------------------------
class ReportCombineFn(beam.CombineFn):
    """Outcomes -> the ingestion report dict; keeps only rejections, not images."""

    def create_accumulator(self) -> Dict[str, Any]:
        return {"files_seen": 0, "ingested": 0, "rejected": [], "normalised": [],
                "counts_by_reason": collections.Counter(),
                "ingested_by_label": collections.Counter()}

    def add_input(self, acc: Dict[str, Any], outcome: Outcome) -> Dict[str, Any]:
        acc["files_seen"] += 1
        if outcome.accepted:
            acc["ingested"] += 1
            acc["ingested_by_label"][outcome.label] += 1
            if outcome.image.normalised:
                acc["normalised"].append({"file": outcome.image_id,
                                          "reason": checks.NORMALISED_EXIF_ORIENTATION,
                                          "detail": outcome.image.normalised})
        else:
            acc["rejected"].append({"file": outcome.image_id, "reason": outcome.reason,
                                    "detail": outcome.detail})
            acc["counts_by_reason"][outcome.reason] += 1
        return acc

    def merge_accumulators(self, accumulators: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for key, value in acc.items():
                merged[key] += value  # ints add, lists extend, Counters sum
        return merged

    def extract_output(self, acc: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "files_seen": acc["files_seen"],
            "ingested": acc["ingested"],
            "rejected": sorted(acc["rejected"], key=lambda r: (r["file"], r["reason"])),
            "normalised": sorted(acc["normalised"], key=lambda r: r["file"]),
            "counts_by_reason": dict(sorted(acc["counts_by_reason"].items())),
            "ingested_by_label": dict(sorted(acc["ingested_by_label"].items())),
        }


def _write_atomically(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with fileio.open(tmp, "w") as f:
        f.write(text)
    fileio.rename(tmp, path, overwrite=True)


def write_report(report: Dict[str, Any], directory: str) -> None:
    """ingestion_report.json and rejected.csv (file,reason,detail) into `directory`."""
    fileio.makedirs(directory)  # this branch may run before the split writers create it
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["file", "reason", "detail"])
    writer.writerows([r["file"], r["reason"], r["detail"]] for r in report["rejected"])
    _write_atomically(_join(directory, REJECTED_CSV), rows.getvalue())
    _write_atomically(_join(directory, REPORT_FILE), json.dumps(report, indent=2) + "\n")


def read_report(directory: str) -> Dict[str, Any]:
    with fileio.open(_join(directory, REPORT_FILE), "r") as f:
        return json.load(f)


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
    listed = list_inputs(input_base, split_pattern, custom.get(LAYOUT_KEY, LAYOUT_FOLDER))
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
             | "Report" >> beam.CombineGlobally(ReportCombineFn())
             | "WriteReport" >> beam.Map(write_report, report_dir))
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
        report_path = _join(examples.uri, REPORT_FILE)
        for stale in (report_path, _join(examples.uri, REJECTED_CSV)):
            if fileio.exists(stale):  # a retried run's leftovers must not pass for its own
                fileio.remove(stale)
        super().Do(input_dict, output_dict, {**exec_properties, _REPORT_DIR_KEY: examples.uri})

        report = read_report(examples.uri)
        rejected = len(report["rejected"])
        logging.info("ImageExampleGen: %d files seen, %d ingested %s, %d rejected %s, "
                     "%d normalised; report: %s", report["files_seen"], report["ingested"],
                     report["ingested_by_label"], rejected, report["counts_by_reason"],
                     len(report["normalised"]), report_path)
        examples.set_int_custom_property("ingested_count", report["ingested"])
        examples.set_int_custom_property("rejected_count", rejected)
        examples.set_int_custom_property("files_seen", report["files_seen"])
        check_report(report, options.max_rejected_fraction, report_path,
                     exec_properties[standard_component_specs.INPUT_BASE_KEY])


def check_report(report: Dict[str, Any], max_rejected_fraction: float, report_path: str,
                 input_base: str) -> None:
    """Raises RuntimeError when the ingestion result is not usable for training."""
    seen, ingested, rejected = report["files_seen"], report["ingested"], len(report["rejected"])
    if ingested + rejected != seen:
        raise RuntimeError(f"ImageExampleGen lost track of files: {ingested} ingested + "
                           f"{rejected} rejected != {seen} seen; see {report_path}")
    top = ", ".join(f"{reason}={n}" for reason, n in sorted(
        report["counts_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    if ingested == 0:
        raise RuntimeError(f"ImageExampleGen ingested no image from {input_base}: "
                           f"{seen} files seen, all rejected ({top or 'no files found'}); "
                           f"see {report_path}")
    fraction = rejected / seen
    if fraction > max_rejected_fraction:
        raise RuntimeError(
            f"ImageExampleGen rejected {rejected} of {seen} files: rejected fraction "
            f"{fraction:.3f} is over data.max_rejected_fraction={max_rejected_fraction}. "
            f"Top reasons: {top}. Every rejection is listed in {report_path}")
