"""File names ingestion cannot carry: a name that is not valid UTF-8 (e.g. Latin-1 bytes
from an old archive) cannot become an image id, a Beam string or a path TFX's driver
fingerprints. Such a file is rejected (`bad_file_name`) naming it with its undecodable
bytes escaped (`caf\\xe9.jpg`); the names TFX fingerprints before ingestion starts
(root/<label>/<entry>) are checked first, for an error naming them instead of a
UnicodeDecodeError inside TFX.
"""
import os
from typing import List

REASON_BAD_FILE_NAME = "bad_file_name"


def is_valid(name: str) -> bool:
    """False for a name os.listdir could only return with undecodable bytes escaped."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(name: str) -> str:
    """The name printable, its undecodable bytes as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def fingerprinted_bad_names(root: str) -> List[str]:
    """root/<label>/<entry> names (what TFX's driver fingerprints) that are not UTF-8."""
    bad = []
    if "://" in root or not os.path.isdir(root):
        return bad
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if not is_valid(label):
            bad.append(shown(label))
        if os.path.isdir(folder):
            bad.extend(shown(f"{label}/{name}") for name in sorted(os.listdir(folder))
                       if not is_valid(name))
    return bad


def check_fingerprinted_names(root: str) -> None:
    """Raises ValueError naming the files TFX could not fingerprint."""
    bad = fingerprinted_bad_names(root)
    if bad:
        raise ValueError(f"file names under {root} that are not valid UTF-8 (rename them): "
                         + ", ".join(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20
                                                  else ""))
