"""Both model builders: shapes, parameter and MAC budgets, hyperparameters from a dict or keras-tuner."""

import keras_tuner as kt
import numpy as np
import pytest

from emo7ion.training import models


def test_edge_model_fits_the_pi_budget():
    model = models.build("edge")
    size = models.describe(model)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    assert 300_000 < size["parameters"] <= models.EDGE_MAX_PARAMS
    assert 20_000_000 < size["macs"] <= models.EDGE_MAX_MACS
    probs = np.asarray(model(np.zeros((2, 48, 48, 1), np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_edge_ops_are_int8_friendly():
    allowed = {"InputLayer", "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Dropout", "Flatten", "Dense"}
    assert {type(layer).__name__ for layer in models.build("edge").layers} <= allowed


def test_edge_l_is_edge_twice_as_wide_within_the_pi5_budget():
    edge, large = models.describe(models.build("edge")), models.describe(models.build("edge-l"))
    assert 3.5 * edge["macs"] < large["macs"] <= models.EDGE_L_MAX_MACS
    allowed = {"InputLayer", "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Dropout", "Flatten", "Dense"}
    assert {type(layer).__name__ for layer in models.build("edge-l").layers} <= allowed


def test_seed_model_matches_the_original_report():
    size = models.describe(models.build("seed"))
    assert 4_300_000 < size["parameters"] < 4_700_000  # "about 4.5 M parameters"
    assert 270_000_000 < size["macs"] < 310_000_000   # "290 M multiply-accumulates"


def test_every_edge_search_point_stays_in_budget():
    largest = {"stem_filters": 32, "block2_filters": 48, "block3_filters": 96, "block4_filters": 160,
               "dense_units": 384}
    size = models.describe(models.build("edge", largest))
    assert size["macs"] <= models.EDGE_MAX_MACS and size["parameters"] <= models.EDGE_MAX_PARAMS


def test_hparams_from_dict_and_from_keras_tuner():
    model = models.build("edge", {"dense_units": 128})
    assert model.get_layer("fc").units == 128 and model.hparams["dense_units"] == 128
    with pytest.raises(ValueError, match="dense_units=100"):
        models.build("edge", {"dense_units": 100})
    hp = kt.HyperParameters()
    models.build("seed", hp)
    assert {"block3_filters", "block4_filters", "dense1_units", "dense2_units", "dropout_conv"} <= set(hp.values)
    with pytest.raises(ValueError, match="unknown model"):
        models.build("resnet")
