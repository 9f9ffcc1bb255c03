"""Every backbone (weights=none, 32x32): what each phase may and may not change.

Both phases train on images here (cache_features=false, augmentation on), so the base
really runs inside the trained model, with the outer call in training mode. Keras' step
functions run eagerly in this module: tracing six large backbones twice each costs
minutes on two cores, and the Python that runs is the same. test_schedule.py checks the
same invariants with traced functions, in the cached and uncached modes.
"""
import numpy as np
import pytest

from trainer import backbones, data, model as model_lib, phase_cache, schedule
from trainer.train_config import TrainConfig
from trainer_helpers import (IMAGE_SIZE, NUM_CLASSES, calibrate_batchnorm, changed_layers,
                             unfrozen_by, weights_by_layer)

BATCH = 12  # divides both splits: one batch shape, one trace

pytestmark = pytest.mark.usefixtures("eager_steps")


@pytest.mark.parametrize("backbone", list(backbones.BACKBONES))
def test_phases_change_only_what_the_config_unfroze(backbone, records):
    cfg = TrainConfig(backbone=backbone, weights="none", image_size=IMAGE_SIZE,
                      batch_size=BATCH, phase1_epochs=1, phase2_epochs=1, cache_features=False,
                      augment=True, restore_best_weights=False, tensorboard=False,
                      checkpoints=False)
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    base = classifier.base
    images = next(iter(data.image_dataset(records["train"], IMAGE_SIZE, BATCH)))[0]
    calibrate_batchnorm(base, images.numpy())
    examples = phase_cache.Examples.read(records["train"], records["eval"])
    start = weights_by_layer(base)

    phase1 = schedule.run_phase1(classifier, cfg, NUM_CLASSES, examples)
    after1 = weights_by_layer(base)
    assert changed_layers(start, after1) == set(), "phase 1 changed the base"
    assert not phase1.cached_train and phase1.learning_rates == [pytest.approx(1e-3)]

    head_before = weights_by_layer(classifier.head)
    phase2 = schedule.run_phase2(classifier, cfg, NUM_CLASSES, examples, phase1)
    first = model_lib.top_start_index(base, backbones.get_backbone(backbone).top_start, 0)
    unfrozen = unfrozen_by(base, first)
    assert unfrozen and unfrozen <= set(phase2.trainable_layers)
    # Every unfrozen layer moved; nothing else did, BatchNorm statistics included.
    assert changed_layers(after1, weights_by_layer(base)) == unfrozen
    assert changed_layers(head_before, weights_by_layer(classifier.head)) == set(head_before)

    # A fresh optimizer at learning_rate * phase2_lr_factor, epochs numbered on.
    assert phase2.learning_rates == [pytest.approx(1e-4)]
    assert phase2.epochs == [1]
    steps = len(examples.train_labels) // BATCH
    assert int(classifier.model.optimizer.iterations.numpy()) == steps

    # The cut used for cached phase-2 training computes exactly the model.
    split = model_lib.split_base(classifier, first)
    np.testing.assert_allclose(split.trainable(split.frozen(images)),
                               classifier.model(images), rtol=1e-5, atol=1e-6)
