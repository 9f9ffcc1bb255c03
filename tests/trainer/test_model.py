"""Head from config, unfreezing rules, and the cut between frozen and trained layers."""
import keras
import numpy as np
import pytest

from trainer import backbones, model as model_lib
from trainer.train_config import TrainConfig
from trainer_helpers import IMAGE_SIZE, NUM_CLASSES


def _lite0(**overrides) -> model_lib.ImageClassifier:
    cfg = TrainConfig(backbone="efficientnet_lite0", image_size=IMAGE_SIZE, **overrides)
    return model_lib.build_classifier(cfg, NUM_CLASSES)


def _images(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(
        "float32")


def test_gap_head_moves_pooling_in_front_of_the_head():
    c = _lite0(dense_units=[16], dropout=0.3)
    assert c.pool is not None and c.features.output.shape == (None, 1280)
    names = [layer.name for layer in c.head.layers]
    assert names == ["head_input", "head_dropout_0", "head_dense_0", "head_dropout_out",
                     "probabilities"]
    out = c.model(_images())
    assert out.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(np.sum(out, axis=1), 1.0, rtol=1e-5)


def test_conv_block_flatten_and_l2_head():
    c = _lite0(conv_block_filters=8, pooling="flatten", dense_units=[], dropout=0.0, l2=1e-3)
    assert c.pool is None and c.features.output.shape == (None, 1, 1, 1280)
    names = [layer.name for layer in c.head.layers]
    assert names == ["head_input", "head_conv", "head_flatten", "probabilities"]
    c.model(_images())
    assert len(c.model.losses) == 2  # the conv's and the output layer's kernels


def test_top_start_by_name_prefix_and_count():
    base = _lite0().base
    names = [layer.name for layer in base.layers]
    assert names[model_lib.top_start_index(base, "block6d_expand_conv", 0)] == \
        "block6d_expand_conv"
    assert names[model_lib.top_start_index(base, "block7a", 0)] == "block7a_expand_conv"
    assert model_lib.top_start_index(base, "ignored", 5) == len(names) - 5
    with pytest.raises(ValueError, match="train.unfreeze_from.*'block9'"):
        model_lib.top_start_index(base, "block9", 0)


def test_unfreeze_keeps_batchnorm_and_the_bottom_frozen():
    base = _lite0().base
    first = model_lib.top_start_index(base, "block7a", 0)
    unfrozen = model_lib.unfreeze_top(base, first)
    assert unfrozen == ["block7a_expand_conv", "block7a_dwconv", "block7a_project_conv",
                        "top_conv"]
    for i, layer in enumerate(base.layers):
        if isinstance(layer, keras.layers.BatchNormalization) or i < first:
            assert not layer.trainable and not layer.trainable_weights


@pytest.mark.parametrize("backbone", list(backbones.BACKBONES))
def test_default_top_is_a_clean_cut(backbone):
    """Every layer of the named top block comes after its first layer (none is left
    frozen by layer order), and the cut needs one tensor from below."""
    base = backbones.get_backbone(backbone).build_headless((IMAGE_SIZE, IMAGE_SIZE, 3), None)
    prefix = backbones.get_backbone(backbone).top_start
    first = model_lib.top_start_index(base, prefix, 0)
    assert not [layer.name for layer in base.layers[:first] if layer.name.startswith(prefix)]
    assert len(model_lib.cut_tensors(base, first)) == 1


def test_split_inside_a_residual_block_needs_the_skip_tensor_too():
    c = _lite0()
    names = [layer.name for layer in c.base.layers]
    split = model_lib.split_base(c, names.index("block6c_dwconv"))
    assert len(split.frozen.outputs) == 2  # the padded block input and the skip
    images = _images()
    np.testing.assert_allclose(split.trainable(split.frozen(images)), c.model(images),
                               rtol=1e-5, atol=1e-6)


def test_no_split_when_the_whole_base_is_unfrozen():
    c = _lite0()
    assert model_lib.split_base(c, 1) is None


def test_from_scratch_every_layer_trains_batchnorm_included():
    cfg = TrainConfig(backbone="efficientnet_lite0", weights="none", phase1_epochs=0,
                      image_size=IMAGE_SIZE)
    assert cfg.from_scratch
    classifier = model_lib.build_classifier(cfg, NUM_CLASSES)
    assert classifier.base.trainable
    bn = next(layer for layer in classifier.base.layers
              if isinstance(layer, keras.layers.BatchNormalization))
    before = bn.moving_mean.numpy().copy()
    classifier.model(_images(4), training=True)  # BatchNorm in training mode: stats move
    assert not np.allclose(bn.moving_mean.numpy(), before)
    # Pretrained: the base runs in inference mode whatever the call says.
    pretrained = _lite0()
    bn = next(layer for layer in pretrained.base.layers
              if isinstance(layer, keras.layers.BatchNormalization))
    before = bn.moving_mean.numpy().copy()
    pretrained.model(_images(4), training=True)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
