"""Per-file checks of ImageExampleGen: which files become training examples and why not.

Every input file gets exactly one outcome: accepted (possibly normalised) or rejected
with a reason code (the REASON_* constants of reasons.py) and a human-readable detail.

Checks, in order (the first failure wins):
  1. the extension, case-insensitively, is one of `image_extensions` (README.txt,
     .DS_Store, ... are `unsupported_extension`; the bytes are not read);
  2. the file is not empty (`zero_bytes`);
  3. the format is sniffed from the magic bytes, never the extension. JPEG, PNG, GIF and
     BMP are the formats TensorFlow decodes; one of them outside `accepted_formats` is
     `unsupported_format`, as is anything else Pillow recognises (WebP, TIFF, ...);
     content nobody recognises is `not_an_image`;
  4. width and height are read from the header by our own parser (image_headers.py),
     before any decoding, so `too_large` (width*height > max_pixels) never depends on Pillow's
     decompression-bomb guard; then `too_small` (a side < min_side) and
     `extreme_aspect_ratio` (long side / short side > max_aspect_ratio);
  5. Pillow fully decodes the image (strict: truncated data is an error, so run with
     PIL.ImageFile.LOAD_TRUNCATED_IMAGES left at its default False): `truncated` when
     the data stops early, `undecodable` for any other decode error;
  6. `trainer.image_ops.decode_and_resize`, the decoder training and serving use, must
     decode the bytes that will be stored; otherwise `undecodable`.
     Corrupt data that BOTH decoders accept (libjpeg only warns, e.g. "premature end of
     data segment", and fills the rest) is kept: it decodes the same way everywhere.
Any unexpected exception is an `undecodable` rejection carrying the exception text, so
one odd file never stops ingestion.

Odd but valid images are kept with their ORIGINAL bytes, because the shared TF decoder
turns each of them into 8-bit RGB (checked on the shared bad_images set): grayscale (L),
palette (P), 16-bit grayscale PNG (I;16), RGBA (alpha dropped), progressive JPEG, PNG
data under a .jpg name (format recorded as PNG), and CMYK JPEG (libjpeg converts it to
RGB; the result matches Pillow's conversion within 0.5/255 on average).
The one exception: a JPEG/PNG whose EXIF Orientation is not 1. TensorFlow ignores EXIF,
so the model would see it sideways; ingestion rotates the pixels to display orientation
(ImageOps.exif_transpose), re-encodes them as lossless PNG and lists the file under
"normalised" in the ingestion report. If PNG is not an accepted format such a file is
rejected as `unsupported_format` instead.

Stored metadata describes the stored bytes: height/width after any rotation, and
channels as Pillow counts the bands of the stored mode (L and I;16: 1, RGB: 3,
RGBA and CMYK: 4; a palette image counts its palette's colour channels, 3 or 4), and
the perceptual fingerprint (fingerprint.py) is computed from the pixels Pillow decoded
for step 5, so near-duplicate detection reads and decodes nothing more.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from tfx.dsl.io import fileio

from components.image_example_gen import fingerprint, image_headers
from components.image_example_gen.config import DataConfig
from components.image_example_gen.reasons import (
    REASON_EXTREME_ASPECT_RATIO, REASON_NOT_AN_IMAGE, REASON_TOO_LARGE, REASON_TOO_SMALL,
    REASON_TRUNCATED, REASON_UNDECODABLE, REASON_UNSUPPORTED_EXTENSION,
    REASON_UNSUPPORTED_FORMAT, REASON_ZERO_BYTES, Rejection)
from trainer import image_ops
from trainer.files import is_remote

_SMALL_MAX_SIDE = 128
_MEDIUM_MAX_SIDE = 512
# The TF check only needs a successful decode; a small output keeps the resize cheap.
_TF_CHECK_SIZE = 32
# Brightness and sharpness are measured on a thumbnail about this size.
_PROPERTY_SIDE = 128


@dataclass(frozen=True)
class Candidate:
    """A file to check: where to read it and what it would be recorded as."""
    image_id: str  # path relative to the data root, posix separators
    label: str
    source_dir: str
    path: str  # local path or URI to read (a symlink's checked target)


@dataclass(frozen=True)
class CheckedImage:
    """What is stored for an accepted image."""
    encoded: bytes
    format: str
    height: int
    width: int
    channels: int
    normalised: str = ""  # a human explanation when `encoded` is not the original file
    fingerprint: int = 0  # perceptual hash of the stored pixels (fingerprint.py), unsigned
    # Cheap properties for the data guard (image_properties below).
    file_size: int = 0
    brightness: float = 0.0
    sharpness: float = 0.0

    @property
    def size_bucket(self) -> str:
        side = max(self.height, self.width)
        return "small" if side < _SMALL_MAX_SIDE else "medium" if side < _MEDIUM_MAX_SIDE \
            else "large"


@dataclass(frozen=True)
class Outcome:
    """The fate of one input file: `image` when accepted, `reason` when rejected."""
    image_id: str
    label: str = ""
    source_dir: str = ""
    sha256: str = ""  # of the original file bytes; duplicates are found by it
    image: Optional[CheckedImage] = None
    reason: str = ""
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.image is not None

    def rejected(self, reason: str, detail: str) -> "Outcome":
        return dataclasses.replace(self, image=None, reason=reason, detail=detail)


def check_candidate(candidate: Candidate, options: DataConfig) -> Outcome:
    """Reads the file once and returns its outcome; never raises for a bad file."""
    outcome = Outcome(candidate.image_id, candidate.label, candidate.source_dir)
    try:
        check_extension(candidate.image_id, options)
        check_file_size(candidate.path, options)
        data = read_bytes(candidate.path)
        outcome = dataclasses.replace(outcome, sha256=hashlib.sha256(data).hexdigest())
        return dataclasses.replace(outcome, image=check_image_bytes(data, options))
    except Rejection as r:
        return outcome.rejected(r.reason, r.detail)
    except Exception as e:  # pylint: disable=broad-except
        return outcome.rejected(REASON_UNDECODABLE, f"{type(e).__name__}: {e}")


def check_extension(name: str, options: DataConfig) -> None:
    ext = os.path.splitext(name)[1].lower()
    if ext not in options.image_extensions:
        raise Rejection(REASON_UNSUPPORTED_EXTENSION,
                        f"extension '{ext}' is not one of {list(options.image_extensions)}")


def check_file_size(path: str, options: DataConfig) -> None:
    """A file over data.max_file_mb is rejected before a byte of it is read."""
    size = fileio.stat(path).length if "://" in path else os.path.getsize(path)
    if size > options.max_file_mb * 2 ** 20:
        raise Rejection(REASON_TOO_LARGE, f"file of {size} bytes is larger than "
                                          f"data.max_file_mb={options.max_file_mb} MB")


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        with fileio.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def check_image_bytes(data: bytes, options: DataConfig) -> CheckedImage:
    """Checks encoded bytes (steps 2-6 of the module docstring); raises Rejection."""
    if not data:
        raise Rejection(REASON_ZERO_BYTES, "the file is empty")
    fmt = image_headers.sniff_format(data)
    if fmt is None:
        raise _unknown_format_rejection(data)
    if fmt not in options.accepted_formats:
        raise Rejection(REASON_UNSUPPORTED_FORMAT,
                        f"{fmt} data is not one of {list(options.accepted_formats)}")
    check_dimensions(image_headers.header_size(data, fmt), options)
    image = _pillow_decode(data, fmt)
    checked = _normalise(image, data, fmt, options)
    _tf_decode_check(checked.encoded)
    return checked


def _unknown_format_rejection(data: bytes) -> Rejection:
    """Names the format when Pillow knows it (e.g. WebP) without decoding any pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            name = image.format or "an image format"
    except UnidentifiedImageError:
        return Rejection(REASON_NOT_AN_IMAGE, "the content is not a recognised image format")
    except Image.DecompressionBombError:
        name = "an image format Pillow recognises"
    return Rejection(REASON_UNSUPPORTED_FORMAT,
                     f"{name} data: TensorFlow only decodes JPEG, PNG, GIF and BMP")


