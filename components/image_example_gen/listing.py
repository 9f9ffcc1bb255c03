"""ImageExampleGen's inputs: the files to check (Candidates) and those rejected while
listing them (Outcomes), from a folder tree or a CSV manifest.

Layouts (custom_config "layout"):
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
"""
from __future__ import annotations

import collections
import csv
import io
import os
import posixpath
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from tfx.dsl.io import fileio

from components.image_example_gen import file_names
from components.image_example_gen import reasons
from components.image_example_gen.image_checks import Candidate, Outcome
from trainer.files import is_remote

LAYOUT_FOLDER = "folder"
LAYOUT_MANIFEST = "manifest"
# The custom_config key naming the layout (besides config.INGESTION_FIELDS).
LAYOUT_KEY = "layout"

Listed = Union[Candidate, Outcome]  # a file to check, or one rejected while listing


def list_inputs(input_base: str, pattern: str, layout: str) -> List[Listed]:
    if layout == LAYOUT_FOLDER:
        return list(list_folder(input_base))
    if layout == LAYOUT_MANIFEST:
        return list(list_manifest(join(input_base, pattern)))
    raise ValueError(f"custom_config layout must be '{LAYOUT_FOLDER}' or "
                     f"'{LAYOUT_MANIFEST}', got {layout!r}")


def join(base: str, relative: str) -> str:
    return posixpath.join(base, relative) if is_remote(base) else os.path.join(base, relative)


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/\\") + os.sep)


def _candidate_from_parts(parts: Sequence[str], path: str) -> Listed:
    """A file at root/<parts...>: label = first folder, source_dir = second."""
    image_id = "/".join(parts)
    if len(parts) < 2:
        return Outcome(image_id, reason=reasons.REASON_NO_LABEL,
                       detail="the file is directly in the root; expected root/<label>/<file>")
    return Candidate(image_id, parts[0], parts[1] if len(parts) > 2 else "", path)


def list_folder(root: str) -> Iterator[Listed]:
    if not fileio.isdir(root):
        raise ValueError(f"ImageExampleGen input folder does not exist: {root}")
    if is_remote(root):
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
        if not file_names.is_valid(image_id):
            yield Outcome(file_names.shown(image_id), reason=file_names.REASON_BAD_FILE_NAME,
                          detail="the name is not valid UTF-8" + (
                              "; the folder's files were not read" if entry.is_dir() else ""))
        elif not _is_within(target, real_root):
            yield Outcome(image_id, reason=reasons.REASON_PATH_ESCAPES_ROOT,
                          detail=f"symlink to {target}, outside the input root")
        elif os.path.isdir(target):
            if target in ancestors:
                yield Outcome(image_id, reason=reasons.REASON_SYMLINK_LOOP,
                              detail=f"symlink to {target}, a parent folder")
            else:
                yield from _list_local_folder(real_root, target, entry_parts,
                                              ancestors | {target})
        elif not os.path.exists(target):
            yield Outcome(image_id, reason=reasons.REASON_MISSING_FILE,
                          detail=f"dangling symlink to {target}")
        elif not os.path.isfile(target):  # reading a pipe or device could block forever
            yield Outcome(image_id, reason=reasons.REASON_NOT_AN_IMAGE,
                          detail="not a regular file")
        else:
            yield _candidate_from_parts(entry_parts, target)


def list_manifest(manifest_path: str) -> Iterator[Listed]:
    name = posixpath.basename(manifest_path)
    rows = _read_manifest(manifest_path)
    base = posixpath.dirname(manifest_path) if is_remote(manifest_path) \
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
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"manifest {manifest_path}, line {line}: byte {data[e.start]:#04x} "
                         "is not UTF-8; save the manifest as UTF-8") from None
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
    if is_remote(path) or os.path.isabs(path):
        prefix = base.rstrip("/") + "/"
        path = path if is_remote(path) else os.path.normpath(path)
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
    escapes = Outcome(path, label, reason=reasons.REASON_PATH_ESCAPES_ROOT,
                      detail=f"line {line}: {path} resolves outside the manifest's folder")
    if relative is None:
        return escapes
    full = join(base, relative)
    if not is_remote(full):
        full = os.path.realpath(full)  # read the checked target, not the link
        if not _is_within(full, os.path.realpath(base)):
            return escapes
    if not fileio.exists(full):
        return Outcome(relative, label, reason=reasons.REASON_MISSING_FILE,
                       detail=f"line {line}: {path} does not exist")
    if fileio.isdir(full) or not (is_remote(full) or os.path.isfile(full)):
        return _bad_row(relative, f"line {line}: {path} is not a regular file")
    first_folder = relative.split("/")[0] if "/" in relative else ""
    return Candidate(relative, label, first_folder, full)


def _bad_row(where: str, detail: str) -> Outcome:
    return Outcome(where, reason=reasons.REASON_BAD_MANIFEST_ROW, detail=detail)


def _dedupe_manifest_rows(image_id: str, rows: List[Candidate]) -> Iterator[Listed]:
    """One id must be one example: repeats are rejected, all rows if labels disagree."""
    labels = sorted({r.label for r in rows})
    if len(labels) > 1:
        for r in rows:
            yield Outcome(image_id, r.label, reason=reasons.REASON_BAD_MANIFEST_ROW,
                          detail=f"listed {len(rows)} times with different labels {labels}")
        return
    yield rows[0]
    for r in rows[1:]:
        yield Outcome(image_id, r.label, reason=reasons.REASON_BAD_MANIFEST_ROW,
                      detail="the path is listed more than once; the first row is used")
