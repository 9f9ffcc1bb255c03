"""The exported SavedModel: one decode path for training and serving, the vocabulary
inside, the three signatures; and the optional TFLite model."""
import base64
import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

from trainer import contract, data, export, features, model as model_lib, tflite
from trainer.train_config import TrainConfig
from trainer_helpers import LABELS, NUM_CLASSES, write_records

SIZE = 64


def _encoded(fmt: str, size) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(skdata.chelsea()).resize(size).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos():
    """A JPEG and a PNG of different sizes and aspect ratios, both resized by the model."""
    return [_encoded("JPEG", (180, 120)), _encoded("PNG", (97, 150))]


@pytest.fixture(scope="module")
def classifier():
    # ImageNet features (offline) so the probabilities are far from uniform.
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(backbone="efficientnet_lite0", weights="imagenet", image_size=SIZE)
    return model_lib.build_classifier(cfg, NUM_CLASSES)


@pytest.fixture(scope="module")
def exported(classifier, transform_output, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("serving"))
    export.export_saved_model(classifier.model, transform_output, SIZE, directory, top_k=2)
    return directory, tf.saved_model.load(directory)


def _raw_example(image: bytes) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        features.LABEL_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"blue"])),
    })).SerializeToString()


def test_serving_default_matches_the_training_side(classifier, exported, photos, tmp_path):
    # Training side: the TFRecord input pipeline, then the Keras model.
    path = write_records(tmp_path / "photos.gz", [(p, 0) for p in photos])
    images = next(iter(data.image_dataset([path], SIZE, len(photos))))[0]
    expected = classifier.model.predict(images, verbose=0)

    served = exported[1].signatures["serving_default"](image_bytes=tf.constant(photos))
    probabilities = served["probabilities"].numpy()
    assert probabilities.max() > 0.5  # not a degenerate, near-uniform output
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    ids = served["top_k_class_ids"].numpy()
    np.testing.assert_array_equal(ids[:, 0], np.argmax(expected, axis=1))
    names = served["top_k_class_names"].numpy()
    assert [[n.decode() for n in row] for row in names] == [[LABELS[i] for i in row]
                                                            for row in ids]
    np.testing.assert_allclose(served["top_k_scores"].numpy()[:, 0], expected.max(axis=1),
                               atol=1e-5)


def test_serving_tf_example_gives_the_same_answer(exported, photos):
    model = exported[1]
    by_bytes = model.signatures["serving_default"](image_bytes=tf.constant(photos))
    by_example = model.signatures["serving_tf_example"](
        examples=tf.constant([_raw_example(p) for p in photos]))
    np.testing.assert_allclose(by_example["probabilities"], by_bytes["probabilities"],
                               atol=1e-6)


def test_bytes_are_not_base64_decoded_inside(exported, photos):
    # TF Serving turns {"b64": ...} into bytes before the graph; base64 text reaching the
    # graph is not an image.
    with pytest.raises(tf.errors.InvalidArgumentError):
        exported[1].signatures["serving_default"](
            image_bytes=tf.constant([base64.b64encode(photos[0])]))


def test_vocabulary_ships_inside_and_transform_features_serves_tfma(exported):
    directory, model = exported
    with open(f"{directory}/assets/{contract.LABELS_FILE}") as f:
        assert f.read().split() == list(LABELS)
    transformed = model.signatures["transform_features"](
        examples=tf.constant([_raw_example(b"any")]))
    assert transformed[features.LABEL_ID_KEY].numpy().tolist() == [LABELS.index("blue")]


# int8 weights (dynamic_range) move probabilities by a few hundredths, not the top class.
@pytest.mark.parametrize("mode,tolerance", [("float32", 1e-5), ("dynamic_range", 0.1)])
def test_tflite_model_matches_keras(classifier, photos, mode, tolerance, tmp_path):
    path = tflite.export_tflite(classifier.model, SIZE, list(LABELS), str(tmp_path), mode)
    assert (tmp_path / contract.LABELS_FILE).read_text().split() == list(LABELS)
    images = tf.stack([data.image_ops.decode_and_resize(p, SIZE) for p in photos]).numpy()
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = classifier.model.predict(images, verbose=0)
    np.testing.assert_allclose(got, expected, atol=tolerance)
    np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1))
