"""An image's format from its magic bytes and its size from its header, read by our own
parser before any decoding (so a size limit never depends on a decoder's own guard)."""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from components.image_example_gen.reasons import (REASON_TRUNCATED, REASON_UNDECODABLE,
                                                  Rejection)

# Formats tf.io.decode_image understands, by magic bytes.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
# JPEG start-of-frame markers (SOF0-SOF15 except DHT, JPG and DAC) carry the size.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def sniff_format(data: bytes) -> Optional[str]:
    """'JPEG' / 'PNG' / 'GIF' / 'BMP' from the magic bytes, None for anything else."""
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def header_size(data: bytes, fmt: str) -> Tuple[int, int]:
    """(width, height) read from the header of `fmt` data without decoding pixels."""
    size = _HEADER_PARSERS[fmt](data)
    if size is None:
        raise Rejection(REASON_TRUNCATED, f"the {fmt} header is incomplete")
    return size


def _u(data: bytes, start: int, length: int, byteorder: str, signed: bool = False) -> int:
    return int.from_bytes(data[start:start + length], byteorder, signed=signed)


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise Rejection(REASON_UNDECODABLE, f"JPEG marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
        elif marker in (0xD9, 0xDA):
            raise Rejection(REASON_UNDECODABLE, "JPEG has no frame header before its data")
        elif marker in _JPEG_SOF_MARKERS:
            return (_u(data, i + 7, 2, "big"), _u(data, i + 5, 2, "big")) \
                if i + 9 <= len(data) else None
        else:
            i += 2 + _u(data, i + 2, 2, "big")
    return None


def _png_size(data: bytes) -> Optional[Tuple[int, int]]:
    if len(data) < 24:
        return None
    if data[12:16] != b"IHDR":
        raise Rejection(REASON_UNDECODABLE, "PNG does not start with an IHDR chunk")
    return _u(data, 16, 4, "big"), _u(data, 20, 4, "big")


def _gif_size(data: bytes) -> Optional[Tuple[int, int]]:
    return (_u(data, 6, 2, "little"), _u(data, 8, 2, "little")) if len(data) >= 10 else None


def _bmp_size(data: bytes) -> Optional[Tuple[int, int]]:
    if len(data) < 26:
        return None
    if _u(data, 14, 4, "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return _u(data, 18, 2, "little"), _u(data, 20, 2, "little")
    # Negative height means top-down row order.
    return abs(_u(data, 18, 4, "little", True)), abs(_u(data, 22, 4, "little", True))


_HEADER_PARSERS: Dict[str, Callable[[bytes], Optional[Tuple[int, int]]]] = {
    "JPEG": _jpeg_size, "PNG": _png_size, "GIF": _gif_size, "BMP": _bmp_size}