def check_dimensions(size: Tuple[int, int], options: DataConfig) -> None:
    width, height = size
    if width * height > options.max_pixels:
        raise Rejection(REASON_TOO_LARGE, f"{width}x{height} = {width * height} pixels is "
                                          f"more than max_pixels={options.max_pixels}")
    if min(width, height) < options.min_side:
        raise Rejection(REASON_TOO_SMALL,
                        f"{width}x{height} has a side under min_side={options.min_side}")
    ratio = max(width, height) / min(width, height)
    if ratio > options.max_aspect_ratio:
        raise Rejection(REASON_EXTREME_ASPECT_RATIO,
                        f"{width}x{height} has aspect ratio {ratio:.1f}, more than "
                        f"max_aspect_ratio={options.max_aspect_ratio}")


def _pillow_decode(data: bytes, fmt: str) -> Image.Image:
    """Fully decodes the pixels; raises Rejection (truncated / undecodable)."""
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
        image.load()
        return image
    except Image.DecompressionBombError as e:
        # Only reachable when max_pixels is configured above Pillow's own limit.
        raise Rejection(REASON_TOO_LARGE, f"over Pillow's decompression-bomb limit: {e}")
    except UnidentifiedImageError:
        raise Rejection(REASON_UNDECODABLE,
                        f"starts like {fmt} but Pillow cannot parse its header") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = REASON_TRUNCATED if "truncat" in str(e).lower() else REASON_UNDECODABLE
        raise Rejection(reason, f"Pillow cannot decode it: {e}") from None


