"""Augmented views cached once with each training image, one drawn per image each epoch."""
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from trainer import contract, data, feature_cache, model as model_lib, phase_cache, schedule
from trainer import image_ops, views
from trainer.train_config import TrainConfig
from trainer_helpers import IMAGE_SIZE, NUM_CLASSES

VIEWS = 2


def _config(**overrides) -> TrainConfig:
    values = dict(backbone="efficientnet_lite0", weights="none", image_size=IMAGE_SIZE,
                  batch_size=10, phase1_epochs=1, phase2_epochs=0, views=VIEWS,
                  tensorboard=False, checkpoints=False)
    return TrainConfig(**{**values, **overrides})


def _rows(ds: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([b.numpy() for b in ds])


def test_each_image_is_followed_by_its_views_and_comes_first_as_evaluation_sees_it(records):
    cfg = _config()
    rows = _rows(views.view_dataset(records["train"], cfg, 24, VIEWS))
    plain = _rows(data.image_dataset(records["train"], IMAGE_SIZE, 10).map(lambda x, _: x))
    assert rows.shape == (24 * (VIEWS + 1), IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_array_equal(rows[::VIEWS + 1], plain)  # the same pixels, exactly
    for v in range(1, VIEWS + 1):
        assert not np.allclose(rows[v::VIEWS + 1], plain)
    assert not np.allclose(rows[1::VIEWS + 1], rows[2::VIEWS + 1])
    assert rows.min() >= 0 and rows.max() <= 255


def test_views_depend_on_the_seed_alone(records):
    first = _rows(views.view_dataset(records["train"], _config(), 24, VIEWS))
    again = _rows(views.view_dataset(records["train"], _config(), 24, VIEWS))
    other = _rows(views.view_dataset(records["train"], _config(seed=7), 24, VIEWS))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_a_view_is_a_part_of_the_image_and_flips_only_as_configured():
    # Left half 0, right half 255: a horizontal flip is the only way a view's left column
    # can be brighter than its right one.
    image = tf.constant(np.repeat([[0.0] * 20 + [255.0] * 20], 30, axis=0)[..., None]
                        * np.ones(3), tf.float32)
    flipped = unflipped = 0
    for i in range(40):
        for flip in ("horizontal", "none"):
            view = views.random_view(image, 16, 0.5, flip, tf.constant([i, 0], tf.int64))
            left, right = float(view[:, 0].numpy().mean()), float(view[:, -1].numpy().mean())
            if left > right:
                assert flip == "horizontal"
                flipped += 1
            elif flip == "horizontal":
                unflipped += 1
    assert flipped and unflipped


def test_a_pass_draws_one_row_of_each_example_and_a_new_draw_each_pass():
    rows_per_example, examples = VIEWS + 1, 30
    # row r holds the value r: example r // 3, view r % 3
    writer = feature_cache.Writer([(1,)], examples * rows_per_example, in_memory=True,
                                  dtype=np.float32)
    writer.append([np.arange(examples * rows_per_example, dtype=np.float32)[:, None]])
    store = writer.finish()
    labels = np.arange(examples) % NUM_CLASSES
    ds = feature_cache.dataset(store, 8, labels, NUM_CLASSES, shuffle_seed=3,
                               rows_per_example=rows_per_example)
    assert ds.cardinality().numpy() == 4
    passes = []
    for _ in range(2):
        got = [(x.numpy()[:, 0].astype(int), y.numpy().argmax(1)) for x, y in ds]
        rows = np.concatenate([r for r, _ in got])
        assert sorted(rows // rows_per_example) == list(range(examples))
        np.testing.assert_array_equal(np.concatenate([y for _, y in got]),
                                      labels[rows // rows_per_example])
        passes.append(rows)
    assert len(set(passes[0] % rows_per_example)) == rows_per_example  # every view drawn
    assert not np.array_equal(passes[0], passes[1])
    unshuffled = _rows(feature_cache.dataset(store, 8, rows_per_example=rows_per_example))
    np.testing.assert_array_equal(unshuffled[:, 0], np.arange(examples) * rows_per_example)


@pytest.mark.usefixtures("eager_steps")
def test_phase1_caches_the_views_once_and_trains_on_them(records, monkeypatch):
    cfg = _config()
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    examples = phase_cache.Examples.read(records["train"], records["eval"])
    made = []
    real = views.view_dataset
    monkeypatch.setattr(views, "view_dataset", lambda *a: made.append(a) or real(*a))
    cache = phase_cache.cache_outputs(contract.PHASE1, classifier.features, cfg, examples,
                                      True, num_views=VIEWS)
    plain = phase_cache.cache_outputs(contract.PHASE1, classifier.features, cfg, examples,
                                      True)
    assert len(made) == 1
    assert (cache.train.num_rows, cache.eval.num_rows) == (24 * (VIEWS + 1), 12)
    assert cache.train_rows_per_example == VIEWS + 1
    np.testing.assert_allclose(cache.train[0][::VIEWS + 1], plain.train[0], atol=1e-5)
    np.testing.assert_array_equal(cache.eval[0], plain.eval[0])

    result = schedule.run_phase1(classifier, cfg, NUM_CLASSES, examples)
    assert result.cached_train and len(made) == 2  # one pass over the views per run
    assert "val_loss" in result.history


@pytest.mark.parametrize("decode", [image_ops.decode,
                                    lambda b: image_ops.decode_and_resize(b, IMAGE_SIZE)])
def test_decoding_refuses_an_image_whose_header_declares_too_many_pixels(decode):
    # A PNG header declaring 20000 x 20000 pixels and no pixel data: refused by the header
    # check, the decoder never runs (it would report the missing data instead).
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + \
            struct.pack(">I", zlib.crc32(kind + payload) & 0xffffffff)

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000,
                                                               8, 2, 0, 0, 0))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"too large to decode: more than {contract.MAX_IMAGE_PIXELS}"):
        decode(tf.constant(header + chunk(b"IEND", b"")))
