"""The live path in real rooms: every scene condition on a few rendered frames, the rejection
path, calibration maths, per-frame failures, and the window and --no-gui agreeing."""

import csv
import dataclasses
import json
import sys

import cv2
import numpy as np
import pytest

import demo_program
from conftest import ROOT
from fmnist_app import calibration, novelty, outliers, scenes
from fmnist_app.dataset import CLASS_NAMES, load_split
from fmnist_app.live import pipeline as live
from fmnist_app.outliers import make_outliers
from fmnist_app.preprocess import prepare_frame


@pytest.fixture(scope="module")
def test_set():
    return load_split("test")


def silhouette_iou(recovered, original):
    """Overlap of the garment shapes, whichever way the shading went."""
    a, b = recovered > 30, original > 30
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def bounding_box(mask):
    """(height, width, share of it the mask fills) of a mask's bounding box."""
    rows, cols = np.nonzero(mask)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    return height, width, len(rows) / (height * width)


def rendered_inputs(condition, images, seed, count=6):
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), count, replace=False)
    outputs = [prepare_frame(scenes.render(condition, images[i], rng)[0], scenes.BOX)[1]
               for i in chosen]
    return chosen, outputs


# Off-centre/rotated scenes turn the garment, so their shape is compared after the turn
# only through the classifier (perf/live_accuracy.py); the hand and the mirror change it.
SHAPE_CONDITIONS = ["plain light background", "light garment on dark", "textured background",
                    "colour on colour", "low contrast"]


@pytest.mark.parametrize("condition", SHAPE_CONDITIONS)
def test_each_condition_gives_the_garment_back_bright_on_black(condition, test_set):
    images, _ = test_set
    chosen, outputs = rendered_inputs(condition, images, seed=11)
    ious = [silhouette_iou(out, images[i]) for i, out in zip(chosen, outputs)]
    assert np.median(ious) > 0.75, ious
    for out in outputs:
        rows, cols = np.nonzero(out)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 == 28      # trimmed and fitted to 28
        assert out.max() == 255 and (out == 0).mean() > 0.15  # bright garment, black ground


def test_a_mirrored_scene_gives_the_mirrored_garment(test_set):
    images, _ = test_set
    chosen, outputs = rendered_inputs("mirrored (shoes face right)", images, seed=12)
    mirrored = [silhouette_iou(out, images[i][:, ::-1]) for i, out in zip(chosen, outputs)]
    assert np.median(mirrored) > 0.75


def test_a_hand_holding_the_garment_is_mostly_left_out(test_set):
    images, _ = test_set
    rng = np.random.default_rng(13)
    better = 0
    for index in rng.choice(len(images), 8, replace=False):
        frame = scenes.render("hand at the box edge", images[index], rng)[0]
        out = prepare_frame(frame, scenes.BOX)[1]
        better += silhouette_iou(out, images[index]) > 0.6
    assert better >= 5


@pytest.mark.parametrize("condition", ["empty box", "texture only"])
def test_nothing_in_the_box_is_mostly_reported_empty(condition, test_set):
    images, _ = test_set
    _, outputs = rendered_inputs(condition, images, seed=14, count=8)
    assert sum(not out.any() for out in outputs) >= 5


def test_a_cushion_reaches_the_model_as_one_square_object(test_set):
    # The benchmark's cushion tests the rejection, so the preprocessing must hand it over
    # whole: a solid, squarish blob that fills most of its bounding box, as a bag would.
    images, _ = test_set
    _, outputs = rendered_inputs("cushion", images, seed=15, count=8)
    found = [out for out in outputs if out.any()]
    assert len(found) >= 6
    for out in found:
        height, width, filled = bounding_box(out > 20)
        assert min(height, width) >= 20                   # squarish, not a sliver
        assert filled > 0.6                                # solid (a turned square fills 2/3)


