"""Span names: the {SPAN} / {YYYY}-{MM}-{DD} placeholder of data.source and what a span
folder's name means (no file access here: the CLI and the compiler use it too)."""
from __future__ import annotations

import datetime
import os
import posixpath
import re
from typing import Tuple

SPAN_TOKEN = "{SPAN}"
DATE_TOKENS = ("{YYYY}", "{MM}", "{DD}")
MANIFEST_FILE = "manifest.csv"  # a span folder holding this file is read as a manifest
PLAIN_SPAN = "all"  # the one span of a source without placeholder
_EPOCH = datetime.date(1970, 1, 1)


class SpanError(ValueError):
    """Bad span input: the message names the span (or the pattern)."""


def split_span_source(source: str) -> Tuple[str, str]:
    """data.source -> (the folder holding the spans, the last component's pattern);
    (source, "") when the source has no placeholder."""
    parent, last = posixpath.split(source.rstrip("/")) if "://" in source \
        else os.path.split(source.rstrip(os.sep))
    if "{" not in source:
        return source, ""
    if "{" in parent:
        raise SpanError(f"data.source {source}: the span placeholder must be in the last "
                        "path component, e.g. /photos/{SPAN} or /photos/{YYYY}-{MM}-{DD}")
    _pattern_regex(last)  # validates
    return parent, last


def _pattern_regex(pattern: str) -> re.Pattern:
    has_span = SPAN_TOKEN in pattern
    has_date = [t in pattern for t in DATE_TOKENS]
    if has_span == any(has_date) or (any(has_date) and not all(has_date)):
        raise SpanError(f"span pattern {pattern!r}: use either {SPAN_TOKEN} or all of "
                        f"{''.join(DATE_TOKENS)} (e.g. {{YYYY}}-{{MM}}-{{DD}})")
    if "{" in re.sub(r"\{(SPAN|YYYY|MM|DD)\}", "", pattern):
        raise SpanError(f"span pattern {pattern!r}: unknown placeholder (use {SPAN_TOKEN} "
                        f"or {''.join(DATE_TOKENS)})")
    regex = re.escape(pattern)
    for token, group in ((SPAN_TOKEN, r"(?P<span>\d+)"), ("{YYYY}", r"(?P<y>\d{4})"),
                         ("{MM}", r"(?P<m>\d{2})"), ("{DD}", r"(?P<d>\d{2})")):
        regex = regex.replace(re.escape(token), group)
    return re.compile(regex)


def span_number(name: str, pattern: str) -> int:
    """The span number of folder `name`, or SpanError naming it."""
    match = _pattern_regex(pattern).fullmatch(name)
    if match is None:
        raise SpanError(f"span {name!r} does not parse with the pattern {pattern!r}")
    if "span" in match.groupdict():
        return int(match["span"])
    try:
        date = datetime.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError as e:
        raise SpanError(f"span {name!r} is not a date ({e})") from None
    return (date - _EPOCH).days


def image_id_prefix(span: str) -> str:
    """Image ids of a named span start with its name: unique across spans, and stable,
    so an image's split (a hash of its id) is the same in every run that sees it. The
    plain source keeps the ids it always had (relative paths)."""
    return "" if span == PLAIN_SPAN else span + "/"