def _normalise(image: Image.Image, data: bytes, fmt: str,
               options: DataConfig) -> CheckedImage:
    """Original bytes, or lossless PNG of the display-oriented pixels for EXIF rotation."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation not in range(2, 9):  # 1 is upright; other values are invalid: ignored
        return _checked(image, data, fmt)
    if "PNG" not in options.accepted_formats:
        raise Rejection(REASON_UNSUPPORTED_FORMAT, f"EXIF Orientation={orientation} needs "
                                                   "re-encoding as PNG, not an accepted format")
    rotated = ImageOps.exif_transpose(image)
    if rotated.mode == "CMYK":  # PNG cannot store CMYK
        rotated = rotated.convert("RGB")
    buffer = io.BytesIO()
    rotated.save(buffer, format="PNG")
    return _checked(rotated, buffer.getvalue(), "PNG",
                    f"EXIF Orientation={orientation} applied to the pixels "
                    f"({image.width}x{image.height} -> {rotated.width}x{rotated.height}); "
                    "stored as lossless PNG because TensorFlow ignores EXIF")


def _checked(image: Image.Image, encoded: bytes, fmt: str, normalised: str = "") -> CheckedImage:
    if image.mode == "P" and image.palette is not None:
        channels = len(image.palette.mode)
    else:
        channels = len(image.getbands())
    brightness, sharpness = image_properties(image)
    return CheckedImage(encoded=encoded, format=fmt, height=image.height, width=image.width,
                        channels=channels, normalised=normalised,
                        fingerprint=fingerprint.fingerprint(image, encoded),
                        file_size=len(encoded),
                        brightness=brightness, sharpness=sharpness)


def image_properties(image: Image.Image) -> Tuple[float, float]:
    """(mean brightness 0-255, sharpness) of a greyscale thumbnail of at most
    _PROPERTY_SIDE px: sharpness is the variance of its 4-neighbour Laplacian, low for
    blurred or flat images. Downscaled first, so the cost does not grow with the image."""
    rgb = image if image.mode in ("L", "RGB") else image.convert("RGB")
    factor = max(1, max(rgb.size) // _PROPERTY_SIDE)
    grey = np.asarray((rgb.reduce(factor) if factor > 1 else rgb).convert("L"),
                      dtype=np.float32)
    centre = grey[1:-1, 1:-1]
    laplacian = 4 * centre - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(grey.mean()), float(laplacian.var()) if laplacian.size else 0.0


@functools.lru_cache(maxsize=None)
def _tf_decoder() -> Callable[[tf.Tensor], tf.Tensor]:
    """decode_and_resize traced once per process: eager calls cost more than the decode."""
    return tf.function(lambda b: image_ops.decode_and_resize(b, _TF_CHECK_SIZE),
                       input_signature=[tf.TensorSpec([], tf.string)])


def _tf_decode_check(encoded: bytes) -> None:
    try:
        _tf_decoder()(tf.constant(encoded))
    except tf.errors.OpError as e:
        raise Rejection(REASON_UNDECODABLE,
                        f"TensorFlow cannot decode it: {e.message.splitlines()[0]}") from None
