"""The feature cache: float16 rows in memory or spilled to files, read back as the same
batches in the same order; training from either is the same training."""
import os

import numpy as np
import pytest

from trainer import data, feature_cache, model as model_lib, phase_cache, schedule
from trainer.train_config import TrainConfig
from trainer_helpers import IMAGE_SIZE, NUM_CLASSES, calibrate_batchnorm, weights_by_layer

SHAPES = [(3, 3, 4), (5,)]  # two outputs, as a cut inside a residual block has


def _rows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 3, (n, *s)).astype(np.float32) for s in SHAPES]


def _store(rows, in_memory: bool, work_dir, batch: int = 7, dtype=feature_cache.DTYPE):
    writer = feature_cache.Writer(SHAPES, len(rows[0]), in_memory, str(work_dir), dtype)
    for start in range(0, len(rows[0]), batch):
        writer.append([r[start:start + batch] for r in rows])
    return writer.finish()


def _batches(ds):
    return [[np.asarray(t) for t in _flatten(b)] for b in ds]


def _flatten(batch):
    inputs, labels = batch
    return [*inputs, labels]


def test_spilled_store_is_files_holding_the_rows_as_float16(tmp_path):
    rows = _rows(50)
    store = _store(rows, in_memory=False, work_dir=tmp_path)
    assert store.spilled and store.nbytes == 50 * 2 * (36 + 5)
    for i, path in enumerate(store.paths):
        assert os.path.dirname(path).startswith(str(tmp_path))
        on_disk = np.load(path, mmap_mode="r")
        assert on_disk.dtype == np.float16 and on_disk.shape == (50, *SHAPES[i])
        np.testing.assert_array_equal(on_disk, rows[i].astype(np.float16))
    index = np.array([49, 0, 17, 18, 3])
    for got, want in zip(store.read(index), rows):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want[index].astype(np.float16).astype(np.float32))
    directory = store.directory
    store.close()
    assert not os.path.exists(directory)


def test_float16_rows_are_within_its_rounding_error_and_never_overflow(tmp_path):
    rows = _rows(40)
    rows[1][0, 0] = 1e6  # beyond float16's range: clipped to its largest value, not inf
    store = _store(rows, in_memory=True, work_dir=tmp_path)
    got = store.read(slice(0, 40))
    assert got[1][0, 0] == np.finfo(np.float16).max
    rows[1][0, 0] = got[1][0, 0]
    for g, want in zip(got, rows):
        normal = np.abs(want) >= np.finfo(np.float16).tiny
        relative = np.abs(g - want)[normal] / np.abs(want)[normal]
        assert relative.max() <= 2 ** -11
        assert np.abs(g - want)[~normal].max(initial=0) <= 2 ** -25  # subnormal spacing / 2
    assert store.nbytes * 2 == sum(r.nbytes for r in rows)


def test_the_writer_refuses_a_wrong_row_count(tmp_path):
    writer = feature_cache.Writer(SHAPES, 10, False, str(tmp_path))
    writer.append([r[:6] for r in _rows(6)])
    with pytest.raises(ValueError, match="6 rows written, 10 announced"):
        writer.finish()
    with pytest.raises(ValueError, match="more than the 10"):
        writer.append([r[:6] for r in _rows(6)])
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_in_memory_and_spilled_stores_give_the_same_batches(tmp_path):
    rows, labels = _rows(45), np.arange(45) % NUM_CLASSES
    rows[1][:, 0] = np.arange(45)  # each row says which it is (exact in float16)
    stores = [_store(rows, True, tmp_path), _store(rows, False, tmp_path)]
    memory, spilled = [_batches(feature_cache.dataset(
        s, 8, labels, NUM_CLASSES, shuffle_seed=3, repeat=True).take(18)) for s in stores]
    assert len(memory) == 18
    for a, b in zip(memory, spilled):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # A pass is 6 batches (45 rows): every row once, a new order each pass, and the
    # labels travel with their rows.
    passes = [np.concatenate([b[1][:, 0] for b in memory[i:i + 6]]).astype(int)
              for i in (0, 6, 12)]
    for order in passes:
        assert sorted(order) == list(range(45))
    assert not np.array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[1], passes[2])
    got_labels = np.concatenate([np.argmax(b[2], axis=1) for b in memory[:6]])
    np.testing.assert_array_equal(got_labels, labels[passes[0]])


