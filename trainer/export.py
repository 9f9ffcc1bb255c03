"""The exported SavedModel and its signatures.

- serving_default(image_bytes: string[batch]): encoded JPEG/PNG bytes as sent (TF
  Serving's REST `{"b64": ...}` form is decoded by the server, not here) ->
  probabilities, top-k class ids, scores and class names.
- serving_tf_example(examples: string[batch]): serialized raw tf.Examples -> the same.
- transform_features(examples): the Transform graph, for TFMA to get labels.

All three decode with `image_ops.decode_batch`, the function training uses. The label
vocabulary ships inside the model twice: a constant in the graph (for the class names)
and assets/labels.txt.
"""
import os
import tempfile
from typing import List

import tensorflow as tf
import tensorflow_transform as tft

from trainer import contract, features, image_ops


class ServingModule(tf.Module):
    def __init__(self, model, tft_output: tft.TFTransformOutput, labels: List[str],
                 image_size: int, top_k: int, labels_file: str):
        super().__init__()
        # Only the weights are tracked, not the Keras model: tracking it makes save()
        # trace the network again for a default signature nobody calls (export 10 s -> 7 s).
        self.weights = list(model.weights)
        self._model = lambda images: model(images, training=False)
        # The Transform graph as a plain SavedModel object, not TFT's Keras layer: saving
        # that layer re-traces it through tf_keras' serialisation (export 16 s -> 10 s).
        self.transform_graph = tf.saved_model.load(tft_output.transform_savedmodel_dir)
        self.labels = tf.constant(labels)
        self.labels_asset = tf.saved_model.Asset(labels_file)
        self.image_size = image_size
        self.top_k = min(top_k, len(labels))
        raw_spec = tft_output.raw_feature_spec()
        self._image_spec = {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]}
        self._raw_spec = raw_spec

    def _predict(self, image_bytes: tf.Tensor):
        images = image_ops.decode_batch(image_bytes, self.image_size)
        probabilities = self._model(images)
        top = tf.math.top_k(probabilities, k=self.top_k)
        return {
            contract.PROBABILITIES: probabilities,
            contract.TOP_K_CLASS_IDS: top.indices,
            contract.TOP_K_SCORES: top.values,
            contract.TOP_K_CLASS_NAMES: tf.gather(self.labels, top.indices),
        }

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name=contract.IMAGE_BYTES_INPUT)])
    def serve_image_bytes(self, image_bytes):
        return self._predict(image_bytes)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name=contract.EXAMPLES_INPUT)])
    def serve_tf_example(self, examples):
        parsed = tf.io.parse_example(examples, self._image_spec)
        return self._predict(tf.reshape(parsed[features.IMAGE_KEY], [-1]))

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name=contract.EXAMPLES_INPUT)])
    def transform_features(self, examples):
        parsed = tf.io.parse_example(examples, self._raw_spec)
        return self.transform_graph.transform_fn(parsed)


def label_names(tft_output: tft.TFTransformOutput) -> List[str]:
    """The label vocabulary in id order."""
    return [v.decode() if isinstance(v, bytes) else v
            for v in tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]


def export_saved_model(model, tft_output: tft.TFTransformOutput, image_size: int,
                       export_dir: str, top_k: int = 5) -> str:
    labels = label_names(tft_output)
    with tempfile.TemporaryDirectory() as tmp:
        labels_file = os.path.join(tmp, contract.LABELS_FILE)  # copied into assets/ by save()
        with open(labels_file, "w") as f:
            f.write("\n".join(labels) + "\n")
        module = ServingModule(model, tft_output, labels, image_size, top_k, labels_file)
        signatures = {
            contract.SERVING_SIGNATURE: module.serve_image_bytes,
            contract.TF_EXAMPLE_SIGNATURE: module.serve_tf_example,
            contract.TRANSFORM_SIGNATURE: module.transform_features,
        }
        tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
