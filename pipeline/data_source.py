"""Where the images come from: a folder, a CSV manifest, or the embedded demo set."""
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from components.image_example_gen.config import DEMO_DATA, split_source
from components.artifacts.span_names import split_span_source
from pipeline.config import PipelineConfig
from trainer.config_fields import ConfigError
from trainer.files import written_then_renamed


def write_demo_digits(out_dir: str, classes: Optional[Sequence[int]] = None) -> str:
    """Writes scikit-learn's 1,797 handwritten digits as 8x8 grayscale PNGs, per class.

    The images ship inside the scikit-learn wheel, so the demo needs no network. Writing is
    idempotent: existing files are left alone (their bytes are identical anyway).
    """
    from sklearn.datasets import load_digits  # only the demo needs scikit-learn

    digits = load_digits()
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        if classes is not None and int(target) not in classes:
            continue
        class_dir = os.path.join(out_dir, str(int(target)))
        path = os.path.join(class_dir, f"digit_{i:04d}.png")
        if os.path.exists(path):
            continue
        os.makedirs(class_dir, exist_ok=True)
        # Values are 0..16 ink levels; scale to 8-bit with white ink on black.
        image = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)
        with written_then_renamed(path) as tmp:
            Image.fromarray(image, mode="L").save(tmp, format="PNG")
    return out_dir


def resolve(config: PipelineConfig) -> Tuple[str, Optional[str]]:
    """Returns (data_root, manifest file name or None), materialising the demo if asked."""
    source = config.data.source
    if source == DEMO_DATA:
        return os.path.abspath(write_demo_digits(config.demo_data_dir)), None
    if source.startswith(("gs://", "s3://")):
        return split_source(source)
    root, pattern = split_span_source(source)
    if pattern:
        if not os.path.isdir(root):
            raise ConfigError(f"config field 'data.source': {root}, the folder of the spans "
                              f"{pattern}, is not a directory")
        return os.path.abspath(root), None
    path = os.path.abspath(source)
    if source.lower().endswith(".csv"):
        if not os.path.isfile(path):
            raise ConfigError(f"config field 'data.source': manifest {path} does not exist")
        return os.path.dirname(path), os.path.basename(path)
    if not os.path.isdir(path):
        raise ConfigError(f"config field 'data.source': {path} is not a directory of "
                          "class folders (root/<label>/<image>) nor a .csv manifest")
    return path, None
