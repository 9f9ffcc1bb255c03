"""Spans: a data source that grows by folders, e.g. /photos/{SPAN} or /photos/{YYYY}-{MM}-{DD}.

The placeholder sits in the last path component of data.source (literal text around it is
allowed: `batch-{SPAN}`); every folder beside the spans must parse, so a typo is an error
that names it rather than a span silently left out. Each span folder is a class-per-folder
tree, or holds MANIFEST_FILE (path,label rows relative to the span folder).

A source without a placeholder is one span named PLAIN_SPAN: the whole folder (or the CSV
manifest's folder).

The listing is what the pipeline keys ingestion on: the spans of the window, oldest first,
each with a fingerprint of its files (relative path, size, modification time). It changes
exactly when a file of the window is added, removed, replaced or touched, or when the
window moves; it is canonical JSON, so equal listings are equal strings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
from typing import Any, Dict, Iterator, List, Optional, Tuple

from tfx.dsl.io import fileio

from components.artifacts.span_names import (  # noqa: F401  (this module's API)
    DATE_TOKENS, MANIFEST_FILE, PLAIN_SPAN, SPAN_TOKEN, SpanError, image_id_prefix,
    span_number, split_span_source)


@dataclasses.dataclass(frozen=True)
class Span:
    name: str  # the folder name, or PLAIN_SPAN
    number: int  # {SPAN}'s integer; a date's days since 1970-01-01 (TFX's span number)
    fingerprint: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def span_path(root: str, name: str) -> str:
    if name == PLAIN_SPAN:
        return root
    return posixpath.join(root, name) if "://" in root else os.path.join(root, name)


def find_spans(root: str, pattern: str) -> List[Span]:
    """The spans under root, oldest first; every folder there must parse."""
    if not pattern:
        return [Span(PLAIN_SPAN, 0)]
    if not fileio.isdir(root):
        raise SpanError(f"the folder of the spans {root} does not exist "
                        f"(data.source {root}/{pattern})")
    spans: Dict[int, Span] = {}
    for entry in sorted(fileio.listdir(root)):
        name = entry.rstrip("/")
        if name.startswith(".") or not fileio.isdir(span_path(root, name)):
            continue  # hidden folders (a copy in progress) and files beside the spans
        number = span_number(name, pattern)
        if number in spans:
            raise SpanError(f"spans {spans[number].name!r} and {name!r} under {root} have "
                            f"the same span number {number}")
        spans[number] = Span(name, number)
    if not spans:
        raise SpanError(f"the pattern {pattern!r} matches no folder under {root}")
    return [spans[n] for n in sorted(spans)]


def window(spans: List[Span], window_spans: int) -> List[Span]:
    """The latest window_spans spans (0: all)."""
    return spans[-window_spans:] if window_spans else list(spans)


def _walk(folder: str) -> Iterator[Tuple[str, str]]:
    """(relative path, path) of every file under folder; local symlinked folders are
    followed once (a link back to a parent is not walked again)."""
    if "://" in folder:
        prefix = folder.rstrip("/") + "/"
        for directory, _, files in fileio.walk(folder):
            for name in files:
                path = posixpath.join(directory, name)
                yield path[len(prefix):], path
        return
    seen = set()
    for directory, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            yield os.path.relpath(path, folder).replace(os.sep, "/"), path


def fingerprint(folder: str) -> Tuple[str, int]:
    """(sha256 of every file's relative path, size and mtime, number of files)."""
    digest = hashlib.sha256()
    count = 0
    for relative, path in sorted(_walk(folder)):
        try:
            stat = fileio.stat(path)
        except (OSError, fileio.NotFoundError):
            continue  # a dangling link: ingestion reports it as missing_file
        digest.update(f"{relative}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
        count += 1
    return digest.hexdigest()[:16], count


def list_window(root: str, pattern: str, window_spans: int) -> List[Span]:
    """The spans of the window with their fingerprints; SpanError for an empty span."""
    spans = []
    for span in window(find_spans(root, pattern), window_spans):
        path = span_path(root, span.name)
        digest, count = fingerprint(path)
        if count == 0:
            raise SpanError(f"span {span.name!r} ({path}) holds no files")
        spans.append(dataclasses.replace(span, fingerprint=digest))
    return spans


def to_listing(spans: List[Span]) -> str:
    """Canonical JSON of the window (what ImageExampleGen's cache key holds)."""
    return json.dumps({"spans": [s.to_dict() for s in spans]}, sort_keys=True,
                      separators=(",", ":"))


def from_listing(listing: str) -> List[Span]:
    try:
        return [Span(**s) for s in json.loads(listing)["spans"]]
    except (ValueError, KeyError, TypeError) as e:
        raise SpanError(f"span listing is not the listing step's JSON ({e}): "
                        f"{listing[:200]!r}") from None


def span_layout(root: str, span: Span, manifest: Optional[str]) -> Tuple[str, Optional[str]]:
    """(input folder, manifest file name or None) of a span."""
    path = span_path(root, span.name)
    if span.name == PLAIN_SPAN:
        return path, manifest
    has_manifest = fileio.exists(span_path(path, MANIFEST_FILE))
    return path, MANIFEST_FILE if has_manifest else None
