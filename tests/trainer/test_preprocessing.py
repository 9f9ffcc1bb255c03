"""Transform keeps only what the model needs: the image properties ingestion records for
the data guard stay out of the transformed examples, which stay about the size of the
encoded images."""
import glob
import os

import tensorflow as tf

from trainer import features


def _records(folder: str):
    files = sorted(glob.glob(os.path.join(folder, "Split-train", "*")))
    return files, [tf.train.Example.FromString(r.numpy()) for r in
                   tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _newest(root: str, component: str, output: str) -> str:
    folder = os.path.join(root, component, output)
    return os.path.join(folder, max(os.listdir(folder), key=int))


def test_transformed_examples_hold_only_the_image_and_the_label_id(e2e):
    root = e2e["config"].pipeline_root
    raw_files, raw = _records(_newest(root, "ImageExampleGen", "examples"))
    out_files, transformed = _records(_newest(root, "Transform", "transformed_examples"))
    assert set(raw[0].features.feature) >= set(features.PROPERTY_FEATURES)
    assert {frozenset(e.features.feature) for e in transformed[:50]} == {
        frozenset({features.TRANSFORMED_IMAGE_KEY, features.LABEL_ID_KEY})}
    encoded = sum(len(e.features.feature[features.IMAGE_KEY].bytes_list.value[0])
                  for e in raw)
    out_size = sum(os.path.getsize(f) for f in out_files)
    # Compressed image bytes plus a label id: never more than the images themselves.
    assert out_size <= 1.05 * encoded, (out_size, encoded)
    print(f"transformed train split / its encoded images: {out_size / encoded:.3f}")
