"""The perceptual fingerprint: near-copies stay close, distinct scenes far, any mode."""
import io

import numpy as np
import pytest
from PIL import Image

from components.image_example_gen import fingerprint as fp
from near_copy_helpers import jpeg, near_copy, photo


def test_near_copies_are_close_and_distinct_photos_far():
    originals = [photo(seed) for seed in range(12)]
    prints = [fp.fingerprint(image, b"") for image in originals]
    for seed, (image, value) in enumerate(zip(originals, prints)):
        for copy in range(3):
            copied = Image.open(io.BytesIO(near_copy(image, 100 * seed + copy)))
            assert fp.distance(value, fp.fingerprint(copied, b"")) <= 10, (seed, copy)
    distinct = [fp.distance(a, b) for i, a in enumerate(prints) for b in prints[i + 1:]]
    assert min(distinct) > 14


def test_brightness_scale_and_bit_depth_leave_it_unchanged():
    image = photo(1).convert("L")
    pixels = np.asarray(image).astype(np.uint16)
    sixteen_bit = Image.fromarray(pixels * 257)  # I;16: the same picture in 16 bits
    assert sixteen_bit.mode.startswith("I;16")
    assert fp.fingerprint(sixteen_bit, b"") == fp.fingerprint(image, b"")
    darker = Image.fromarray((pixels * 0.9).astype(np.uint8))
    assert fp.distance(fp.fingerprint(darker, b""), fp.fingerprint(image, b"")) <= 2


@pytest.mark.parametrize("mode", ["RGBA", "P", "CMYK", "1", "LA"])
def test_every_pillow_mode_gets_a_fingerprint(mode):
    image = photo(2).convert(mode)
    value = fp.fingerprint(image, b"")
    assert 0 < value < 1 << 64
    if mode in ("RGBA", "CMYK"):  # the same pixels: the same fingerprint
        assert value == fp.fingerprint(photo(2), b"")


def test_int64_and_hex_forms_round_trip():
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        signed = fp.to_int64(value)
        assert -(1 << 63) <= signed < 1 << 63 and fp.from_int64(signed) == value
        assert len(fp.to_hex(value)) == 16 and fp.from_hex(fp.to_hex(value)) == value
    with pytest.raises(ValueError, match="16 hex digits"):
        fp.from_hex("abc")


def test_images_under_the_thumbnail_size_match_their_exact_copies_only():
    # Two different 8x8 digits-like images: a perceptual hash of 64 pixels would put
    # distinct pictures within a few bits; their content hashes are far apart.
    first, second = photo(3, (8, 8)), photo(4, (8, 8))
    first_bytes, second_bytes = jpeg(first), jpeg(second)
    assert fp.fingerprint(first, first_bytes) == fp.fingerprint(first, first_bytes)
    assert fp.distance(fp.fingerprint(first, first_bytes),
                       fp.fingerprint(second, second_bytes)) > 10
