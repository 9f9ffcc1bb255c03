"""What a trained model promises its users: the names of its files, signatures, inputs
and outputs, spelled here once (feature keys: features.py).

The exported SavedModel (export.py):
  serving_default(image_bytes)  encoded JPEG/PNG bytes -> OUTPUTS
  serving_tf_example(examples)  serialized raw tf.Examples -> OUTPUTS
  transform_features(examples)  the Transform graph (TFMA reads the labels through it)
and assets/labels.txt, the label vocabulary in class id order. The Trainer's run
folder holds history.json, the two phases' training history (schedule.py).
"""
from typing import Sequence

# Signatures of the exported SavedModel.
SERVING_SIGNATURE = "serving_default"
TF_EXAMPLE_SIGNATURE = "serving_tf_example"
TRANSFORM_SIGNATURE = "transform_features"

# Their inputs: a batch of encoded images, or a batch of serialized tf.Examples.
IMAGE_BYTES_INPUT = "image_bytes"
EXAMPLES_INPUT = "examples"

# Their outputs (the first two signatures).
PROBABILITIES = "probabilities"  # [batch, classes], class id = index in labels.txt
TOP_K_CLASS_IDS = "top_k_class_ids"
TOP_K_SCORES = "top_k_scores"
TOP_K_CLASS_NAMES = "top_k_class_names"

# The most pixels (width x height, read from the header before decoding) an input image
# may have, in training and serving alike: decoding takes width*height*3 bytes
# (image_ops.py). Ingestion's data.max_pixels may not exceed it.
MAX_IMAGE_PIXELS = 32_000_000

# The label vocabulary, one class name a line in class id order: in the SavedModel's
# assets, beside a TFLite model, beside a pushed version.
LABELS_FILE = "labels.txt"

# The optional TFLite export, inside the SavedModel folder.
TFLITE_DIR = "tflite"
TFLITE_MODEL_FILE = "model.tflite"

# In the Trainer's run folder: the phases' epochs, metrics and learning rates.
HISTORY_FILE = "history.json"
# The phases' names in it (and in their checkpoints, logs and feature caches).
PHASE1, PHASE2, FROM_SCRATCH = "phase1", "phase2", "scratch"


def class_name(class_id: int, labels: Sequence[str]) -> str:
    """The name of class id `class_id` in a model's labels, '#<id>' when it has none."""
    return labels[class_id] if 0 <= class_id < len(labels) else f"#{class_id}"
