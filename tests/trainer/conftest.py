"""Fixtures for the trainer tests."""
import sys
from pathlib import Path

import pytest
import tensorflow as tf

# Plain helper modules beside these tests; with --import-mode=importlib their folder is
# not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

from trainer_helpers import LABELS, synthetic_images, write_records  # noqa: E402


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    """{'train': [pattern], 'eval': [pattern]}: 24 training and 12 evaluation images."""
    root = tmp_path_factory.mktemp("records")
    return {"train": [write_records(root / "train.gz", synthetic_images(24, seed=0))],
            "eval": [write_records(root / "eval.gz", synthetic_images(12, seed=1))]}


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state (initial weights, shuffles, dropout),
    whichever tests ran before it."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture
def eager_steps():
    """Keras' step functions run eagerly: on a few tiny batches that is much faster than
    tracing a backbone, and the same Python runs."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="session")
def transform_dir(tmp_path_factory) -> str:
    """A real Transform graph (our preprocessing_fn) whose label vocabulary is LABELS in
    id order, as the Transform component writes it for export and run_fn."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    from trainer import features, preprocessing

    out = tmp_path_factory.mktemp("transform_graph")
    spec = {features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            features.LABEL_KEY: tf.io.FixedLenFeature([], tf.string)}
    metadata = tft.DatasetMetadata.from_feature_spec(spec)
    # The vocabulary is ordered by frequency: LABELS[0] most frequent.
    rows = [{features.IMAGE_KEY: b"", features.LABEL_KEY: label.encode()}
            for i, label in enumerate(LABELS) for _ in range(len(LABELS) - i)]
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft_tmp"))):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(
            preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(out))
    metadata_io.write_metadata(metadata, str(out / tft.TFTransformOutput.RAW_METADATA_DIR))
    return str(out)


@pytest.fixture(scope="session")
def transform_output(transform_dir):
    import tensorflow_transform as tft

    from trainer import features

    output = tft.TFTransformOutput(transform_dir)
    assert output.vocabulary_by_name(features.LABEL_VOCABULARY) == \
        [label.encode() for label in LABELS]
    return output
