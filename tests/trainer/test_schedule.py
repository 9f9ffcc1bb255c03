"""The two-phase schedule: caching, restore, callbacks, logs.

EfficientNet-Lite0 with weights=none at 32x32 on tiny tinted-noise images; its
BatchNorm statistics are calibrated first so gradients reach the base (see
trainer_helpers.calibrate_batchnorm). The first two tests run Keras' traced step
functions (as training does); the others run them eagerly, for speed.
"""
import dataclasses
import json
import os

import numpy as np
import pytest

from trainer import backbones, data, fit_callbacks, model as model_lib, phase_cache, schedule
from trainer.train_config import TrainConfig
from trainer_helpers import (IMAGE_SIZE, NUM_CLASSES, calibrate_batchnorm, changed_layers,
                             unfrozen_by, weights_by_layer)

BATCH = 12


def _config(**overrides) -> TrainConfig:
    values = dict(backbone="efficientnet_lite0", weights="none", image_size=IMAGE_SIZE,
                  batch_size=BATCH, phase1_epochs=1, phase2_epochs=1, augment=True,
                  tensorboard=False, checkpoints=False)
    return TrainConfig(**{**values, **overrides})


def _classifier(cfg: TrainConfig, records, calibrate: bool = True):
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    if calibrate:
        images = next(iter(data.image_dataset(records["train"], IMAGE_SIZE, BATCH)))[0]
        calibrate_batchnorm(classifier.base, images.numpy())
    return classifier


@pytest.fixture(scope="module")
def examples(records):
    return phase_cache.Examples.read(records["train"], records["eval"])


def test_cached_phases_leave_the_base_alone_then_train_only_its_top(records, examples,
                                                                     tmp_path):
    cfg = _config(augment=False, restore_best_weights=False, tensorboard=True,
                  checkpoints=True)
    classifier = _classifier(cfg, records)
    start = weights_by_layer(classifier.base)

    phase1 = schedule.run_phase1(classifier, cfg, NUM_CLASSES, examples, str(tmp_path))
    assert phase1.cached_train and phase1.cached_eval
    after1 = weights_by_layer(classifier.base)
    assert changed_layers(start, after1) == set()

    # Whether one epoch on random data beats phase 1's val_loss is luck: with nothing to
    # beat, phase 2's only epoch is its best and is checkpointed, whatever the data.
    unbeaten = dataclasses.replace(phase1, best_val_loss=float("inf"))
    phase2 = schedule.run_phase2(classifier, cfg, NUM_CLASSES, examples, unbeaten,
                                 str(tmp_path))
    assert phase2.best_epoch == phase1.next_epoch
    assert phase2.cached_train and phase2.cached_eval
    first = model_lib.top_start_index(classifier.base, backbones.get_backbone(
        cfg.backbone).top_start, 0)
    assert changed_layers(after1, weights_by_layer(classifier.base)) == \
        unfrozen_by(classifier.base, first)
    assert phase2.learning_rates == [pytest.approx(cfg.learning_rate * cfg.phase2_lr_factor)]
    assert phase2.epochs == [phase1.next_epoch]
    for phase in ("phase1", "phase2"):
        assert any("tfevents" in f for _, _, fs in os.walk(tmp_path / phase) for f in fs)
        assert (tmp_path / "checkpoints" / f"{phase}_best.weights.h5").exists()


def test_augmented_phase2_trains_on_images_and_validates_from_the_cache(records, examples):
    # Uncalibrated: the features are ~0, val_loss stays flat and the plateau callback
    # (which needs val_loss in the logs) halves the rate after each flat epoch.
    cfg = _config(phase2_epochs=3, reduce_lr_patience=1, reduce_lr_factor=0.5,
                  early_stopping_patience=0)
    classifier = _classifier(cfg, records, calibrate=False)
    results = schedule.train_two_phases(classifier, cfg, NUM_CLASSES, records["train"],
                                        records["eval"])
    phase1, phase2 = results
    assert (phase1.cached_train, phase1.cached_eval) == (True, True)
    assert (phase2.cached_train, phase2.cached_eval) == (False, True)
    assert len(phase2.history["val_loss"]) == 3 and phase2.epochs == [1, 2, 3]
    assert phase2.learning_rates == pytest.approx([1e-4, 1e-4, 5e-5])


@pytest.mark.usefixtures("eager_steps")
def test_phase1_features_from_the_bottom_cache_equal_those_from_images(records, examples):
    cfg = _config(augment=False)
    classifier = _classifier(cfg, records)
    bottom = phase_cache.cache_bottom(classifier, cfg, examples)
    assert bottom.cache.train is not None and bottom.cache.eval is not None
    derived = phase_cache.cache_outputs("phase1", classifier.features, cfg, examples, True,
                                        phase_cache.FromCache(bottom.split.below_head,
                                                              bottom.cache))
    direct = phase_cache.cache_outputs("phase1", classifier.features, cfg, examples, True)
    for got, want in ((derived.train, direct.train), (derived.eval, direct.eval)):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("eager_steps")
def test_no_cache_beyond_the_budget(records, examples):
    cfg = _config(feature_cache_max_mb=0, augment=False)
    classifier = _classifier(cfg, records, calibrate=False)
    phase1 = schedule.run_phase1(classifier, cfg, NUM_CLASSES, examples)
    phase2 = schedule.run_phase2(classifier, cfg, NUM_CLASSES, examples, phase1)
    assert not any([phase1.cached_train, phase1.cached_eval, phase2.cached_train,
                    phase2.cached_eval])
    assert "val_loss" in phase2.history