def test_scenes_are_repeatable_and_camera_sized(test_set):
    images, _ = test_set
    for condition in scenes.CONDITIONS:
        first = scenes.render(condition, images[0], np.random.default_rng(3), count=2)
        again = scenes.render(condition, images[0], np.random.default_rng(3), count=2)
        assert first[0].shape == (480, 640, 3) and first[0].dtype == np.uint8
        np.testing.assert_array_equal(first[1], again[1])
        assert not np.array_equal(first[0], first[1])          # fresh noise per frame


def test_an_ideal_camera_films_the_same_scene_without_noise_blur_or_jpeg(test_set):
    images, _ = test_set
    webcam = scenes.render("plain light background", images[0], np.random.default_rng(2), 2)
    ideal = scenes.render("plain light background", images[0], np.random.default_rng(2), 2,
                          scenes.ideal_camera)
    # The same scene and tremble: the frames differ by the artefacts only, a few levels.
    assert np.abs(webcam[0].astype(int) - ideal[0].astype(int)).mean() < 8
    # Two frames of the plain background above the box: with a webcam each has its own
    # sensor noise; with an ideal camera only the tremble moves the smooth light (one level).
    def frame_to_frame(pair):
        return np.abs(pair[0][:60].astype(int) - pair[1][:60].astype(int)).max()
    assert frame_to_frame(ideal) <= 1 < 4 <= frame_to_frame(webcam)


def test_sensor_noise_reaches_every_channel():
    """A grey wall filmed twice: each of B, G and R carries the scene's noise sigma in
    both the plain exposure and the webcam frames (OpenCV's randn, given one number, fills
    the first channel only)."""
    wall = scenes.plain(scenes.grey(0.5))
    light = np.full((scenes.HEIGHT, scenes.WIDTH, 1), 200.0, np.float32)
    exposed = scenes.expose(wall, light[..., 0], 6.0).astype(float)
    scene = scenes.Scene(wall, light, blur_sigma=0.0, noise_sigma=6.0, jpeg_quality=None)
    first, second = (frame.astype(float) for frame in
                     scenes.frames(scene, 2, np.random.default_rng(0)))
    for channel in range(3):
        assert 5.0 < exposed[..., channel].std() < 7.0
        assert 5.0 < (first - second)[..., channel].std() / np.sqrt(2) < 7.0


# --------------------------------------------------------------------------- rejection

class StubModel:
    """Logits from the image: a clearly brighter left half -> class 7, else class 0 (so a
    symmetric picture gets the same class in both views, whatever a pixel of resampling
    does); strength = how much of the picture is lit, so a faint picture gets a flat, unsure
    answer. Like a graph exported before the novelty score, it has no features."""

    def logits(self, images):
        images = np.asarray(images, np.float32)
        strength = images.mean(axis=(1, 2)) / 100.0
        left = images[:, :, :14].sum(axis=(1, 2)) > 1.5 * images[:, :, 14:].sum(axis=(1, 2))
        logits = np.zeros((len(images), 10))
        logits[np.arange(len(images)), np.where(left, 7, 0)] = strength
        return logits

    def logits_and_features(self, images):
        return self.logits(images), None


class StubModelWithFeatures(StubModel):
    """StubModel whose one feature is how much of the picture is lit."""

    def logits_and_features(self, images):
        images = np.asarray(images, np.float32)
        return self.logits(images), images.mean(axis=(1, 2)).reshape(-1, 1) / 100.0


def classifier(reject_below):
    return live.Classifier(StubModel(), calibration.Calibration(1.0, reject_below, 0.98, "test"))


def frame_with_garment(level):
    frame = np.full((480, 640, 3), 220, np.uint8)
    frame[150:330, 250:390] = 220 - level              # a dark rectangle in the guide box
    return frame


