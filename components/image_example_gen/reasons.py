"""Why a file is not ingested (the REASON_* codes of the ingestion report), why an
accepted file's bytes are not the original ones, and the exception a check raises."""
from __future__ import annotations

# Reason codes of rejected files.
REASON_ZERO_BYTES = "zero_bytes"
REASON_NOT_AN_IMAGE = "not_an_image"
REASON_UNSUPPORTED_FORMAT = "unsupported_format"
REASON_UNSUPPORTED_EXTENSION = "unsupported_extension"
REASON_TRUNCATED = "truncated"
REASON_UNDECODABLE = "undecodable"
REASON_TOO_LARGE = "too_large"
REASON_TOO_SMALL = "too_small"
REASON_EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
REASON_DUPLICATE = "duplicate"
REASON_CONFLICTING_DUPLICATE = "conflicting_duplicate"
REASON_PATH_ESCAPES_ROOT = "path_escapes_root"
REASON_MISSING_FILE = "missing_file"
REASON_BAD_MANIFEST_ROW = "bad_manifest_row"
REASON_NO_LABEL = "no_label"  # a file directly in the root folder: no class folder
REASON_SYMLINK_LOOP = "symlink_loop"  # a symlinked folder pointing at one of its parents

# Why an accepted file's bytes are not the original ones.
NORMALISED_EXIF_ORIENTATION = "exif_orientation"


class Rejection(Exception):
    """Raised by a check to reject the file being checked."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
