"""Train-only augmentation from config."""
import keras
import numpy as np

from trainer import augment, data
from trainer.train_config import TrainConfig
from trainer_helpers import IMAGE_SIZE


def test_layers_follow_the_config():
    assert augment.build_augmenter(TrainConfig(augment=False)) is None
    assert augment.build_augmenter(TrainConfig(
        augment=True, augment_flip="none", augment_rotation=0, augment_zoom=0, augment_contrast=0)) is None
    layers = augment.build_augmenter(TrainConfig(augment=True, augment_flip="vertical",
                                                  augment_zoom=0)).layers
    assert [type(layer) for layer in layers] == [
        keras.layers.RandomFlip, keras.layers.RandomRotation, keras.layers.RandomContrast]
    assert layers[0].mode == "vertical"


def test_training_batches_change_every_pass_and_stay_in_range(records):
    augmenter = augment.build_augmenter(TrainConfig(augment=True, augment_rotation=0.2,
                                                   augment_zoom=0.2))
    plain = data.image_dataset(records["train"], IMAGE_SIZE, 24)
    augmented = data.image_dataset(records["train"], IMAGE_SIZE, 24, augmenter=augmenter)
    original = next(iter(plain))[0].numpy()
    first, second = (next(iter(augmented))[0].numpy() for _ in range(2))
    assert not np.allclose(first, original) and not np.allclose(first, second)
    assert first.min() >= 0 and first.max() <= 255
