"""A 64-bit perceptual fingerprint of an image (a DCT hash, "pHash").

The image is reduced to a 32x32 grayscale thumbnail (box filter: an average over each
cell, so resizing and re-encoding barely change it), transformed with a 2-D DCT, and the
8x8 lowest frequencies are compared with their median: one bit per coefficient. Low
frequencies describe the layout of light and dark, which survives JPEG re-encoding, a
resize, a few percent of crop and a brightness change (a scale of all intensities scales
every coefficient and leaves the comparison with the median unchanged). Near-duplicates
are fingerprints within a small Hamming distance (near_duplicates.py).

An image smaller than the thumbnail on either side (e.g. 8x8 scans of digits) holds too
little detail: distinct pictures fall within a few bits of each other. Such an image's
fingerprint is the first 64 bits of the sha256 of its encoded bytes instead, so only its
exact copies match.

Fingerprints are unsigned 64-bit integers in Python; `to_int64` gives the signed form a
tf.Example int64 feature stores, `to_hex` the 16 hex digits of fingerprints.tsv.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
from PIL import Image

BITS = 64
_THUMB = 32  # thumbnail side
_LOW = 8  # low-frequency block side: _LOW * _LOW == BITS
# Modes holding more than 8 bits per sample: converted to float, not clipped to 8 bits.
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@functools.lru_cache(maxsize=None)
def _dct_matrix() -> np.ndarray:
    """Rows of the DCT-II basis (unnormalised: only comparisons between coefficients
    of one image matter)."""
    n = np.arange(_THUMB)
    return np.cos(np.pi * (2 * n[None, :] + 1) * n[:_LOW, None] / (2 * _THUMB))


def fingerprint(image: Image.Image, encoded: bytes) -> int:
    """The 64-bit DCT hash of a decoded image (any Pillow mode), as an unsigned int;
    for an image under the thumbnail's size, 64 bits of the sha256 of `encoded`."""
    if min(image.size) < _THUMB:
        return int.from_bytes(hashlib.sha256(encoded).digest()[:BITS // 8], "big")
    gray = image.convert("F" if image.mode in _WIDE_MODES else "L")
    thumb = np.asarray(gray.resize((_THUMB, _THUMB), Image.BOX), dtype=np.float64)
    dct = _dct_matrix()
    low = (dct @ thumb @ dct.T).ravel()
    bits = low > np.median(low)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def to_int64(value: int) -> int:
    """Unsigned 64-bit -> the signed value with the same bits (tf.Example int64)."""
    return value - (1 << BITS) if value >= 1 << (BITS - 1) else value


def from_int64(value: int) -> int:
    return value & ((1 << BITS) - 1)


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(text: str) -> int:
    value = int(text, 16)
    if len(text) != BITS // 4 or value >> BITS:
        raise ValueError(f"a fingerprint is {BITS // 4} hex digits, got {text!r}")
    return value


def distance(a: int, b: int) -> int:
    """Hamming distance between two fingerprints."""
    return bin(a ^ b).count("1")
