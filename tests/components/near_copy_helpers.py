"""Synthetic photos and near-copies of them for the near-duplicate tests: smooth random
scenes (a photo's low frequencies, not noise), copied with a small crop, a brightness
change, a resize and JPEG re-encoding, as phones and editors do."""
import io
import random

import numpy as np
from PIL import Image, ImageEnhance


def photo(seed: int, size=(160, 120)) -> Image.Image:
    """A smooth colour scene: 5x4 random colours upsampled, plus a random bright disc."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 5, 3), np.uint8), "RGB")
    image = coarse.resize(size, Image.BICUBIC)
    pixels = np.asarray(image).astype(np.int32)
    yy, xx = np.mgrid[:size[1], :size[0]]
    cx, cy, r = rng.uniform(0.2, 0.8) * size[0], rng.uniform(0.2, 0.8) * size[1], size[1] / 5
    pixels[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def near_copy(image: Image.Image, seed: int) -> bytes:
    """JPEG bytes of a 0-2% crop per side, brightness x0.95-1.05, resized to 60-100%."""
    rng = random.Random(seed)
    w, h = image.size
    box = (int(w * rng.uniform(0, 0.02)), int(h * rng.uniform(0, 0.02)),
           w - int(w * rng.uniform(0, 0.02)), h - int(h * rng.uniform(0, 0.02)))
    copy = ImageEnhance.Brightness(image.crop(box)).enhance(rng.uniform(0.95, 1.05))
    scale = rng.uniform(0.6, 1.0)
    copy = copy.resize((int(copy.width * scale), int(copy.height * scale)), Image.BILINEAR)
    return jpeg(copy, quality=rng.randint(80, 92))


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
