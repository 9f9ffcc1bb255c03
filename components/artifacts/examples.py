"""An Examples artifact's files as the others read them: one split's TFRecord files, found
where TFX puts them (artifact_utils.get_split_uri), not by spelling its folder names."""
import os
from typing import List

from tfx.dsl.io import fileio
from tfx.types import artifact, artifact_utils, standard_artifacts


def from_mlmd(mlmd_artifact: object) -> artifact.Artifact:
    """An Examples artifact read back from ML Metadata, as the components receive it."""
    examples = standard_artifacts.Examples()
    examples.set_mlmd_artifact(mlmd_artifact)
    return examples


def split_files(examples: artifact.Artifact, split: str) -> List[str]:
    """The files of one split of an Examples artifact, sorted; [] when it has no such split."""
    if split not in artifact_utils.decode_split_names(examples.split_names):
        return []
    return sorted(fileio.glob(os.path.join(artifact_utils.get_split_uri([examples], split),
                                           "*")))
