"""The span store: each span ingested once, kept under <pipeline_root>/spans/<span>/<fp>/.

A span's folder holds what ingesting it alone wrote (Split-*/ TFRecords, the ingestion
report, rejected.csv, and any index file ingestion writes beside them) plus RECORD_FILE,
written last. It is built under a `.partial-` name and renamed into place, and a folder
without RECORD_FILE is never read: a crash or a failed ingestion leaves a partial folder
(with the failed ingestion's report) that the next ingestion of that span removes, never
a half-ingested span. When a span is ingested
again (its files changed), its other fingerprints are removed: Examples artifacts that
used them hold their own links or copies.

The Examples of a run are assembled from the window's stored spans: every TFRecord file
hard-linked (copied on object stores) as Split-<split>/<span>-<file>.
"""
from __future__ import annotations

import json
import os
import posixpath
import uuid
from typing import Any, Callable, Dict, List, Optional

from tfx.dsl.io import fileio

from components.artifacts.spans import Span

RECORD_FILE = "span.json"
_PARTIAL = ".partial-"
SPLIT_PREFIX = "Split-"


def _join(*parts: str) -> str:
    return posixpath.join(*parts) if "://" in parts[0] else os.path.join(*parts)


def span_dir(store: str, span: Span) -> str:
    return _join(store, span.name, span.fingerprint)


def stored(store: str, span: Span) -> Optional[str]:
    """The span's complete folder, or None when it has not been ingested (completely)."""
    folder = span_dir(store, span)
    return folder if fileio.exists(_join(folder, RECORD_FILE)) else None


def read_record(folder: str) -> Dict[str, Any]:
    with fileio.open(_join(folder, RECORD_FILE), "r") as f:
        return json.load(f)


def ingest(store: str, span: Span, write: Callable[[str], Dict[str, Any]]) -> str:
    """Runs write(folder) into a partial folder, records its result, renames it into
    place, and removes the span's partial leftovers and other fingerprints."""
    parent = _join(store, span.name)
    partial = _join(parent, f"{_PARTIAL}{span.fingerprint}-{uuid.uuid4().hex[:8]}")
    fileio.makedirs(partial)
    # On failure the partial folder stays (its ingestion report is what the error points
    # at); nothing reads it, and the span's next ingestion removes it.
    record = write(partial)
    with fileio.open(_join(partial, RECORD_FILE + ".tmp"), "w") as f:
        f.write(json.dumps({**record, "span": span.to_dict()}, indent=1, sort_keys=True))
    fileio.rename(_join(partial, RECORD_FILE + ".tmp"), _join(partial, RECORD_FILE))
    final = span_dir(store, span)
    if fileio.exists(final):  # incomplete (no record): a crashed run's
        fileio.rmtree(final)
    fileio.rename(partial, final)
    for name in fileio.listdir(parent):
        name = name.rstrip("/")
        if name != span.fingerprint:
            fileio.rmtree(_join(parent, name))
    return final


def split_files(folder: str) -> Dict[str, List[str]]:
    """Split name -> its TFRecord files in a stored span."""
    splits = {}
    for entry in sorted(fileio.listdir(folder)):
        entry = entry.rstrip("/")
        if entry.startswith(SPLIT_PREFIX):
            files = sorted(f.rstrip("/") for f in fileio.listdir(_join(folder, entry)))
            splits[entry[len(SPLIT_PREFIX):]] = [_join(folder, entry, f) for f in files]
    return splits


def assemble(spans: List[Span], folders: List[str], uri: str) -> Dict[str, int]:
    """Links (or copies) every stored span's split files into the Examples at uri;
    returns the number of files per split."""
    counts: Dict[str, int] = {}
    for span, folder in zip(spans, folders):
        for split, files in split_files(folder).items():
            target_dir = _join(uri, SPLIT_PREFIX + split)
            fileio.makedirs(target_dir)
            for path in files:
                target = _join(target_dir, f"{span.name}-{os.path.basename(path)}")
                if fileio.exists(target):  # a retried execution's
                    fileio.remove(target)
                if "://" in uri or "://" in path:
                    fileio.copy(path, target)
                else:
                    try:
                        os.link(path, target)
                    except OSError:  # another file system
                        fileio.copy(path, target)
                counts[split] = counts.get(split, 0) + 1
    return counts
