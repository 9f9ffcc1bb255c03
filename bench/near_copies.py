"""Near-copies of photos, as phones and editors make them: a 0-6% crop on each side,
brightness x0.92-1.08, an optional resize, JPEG quality 80-92. Used by the benches that
need a folder with bursts and re-exports (near_duplicate_bench, scale_bench)."""
import io
import random
from typing import Optional, Tuple

from PIL import Image, ImageEnhance


def near_copy(image: Image.Image, rng: random.Random,
              size: Optional[Tuple[int, int]] = None, scale: Tuple[float, float] = (1, 1)
              ) -> bytes:
    """JPEG bytes of one near-copy of `image` (RGB): resized to `size` when given, else
    by a factor drawn from `scale`."""
    w, h = image.size
    box = (int(w * rng.uniform(0, 0.06)), int(h * rng.uniform(0, 0.06)),
           w - int(w * rng.uniform(0, 0.06)), h - int(h * rng.uniform(0, 0.06)))
    copy = ImageEnhance.Brightness(image.crop(box)).enhance(rng.uniform(0.92, 1.08))
    factor = rng.uniform(*scale)
    target = size or (max(1, round(copy.width * factor)), max(1, round(copy.height * factor)))
    if target != copy.size:
        copy = copy.resize(target, Image.BILINEAR)
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=rng.randint(80, 92))
    return buffer.getvalue()