def test_unshuffled_dataset_is_the_rows_in_order(tmp_path):
    rows = _rows(20)
    ds = feature_cache.dataset(_store(rows, False, tmp_path), 6)
    got = [np.concatenate([np.asarray(b[i]) for b in ds]) for i in range(len(SHAPES))]
    for g, want in zip(got, rows):
        np.testing.assert_array_equal(g, want.astype(np.float16).astype(np.float32))


# -- the schedule on both paths -----------------------------------------------------------
def _config(**overrides) -> TrainConfig:
    values = dict(backbone="efficientnet_lite0", weights="none", image_size=IMAGE_SIZE,
                  batch_size=10, phase1_epochs=2, phase2_epochs=2, augment=False,
                  tensorboard=False, checkpoints=False, early_stopping_patience=0,
                  reduce_lr_patience=0)
    return TrainConfig(**{**values, **overrides})


def _train(cfg, records, calibrate=True):
    import keras

    keras.utils.set_random_seed(0)
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    if calibrate:
        images = next(iter(data.image_dataset(records["train"], IMAGE_SIZE, 12)))[0]
        calibrate_batchnorm(classifier.base, images.numpy())
    results = schedule.train_two_phases(classifier, cfg, NUM_CLASSES, records["train"],
                                        records["eval"])
    return classifier, results


def test_a_tiny_budget_spills_both_phases(records):
    cfg = _config(feature_cache_max_mb=1e-6)
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    examples = phase_cache.Examples.read(records["train"], records["eval"])
    bottom = phase_cache.cache_bottom(classifier, cfg, examples)
    phase1 = bottom.cache.derived.cache
    stores = [bottom.cache.train, bottom.cache.eval, phase1.train, phase1.eval]
    assert all(s.spilled for s in stores)
    assert [s.dtype for s in stores] == [np.float16] * 2 + [np.float32] * 2
    directories = [s.directory for s in stores]
    bottom.cache.close()
    assert not any(os.path.exists(d) for d in directories)


@pytest.mark.usefixtures("eager_steps")
def test_training_from_a_spilled_cache_equals_training_from_memory(records):
    memory_cfg, spilled_cfg = _config(), _config(feature_cache_max_mb=1e-6)
    in_memory, memory_results = _train(memory_cfg, records)
    spilled, spilled_results = _train(spilled_cfg, records)
    assert all(r.cached_train and r.cached_eval for r in memory_results + spilled_results)
    for a, b in zip(memory_results, spilled_results):
        assert a.history == b.history and a.best_epoch == b.best_epoch
    want, got = weights_by_layer(in_memory.model), weights_by_layer(spilled.model)
    for layer, values in want.items():
        for path, value in values.items():
            np.testing.assert_array_equal(got[layer][path], value, err_msg=path)


@pytest.mark.usefixtures("eager_steps")
def test_float16_phase2_cache_trains_the_same_model_as_float32(records, monkeypatch):
    """ImageNet Lite0: phase 2 on the float16 cache against the same schedule on a
    float32 cache. The features differ by float16's rounding (relative 2**-11); the
    trained models' probabilities by far less than a decision."""
    # No best-epoch restore: which epoch is best is a discrete choice a tiny difference
    # in val_loss could flip; here both runs end after the same epochs.
    cfg = _config(weights="imagenet", phase1_epochs=3, phase2_epochs=2,
                  restore_best_weights=False)
    half, _ = _train(cfg, records, calibrate=False)
    monkeypatch.setitem(phase_cache.CACHE_DTYPES, "phase2", np.float32)
    full, _ = _train(cfg, records, calibrate=False)
    images = np.concatenate([x for x, _ in data.image_dataset(records["eval"], IMAGE_SIZE, 64)])
    p_half, p_full = np.asarray(half.model(images)), np.asarray(full.model(images))
    assert not np.array_equal(p_half, p_full)  # the float16 cache was used
    print("float16 vs float32 cache: max |p| difference", np.abs(p_half - p_full).max())
    assert np.abs(p_half - p_full).max() < 2e-3, np.abs(p_half - p_full).max()