@pytest.mark.usefixtures("eager_steps")
def test_phase2_keeps_phase1_weights_when_it_never_beats_them(records, examples):
    cfg = _config(augment=False)
    classifier = _classifier(cfg, records)
    phase1 = schedule.run_phase1(classifier, cfg, NUM_CLASSES, examples)
    after1 = weights_by_layer(classifier.model)
    # A cross-entropy of 0 cannot be beaten: every phase-2 epoch is worse.
    phase2 = schedule.run_phase2(classifier, cfg, NUM_CLASSES, examples,
                                 dataclasses.replace(phase1, best_val_loss=0.0))
    assert phase2.best_epoch is None
    assert changed_layers(after1, weights_by_layer(classifier.model)) == set()


@pytest.mark.usefixtures("eager_steps")
def test_steps_per_epoch_repeat_the_data(records, examples):
    cfg = _config(phase1_epochs=2, phase1_steps_per_epoch=5, phase2_steps_per_epoch=3)
    classifier = _classifier(cfg, records, calibrate=False)
    schedule.train_two_phases(classifier, cfg, NUM_CLASSES, records["train"], records["eval"])
    assert int(classifier.head.optimizer.iterations.numpy()) == 2 * 5  # phase 1: cached
    assert int(classifier.model.optimizer.iterations.numpy()) == 3  # phase 2: images


@pytest.mark.usefixtures("eager_steps")
def test_history_and_checkpoint_of_the_restored_weights(records, tmp_path):
    cfg = _config(augment=False, checkpoints=True)
    classifier = _classifier(cfg, records)
    results = schedule.train_two_phases(classifier, cfg, NUM_CLASSES, records["train"],
                                        records["eval"], log_dir=str(tmp_path))
    history = json.loads((tmp_path / "history.json").read_text())
    assert [p["name"] for p in history] == ["phase1", "phase2"]
    assert history[1]["epochs"] == [1]
    # The last phase that improved checkpointed the weights training ended with.
    last = [r for r in results if r.best_epoch is not None][-1]
    restored = _classifier(cfg, records, calibrate=False)
    restored.model.load_weights(str(tmp_path / "checkpoints" / f"{last.name}_best.weights.h5"))
    images = next(iter(data.image_dataset(records["eval"], IMAGE_SIZE, BATCH)))[0]
    np.testing.assert_allclose(restored.model(images), classifier.model(images), atol=1e-6)


@pytest.mark.parametrize("restore", [True, False])
def test_checkpoint_holds_the_best_epoch_whether_or_not_it_is_restored(tmp_path, restore):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = str(tmp_path / "best.weights.h5")
    keep = fit_callbacks.KeepBest(baseline=float("inf"), restore=restore, full_model=model,
                              checkpoint_path=path)
    keep.set_model(model)
    keep.on_train_begin()
    values = {}
    for epoch, val_loss in enumerate([0.9, 0.5, 0.7]):  # epoch 1 is the best
        model.set_weights([np.full((2, 1), float(epoch + 1)), np.zeros(1)])
        values[epoch] = model.get_weights()
        keep.on_epoch_end(epoch, {"val_loss": val_loss})
    keep.on_train_end()
    assert keep.best_epoch == 1
    ending = values[1] if restore else values[2]
    for got, want in zip(model.get_weights(), ending):
        np.testing.assert_array_equal(got, want)
    saved = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    saved.load_weights(path)
    for got, want in zip(saved.get_weights(), values[1]):
        np.testing.assert_array_equal(got, want)


def test_no_checkpoint_when_no_epoch_beats_the_baseline(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    start = model.get_weights()
    keep = fit_callbacks.KeepBest(baseline=0.1, restore=True, full_model=model,
                              checkpoint_path=str(tmp_path / "best.weights.h5"))
    keep.set_model(model)
    keep.on_train_begin()
    model.set_weights([np.ones((2, 1)), np.ones(1)])
    keep.on_epoch_end(0, {"val_loss": 0.5})
    keep.on_train_end()
    assert keep.best_epoch is None and not (tmp_path / "best.weights.h5").exists()
    for got, want in zip(model.get_weights(), start):
        np.testing.assert_array_equal(got, want)


@pytest.mark.usefixtures("eager_steps")
def test_learns_with_imagenet_lite0(records):
    cfg = _config(weights="imagenet", phase1_epochs=8, phase2_epochs=2, learning_rate=1e-2,
                  augment=False)
    classifier = _classifier(cfg, records, calibrate=False)
    results = schedule.train_two_phases(classifier, cfg, NUM_CLASSES, records["train"],
                                        records["eval"])
    images, labels = next(iter(data.image_dataset(records["eval"], IMAGE_SIZE, 64)))
    accuracy = np.mean(np.argmax(classifier.model(images), axis=1) == labels.numpy())
    assert accuracy >= 0.9, (accuracy, [r.history["val_accuracy"] for r in results])


def test_class_weights_balance_the_classes():
    weights = schedule.class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights == {0: pytest.approx(4 / 9), 1: pytest.approx(4 / 3), 2: 0.0}


def test_from_scratch_is_one_phase_on_images_that_trains_every_layer(records):
    cfg = _config(weights="none", phase1_epochs=0, phase2_epochs=1, augment=False,
                  restore_best_weights=False)
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    before = weights_by_layer(classifier.base)
    results = schedule.train_two_phases(classifier, cfg, NUM_CLASSES, records["train"],
                                        records["eval"])
    assert [(r.name, r.cached_train, r.cached_eval) for r in results] == \
        [("scratch", False, False)]
    # Every layer with weights moved, BatchNorm included (its statistics are the data's).
    assert changed_layers(before, weights_by_layer(classifier.base)) == set(before)