def test_a_frame_below_the_threshold_is_no_garment_and_above_it_a_garment():
    strong = live.Pipeline(classifier(0.3)).process(frame_with_garment(150), 0.6)
    assert strong.verdict == live.GARMENT and strong.smoothed[1] >= 0.3
    unsure = live.Pipeline(classifier(0.9)).process(frame_with_garment(150), 0.6)
    assert unsure.verdict == live.NO_GARMENT and unsure.top3            # closest class kept
    empty = live.Pipeline(classifier(0.3)).process(np.full((480, 640, 3), 220, np.uint8), 0.6)
    assert empty.verdict == live.EMPTY and empty.empty and not empty.top3


def novelty_classifier(lit_levels, novelty_above):
    """A StubModelWithFeatures classifier whose novelty fit puts every class at one of
    `lit_levels` (feature values), unit variance, refusing scores over `novelty_above`."""
    means = [[level] for level in lit_levels]
    return live.Classifier(StubModelWithFeatures(), calibration.Calibration(
        1.0, 0.3, 0.99, "test", novelty_above, means, [[1.0]]))


def test_a_confident_frame_unlike_every_class_is_no_garment():
    frame = frame_with_garment(150)
    # With every class at 0 the score is the feature squared: the frame's feature value.
    lit = live.Pipeline(novelty_classifier([0.0] * 10, 100.0)).process(frame, 0.6).novelty ** 0.5
    # The same frame with a class mean at its own feature value, then every class far from it.
    familiar = live.Pipeline(novelty_classifier([lit] * 10, 1.0)).process(frame, 0.6)
    assert familiar.verdict == live.GARMENT and familiar.novelty < 1e-9
    novel = live.Pipeline(novelty_classifier([lit + 3] * 10, 1.0)).process(frame, 0.6)
    assert novel.verdict == live.NO_GARMENT and novel.novelty == pytest.approx(9.0)
    assert novel.smoothed[1] >= 0.3                      # confident, yet refused


def test_novelty_is_the_squared_mahalanobis_distance_to_the_nearest_class():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 200)
    centres = rng.normal(0, 10, (10, 3))
    features = centres[labels] + rng.normal(0, [1.0, 2.0, 0.5], (len(labels), 3))
    means, precision = novelty.fit(features, labels, 10)
    np.testing.assert_allclose(means, centres, atol=0.5)        # 3 standard errors
    at_means = novelty.scores(means, means, precision)
    np.testing.assert_allclose(at_means, 0.0, atol=1e-9)
    # Two standard deviations along the tight axis count as far as two along the wide one.
    steps = means[[0, 0]] + np.array([[0, 4.0, 0], [0, 0, 1.0]])
    np.testing.assert_allclose(novelty.scores(steps, means, precision), [4.0, 4.0], rtol=0.1)
    with pytest.raises(ValueError, match="class"):
        novelty.fit(features[labels < 9], labels[labels < 9], 10)


def test_a_novelty_fit_survives_its_json_and_a_half_one_is_a_one_line_error(tmp_path):
    graph = tmp_path / "frozen_inference_graph.pb"
    fitted = novelty_classifier([k / 4 for k in range(10)], 5.0).calibration   # exact in 7 digits
    calibration.save(fitted, tmp_path)
    again = calibration.load_for(graph)
    assert again == fitted
    features = np.array([[0.3], [7.0]])
    np.testing.assert_allclose(again.novelty(features), fitted.novelty(features))
    values = json.loads((tmp_path / calibration.CALIBRATION_FILENAME).read_text())
    del values["precision"]
    (tmp_path / calibration.CALIBRATION_FILENAME).write_text(json.dumps(values))
    with pytest.raises(calibration.CalibrationError, match="come together") as err:
        calibration.load_for(graph)
    assert "\n" not in str(err.value)


def test_without_calibration_nothing_is_rejected():
    uncalibrated = live.Classifier(StubModel(), calibration.UNCALIBRATED)
    result = live.Pipeline(uncalibrated).process(frame_with_garment(150), 0.6)
    assert result.verdict == live.GARMENT


