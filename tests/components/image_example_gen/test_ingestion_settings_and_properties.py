"""The ingestion settings as the executor reads them, and the per-image properties the
data guard compares."""
import numpy as np
import pytest
from PIL import Image

from components.image_example_gen import component
from components.image_example_gen import image_checks as checks
from components.image_example_gen.config import DataConfig, ingestion_config


def test_the_executor_reads_the_ingestion_fields_normalised_and_names_missing_ones():
    custom = {**component.ingestion_options(DataConfig()), "image_extensions": [".JPG"],
              "accepted_formats": ["png"], "max_pixels": 1000.0}  # a Struct's float
    options = ingestion_config(custom)
    assert (options.image_extensions, options.accepted_formats, options.max_pixels) == \
        ([".jpg"], ["PNG"], 1000) and isinstance(options.max_pixels, int)
    with pytest.raises(ValueError, match=r"missing \['max_pixels'\].*ingestion_options"):
        ingestion_config({k: v for k, v in custom.items() if k != "max_pixels"})
    with pytest.raises(ValueError, match="data.max_pixels"):
        ingestion_config({**custom, "max_pixels": 0})


def test_brightness_and_sharpness_tell_dark_from_bright_and_blurred_from_sharp():
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    sharp = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))
    dark = Image.new("RGB", (300, 400), (20, 20, 20))
    bright = Image.new("L", (300, 400), 230)
    (b_sharp, s_sharp), (_, s_blur) = checks.image_properties(sharp), \
        checks.image_properties(blurred)
    assert s_sharp > 20 * s_blur
    assert checks.image_properties(dark) == pytest.approx((20.0, 0.0), abs=0.5)
    assert checks.image_properties(bright)[0] == pytest.approx(230.0, abs=0.5)
    assert 100 < b_sharp < 155
    palette = sharp.convert("P")  # any mode Pillow decodes
    assert checks.image_properties(palette)[1] > 0
