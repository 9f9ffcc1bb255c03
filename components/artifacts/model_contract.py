"""The exported model's contract read back from its files: the labels it ships (class id =
line number of its labels.txt)."""
import os
from typing import List

import tensorflow as tf
from tfx.utils import path_utils

from trainer import contract


def read_labels(model_dir: str) -> List[str]:
    """The label vocabulary an exported model ships (class id = line number)."""
    path = os.path.join(model_dir, tf.saved_model.ASSETS_DIRECTORY, contract.LABELS_FILE)
    with tf.io.gfile.GFile(path) as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def model_labels(model_uri: str) -> List[str]:
    """read_labels of the model in a Model artifact's folder."""
    return read_labels(path_utils.serving_model_path(model_uri))
