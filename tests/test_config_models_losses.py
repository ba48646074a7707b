"""Config validation, the model registry and the losses."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from fmnist_app import config
from fmnist_app.losses import cross_entropy, focal, weighted_cross_entropy
from fmnist_app.models import MODELS, create_model
from fmnist_app.optim import OPTIMIZERS, make_optimizer

# Parameter counts the seed study reports for its five architectures.
SEED_PARAMETERS = {
    "simple_model_1": 114_000, "simple_model_2": 566_000, "inception": 343_000,
    "resnet": 1_274_000, "inception_resnet": 982_000,
}


# --------------------------------------------------------------------------- config

RECIPES = [Path(ROOT, "config.json"), *sorted(Path(ROOT, "configs").glob("*.json"))]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_load_and_round_trip(tmp_path, path):
    loaded = config.load(path)
    assert loaded.MODEL in MODELS
    (tmp_path / "again.json").write_text(loaded.to_json())
    assert config.load(tmp_path / "again.json") == loaded


@pytest.mark.parametrize("values, pattern", [
    ({"LERNING_RATE": 0.1}, "unknown config key 'LERNING_RATE'"),
    ({"BATCH_SIZE": "64"}, "BATCH_SIZE must be int, got '64'"),
    ({"BATCH_SIZE": 0}, r"BATCH_SIZE must be in \[1, 65536\], got 0"),
    ({"AUGMENT_PROB": 1.5}, r"AUGMENT_PROB must be in \[0, 1\]"),
    ({"LOSS": "hinge"}, "LOSS must be one of ce, weighted_ce, focal, got 'hinge'"),
    ({"CLASS_WEIGHTS": [1, 2]}, "CLASS_WEIGHTS must be a list of 10 non-negative numbers"),
    ({"VALIDATION_SIZE": 4005}, "VALIDATION_SIZE must be a multiple of 10"),
    ({"VALIDATION_SIZE": 0, "EARLY_STOPPING_PATIENCE": 3}, "needs a validation set"),
    ({"MODEL_DIR": "../elsewhere"}, "MODEL_DIR must be a plain folder name"),
])
def test_bad_config_values_name_the_key(values, pattern):
    with pytest.raises(config.ConfigError, match=pattern) as err:
        config.from_dict(values)
    assert "\n" not in str(err.value)


def test_ints_are_accepted_for_floats_and_overrides_apply(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"LEARNING_RATE": 1, "STEPS": 10}))
    loaded = config.load(path, STEPS=5, OUTPUT_DIR=None)
    assert loaded.LEARNING_RATE == 1.0 and loaded.STEPS == 5 and loaded.OUTPUT_DIR == "output_dir"


@pytest.mark.parametrize("text, pattern", [
    (None, "not found"), ("{nope", "not valid JSON"), ("[1, 2]", "one JSON object"),
])
def test_unreadable_config_file(tmp_path, text, pattern):
    path = tmp_path / "c.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(config.ConfigError, match=pattern):
        config.load(path)


# --------------------------------------------------------------------------- models

@pytest.mark.parametrize("name", list(MODELS))
def test_model_builds_and_gives_finite_logits(name):
    model = create_model(name)
    images = tf.random.uniform((2, 28, 28, 1), 0, 255)
    logits = model(images, training=False)
    assert logits.shape == (2, 10) and logits.dtype == tf.float32
    assert np.all(np.isfinite(logits.numpy()))
    if name in SEED_PARAMETERS:
        assert abs(model.count_params() / SEED_PARAMETERS[name] - 1) <= 0.10
    assert model.count_params() <= 1_300_000


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="known models: simple_model_1, simple_model_2"):
        create_model("vgg16")


# --------------------------------------------------------------------------- losses

LOGITS = tf.constant(np.random.default_rng(0).normal(0, 3, (64, 10)), tf.float32)
LABELS = tf.constant(np.arange(64) % 10)


def test_focal_with_gamma_zero_equals_cross_entropy():
    np.testing.assert_allclose(focal(0.0)(LABELS, LOGITS), cross_entropy()(LABELS, LOGITS),
                               rtol=1e-5, atol=1e-6)


def test_focal_down_weights_easy_examples():
    plain, focused = cross_entropy()(LABELS, LOGITS).numpy(), focal(2.0)(LABELS, LOGITS).numpy()
    assert np.all(focused <= plain + 1e-6)
    easiest = np.argmin(plain)
    assert focused[easiest] / plain[easiest] < 0.5 * focused.sum() / plain.sum() + 0.5


def test_weighted_cross_entropy_scales_by_true_class():
    weights = [2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    ratio = weighted_cross_entropy(weights)(LABELS, LOGITS) / cross_entropy()(LABELS, LOGITS)
    np.testing.assert_allclose(ratio, np.array(weights)[LABELS.numpy()], rtol=1e-5)


def test_label_smoothing_raises_the_loss_of_a_confident_correct_prediction():
    confident = tf.constant([[20.0] + [0.0] * 9])
    label = tf.constant([0])
    smoothed = float(cross_entropy(0.1)(label, confident)[0])
    assert smoothed > float(cross_entropy()(label, confident)[0])


# --------------------------------------------------------------------------- optimizers

@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_descends_and_decays_weights_only_when_asked(name):
    recipe = config.Config(OPTIMIZER=name, LR_SCHEDULE="cosine", LEARNING_RATE=0.05,
                           WARMUP_STEPS=0, STEPS=100, WEIGHT_DECAY=0.1)
    optimizer = make_optimizer(recipe)
    w = tf.Variable([3.0, -2.0])
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(w * w)
        optimizer.apply_gradients([(tape.gradient(loss, w), w)])
    assert float(tf.reduce_sum(w * w)) < 13.0 / 2        # from 13: half way down at least
    # With no gradient at all, only a decoupled weight decay moves a weight.
    idle = tf.Variable([1.0])
    optimizer = make_optimizer(recipe)
    optimizer.apply_gradients([(tf.zeros([1]), idle)])
    decays = name in ("adamw", "sgd")
    assert (float(idle[0]) < 1.0) == decays
