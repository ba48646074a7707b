"""Camera views of training garments (CAMERA_FRACTION): what they look like, that a bank is
repeatable, how they are mixed into batches, and that a run keeps its bank for --resume."""

import time

import numpy as np
import pytest
from test_train_export import tiny_config

import data_input
from fmnist_app import config as config_module
from fmnist_app import train
from fmnist_app.camera_views import make_camera_views
from fmnist_app.dataset import load_split


@pytest.fixture(scope="module")
def garments():
    images, labels = load_split("train")
    return images[:400], labels[:400]


def silhouette_iou(view, original):
    a, b = view > 30, original > 30
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_views_look_like_the_dataset_and_keep_their_labels(garments):
    images, _ = garments
    identities = np.arange(len(images))      # "labels" that name the source image
    views, sources = make_camera_views(24, seed=3, images=images, labels=identities)
    assert 20 <= len(views) <= 24                 # the preprocessing may refuse a few
    assert views.shape[1:] == (28, 28) and views.dtype == np.uint8
    for view in views:
        assert view.max() == 255                  # stretched like every dataset image
        assert view.min() == 0                    # on black, like the dataset
    # Each view is of the image it is labelled with: its silhouette (either way round: some
    # scenes are mirrored) matches its own source best among the images drawn, for most of
    # them (rotation and a hand change a few; chance would be 1 in 20).
    drawn = np.unique(sources)
    matched = 0
    for view, source in zip(views, sources):
        scores = {i: max(silhouette_iou(view, images[i]), silhouette_iou(view[:, ::-1], images[i]))
                  for i in drawn}
        matched += max(scores, key=scores.get) == source
    assert matched >= 0.5 * len(views)


def test_a_bank_is_the_same_for_the_same_seed_and_differs_for_another(garments):
    images, labels = garments
    first = make_camera_views(8, seed=5, images=images, labels=labels)
    again = make_camera_views(8, seed=5, images=images, labels=labels)
    other = make_camera_views(8, seed=6, images=images, labels=labels)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0][:4], other[0][:4])


def test_condition_weights_choose_the_scenes_and_equal_weights_keep_the_old_banks(
        garments, monkeypatch):
    images, labels = garments
    uniform = make_camera_views(6, seed=5, images=images, labels=labels)
    equal = make_camera_views(6, seed=5, images=images, labels=labels,
                              condition_weights=(2.0,) * 8)
    np.testing.assert_array_equal(uniform[0], equal[0])      # banks made before weights existed

    from fmnist_app import camera_views, scenes
    drawn = []
    real_render = scenes.render

    def recording_render(condition, image28, rng, count=1):
        drawn.append(condition)
        return real_render(condition, image28, rng, count)

    monkeypatch.setattr(camera_views.scenes, "render", recording_render)
    hand_only = tuple(float(name == "hand at the box edge") for name in scenes.GARMENT_CONDITIONS)
    make_camera_views(6, seed=5, images=images, labels=labels, condition_weights=hand_only)
    assert drawn == ["hand at the box edge"] * 6
    drawn.clear()
    make_camera_views(40, seed=5, images=images, labels=labels)
    assert len(set(drawn)) >= 6                 # uniform: (nearly) every condition in 40


def test_there_is_one_condition_weight_per_garment_condition():
    from fmnist_app import scenes
    assert len(config_module.Config().CAMERA_CONDITION_WEIGHTS) == len(scenes.GARMENT_CONDITIONS)


def test_all_zero_condition_weights_are_refused():
    with pytest.raises(config_module.ConfigError, match="CAMERA_CONDITION_WEIGHTS"):
        config_module.from_dict({"CAMERA_CONDITION_WEIGHTS": [0] * 8})


def test_mixed_in_sources_make_their_share_of_the_examples():
    main = np.zeros((50, 28, 28), np.uint8), np.zeros(50, np.int64)
    camera = np.full((30, 28, 28), 255, np.uint8), np.ones(30, np.int64)
    outliers = np.full((20, 28, 28), 128, np.uint8), np.full(20, 10, np.int64)
    ds = data_input.train_dataset(*main, batch_size=500, augment_prob=0, seed=0,
                                  mixed_in=[(*outliers, 0.15), (*camera, 0.3)])
    _, labels = next(iter(ds))
    shares = np.bincount(labels.numpy(), minlength=11) / 500
    assert shares[0] == pytest.approx(0.55, abs=0.07)
    assert shares[1] == pytest.approx(0.30, abs=0.07)
    assert shares[10] == pytest.approx(0.15, abs=0.05)


def test_fractions_that_leave_no_dataset_images_are_refused():
    with pytest.raises(config_module.ConfigError, match="CAMERA_FRACTION"):
        config_module.from_dict({"OUTLIER_FRACTION": 0.5, "CAMERA_FRACTION": 0.5})


def test_a_run_keeps_its_bank_and_a_resumed_run_reuses_it(fake_data_dir, tmp_path, monkeypatch):
    cfg = tiny_config(fake_data_dir, tmp_path, STEPS=10, EVAL_EVERY=10, CAMERA_FRACTION=0.3,
                      CAMERA_VIEWS=100)
    train.train(cfg)
    bank = cfg.run_dir / train.CAMERA_BANK_FILENAME
    with np.load(bank) as saved:
        views = saved["views"]
    assert 0 < len(views) <= 100

    def must_not_render(*args):
        raise AssertionError("a resumed run rendered its bank again")

    monkeypatch.setattr(train, "make_camera_views", must_not_render)
    train.train(tiny_config(fake_data_dir, tmp_path, STEPS=20, EVAL_EVERY=10,
                            CAMERA_FRACTION=0.3, CAMERA_VIEWS=100), resume=True)


def test_a_failure_stops_the_rendering_at_once(garments, monkeypatch):
    # Ctrl-C or an error in one view must not leave the other 16,000 to be rendered first.
    from fmnist_app import camera_views
    calls = []

    def failing_view(image28, rng, condition_p=None):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        time.sleep(0.005)                   # a view takes time, as a real one (~15 ms) does
        return image28

    monkeypatch.setattr(camera_views, "camera_view", failing_view)
    images, labels = garments
    with pytest.raises(RuntimeError, match="boom"):
        make_camera_views(400, seed=1, images=images, labels=labels)
    assert len(calls) < 40