def test_rejection_reaches_the_no_gui_csv(tmp_path, monkeypatch):
    image = tmp_path / "garment.png"
    cv2.imwrite(str(image), frame_with_garment(150))
    monkeypatch.setattr(live, "load_classifier", lambda path: classifier(0.9))
    monkeypatch.setattr("fmnist_app.live.headless.load_classifier", lambda path: classifier(0.9))
    out = tmp_path / "rows.csv"
    demo_program.main(["--no-gui", "--image", str(image), "--predictions", str(out)])
    row = next(csv.DictReader(out.open()))
    assert row["verdict"] == live.NO_GARMENT and row["top1_class"] in CLASS_NAMES
    assert row["novelty"] == ""                     # this model has no features


def test_the_novelty_score_reaches_the_no_gui_csv(tmp_path, monkeypatch):
    image = tmp_path / "garment.png"
    cv2.imwrite(str(image), frame_with_garment(150))
    monkeypatch.setattr("fmnist_app.live.headless.load_classifier",
                        lambda path: novelty_classifier([9.0] * 10, 1.0))
    out = tmp_path / "rows.csv"
    demo_program.main(["--no-gui", "--image", str(image), "--predictions", str(out)])
    row = next(csv.DictReader(out.open()))
    assert row["verdict"] == live.NO_GARMENT and float(row["novelty"]) > 1.0


def test_a_frame_too_small_for_the_box_is_a_bad_frame_not_a_crash():
    pipeline = live.Pipeline(classifier(0.3))
    result = pipeline.process(np.zeros((8, 8, 3), np.uint8), 0.6)       # a 7-pixel crop
    assert result.verdict == live.BAD_FRAME and "8x8" in result.problem
    after = pipeline.process(frame_with_garment(150), 0.6)
    assert after.verdict == live.GARMENT                        # the next frame is fine


def test_no_gui_keeps_going_past_a_tiny_image(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_tiny.png"), np.zeros((6, 6, 3), np.uint8))
    cv2.imwrite(str(folder / "b_garment.png"), frame_with_garment(150))
    monkeypatch.setattr("fmnist_app.live.headless.load_classifier", lambda path: classifier(0.3))
    out = tmp_path / "rows.csv"
    demo_program.main(["--no-gui", "--image", str(folder), "--predictions", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [row["verdict"] for row in rows] == [live.BAD_FRAME, live.GARMENT]
    assert "frame 0: frame skipped" in capsys.readouterr().err


# --------------------------------------------------------------------------- calibration

def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    true_probabilities = calibration.softmax(logits / 2.5)
    labels = np.array([rng.choice(10, p=p) for p in true_probabilities])
    assert abs(calibration.fit_temperature(logits, labels) - 2.5) < 0.25
    fitted = calibration.Calibration(calibration.fit_temperature(logits, labels))
    assert calibration.expected_calibration_error(fitted.probabilities(logits), labels) < \
        calibration.expected_calibration_error(calibration.softmax(logits), labels)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    labels = np.zeros(1000, int)
    probabilities = np.full((1000, 10), 0.0)
    probabilities[:, 0] = 1.0
    assert calibration.expected_calibration_error(probabilities, labels) == 0.0
    assert calibration.expected_calibration_error(probabilities, np.ones(1000, int)) == 1.0


def test_rejection_threshold_keeps_the_asked_share():
    tops = np.linspace(0.2, 1.0, 1001)
    threshold = calibration.rejection_threshold(tops, 0.95)
    assert np.mean(tops >= threshold) == pytest.approx(0.95, abs=0.002)


def test_a_broken_calibration_file_is_a_one_line_error(tmp_path):
    graph = tmp_path / "frozen_inference_graph.pb"
    assert calibration.load_for(graph) == calibration.UNCALIBRATED
    (tmp_path / calibration.CALIBRATION_FILENAME).write_text(json.dumps({"temperature": -1}))
    with pytest.raises(calibration.CalibrationError, match="fmnist_app.calibrate") as err:
        calibration.load_for(graph)
    assert "\n" not in str(err.value)
    (tmp_path / calibration.CALIBRATION_FILENAME).write_text('{"temperature": 1.5, "x": 1}')
    with pytest.raises(calibration.CalibrationError):
        calibration.load_for(graph)


def test_two_views_average_the_image_and_its_mirror():
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, :, :5] = 255
    images[1, :, -5:] = 255                                       # the mirror of image 0
    logits = calibration.two_view_logits(StubModel(), images)
    np.testing.assert_allclose(logits[0], logits[1])              # same answer either way


# --------------------------------------------------------------------------- outliers

def test_outliers_look_like_the_demo_output_and_are_seeded(test_set):
    images, _ = test_set
    bank = make_outliers(60, seed=4, garments=images[:100])
    assert bank.shape == (60, 28, 28) and bank.dtype == np.uint8
    assert (bank.reshape(60, -1).max(axis=1) == 255).all()
    np.testing.assert_array_equal(bank, make_outliers(60, seed=4, garments=images[:100]))


def test_boxy_outliers_are_solid_rectangles_of_any_proportions():
    rng = np.random.default_rng(5)
    ratios = []
    for _ in range(20):
        mask, values = outliers.boxy(rng)
        height, width, filled = bounding_box(mask)
        assert filled > 0.5                                # solid, if turned
        assert values.min() >= 0.05 and values.max() <= 1.0
        ratios.append(height / width)
    assert min(ratios) < 0.8 and max(ratios) > 1.25                      # wide ones and tall ones


# --------------------------------------------------------------------------- real photographs

def test_real_photographs_are_refused_as_the_goal_asks():
    """perf/real_photos.py's 354 frames of real photographs and faces (scikit-image's
    samples), with the shipped model: at most 5% of them taken for a garment (the issue's
    limit for non-garments; measured: 3.7%), and fewer than the same calibration accepts by
    confidence alone. All of them: a few photos are 33 frames, where one frame is 3%."""
    sys.path.insert(0, str(ROOT / "perf"))
    import real_photos

    from fmnist_app.dataset import SHIPPED_GRAPH
    shipped = live.load_classifier(SHIPPED_GRAPH)
    confidence_alone = live.Classifier(shipped.model, dataclasses.replace(
        shipped.calibration, novelty_above=None, class_means=None, precision=None))
    sets = real_photos.photo_sets()
    assert all(frame.shape == (scenes.HEIGHT, scenes.WIDTH, 3) for frames in sets.values()
               for frame in frames)
    with_novelty = real_photos.accepted_share(real_photos.measure(shipped, sets))
    assert with_novelty <= 0.05
    assert with_novelty < real_photos.accepted_share(real_photos.measure(confidence_alone, sets))


# --------------------------------------------------------------------------- the camera path

def test_camera_path_steps_keep_the_print_and_film_one_scene_two_ways(test_set):
    """perf/camera_path_loss.py's steps: a perfect print held still comes back close to the
    test image (what the preprocessing alone changes is small), and the last two steps film
    one scene, the second through the webcam, so what differs between them is the camera's."""
    sys.path.insert(0, str(ROOT / "perf"))
    import camera_path_loss
    images, _ = test_set
    films = [film for _, film in camera_path_loss.steps("plain light background")]
    assert films[0] is None                                  # the test image itself
    printed = prepare_frame(films[1](images[0], np.random.default_rng(0), 1)[0], scenes.BOX)[1]
    assert silhouette_iou(printed, images[0]) > 0.85
    assert np.abs(printed.astype(float) - images[0]).mean() < 20
    perfect, webcam = (film(images[0], np.random.default_rng([1, 0]), 1)[0]
                       for film in films[3:])
    other = films[4](images[1], np.random.default_rng([1, 1]), 1)[0]
    camera_gap = np.abs(perfect.astype(float) - webcam).mean()
    assert 0 < camera_gap < np.abs(other.astype(float) - webcam).mean() / 2
