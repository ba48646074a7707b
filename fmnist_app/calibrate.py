"""Fit a run's calibration.json on its held-out validation images.

    python -m fmnist_app.calibrate output_dir/RUN [--scenes 125] [--accept-rate 0.99]

1. Temperature: fitted on the two-view logits of the run's validation split (the images
   the run held out: same SEED and VALIDATION_SIZE as its config.json).
2. Novelty score (fmnist_app.novelty): class means and shared covariance of the two-view
   features of NOVELTY_IMAGES of the run's training images (graphs that have `features`).
3. Rejection thresholds: validation garments rendered into camera scenes under every
   garment condition of fmnist_app.scenes (seed CALIBRATION_SEED, never the benchmark's),
   run through the live pipeline; the confidence threshold keeps --accept-rate of them, and
   so does the novelty threshold.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from fmnist_app import calibration, novelty, scenes
from fmnist_app.config import ConfigError
from fmnist_app.config import load as load_config
from fmnist_app.dataset import (
    GRAPH_FILENAME,
    NUM_CLASSES,
    DatasetError,
    load_split,
    stratified_split,
)

CALIBRATION_SEED = 20261122       # the scene benchmark uses others (perf/live_accuracy.py)
NOVELTY_IMAGES = 20000            # training images the novelty score's statistics come from


def next_step(run_dir):
    """What to run after a run is written, so the demo can say "no garment" with it."""
    return f"for the demo's \"no garment\": python -m fmnist_app.calibrate {run_dir}"


def splits(run_dir):
    """((training images, labels), (held-out images, labels)) of the run, from its own
    config.json."""
    config = load_config(Path(run_dir) / "config.json")
    if not config.VALIDATION_SIZE:
        raise ConfigError(f"{run_dir} trained on every image (VALIDATION_SIZE 0): nothing "
                          "is held out to fit on; train with VALIDATION_SIZE > 0")
    images, labels = load_split("train", config.DATA_DIR or None)
    trained, held_out = stratified_split(labels, config.VALIDATION_SIZE, config.SEED)
    return (images[trained], labels[trained]), (images[held_out], labels[held_out])


def camera_scores(classifier, images, per_condition, seed):
    """(top calibrated probability, novelty score or None) of each non-empty camera frame
    of held-out garments."""
    from fmnist_app.live.pipeline import Pipeline
    rng = np.random.default_rng(seed)
    tops, novelties = [], []
    for condition in scenes.GARMENT_CONDITIONS:
        for index in rng.choice(len(images), per_condition, replace=False):
            pipeline = Pipeline(classifier, smoothing_frames=1)
            result = pipeline.process(scenes.render(condition, images[index], rng)[0],
                                      scenes.BOX_FRACTION)
            if result.probabilities is not None:
                tops.append(float(result.probabilities.max()))
                novelties.append(result.novelty)
    return np.asarray(tops), novelties


def novelty_fit(model, images, labels, seed):
    """Class means and shared precision of the two-view features of up to NOVELTY_IMAGES
    training images (a seeded sample), or (None, None) for a graph without features."""
    if not model.has_features:
        return None, None
    chosen = np.random.default_rng(seed).permutation(len(labels))[:NOVELTY_IMAGES]
    _, features = calibration.two_view_outputs(model, images[chosen])
    means, precision = novelty.fit(features, labels[chosen], NUM_CLASSES)
    return means.tolist(), precision.tolist()


def calibrate(run_dir, per_condition, accept_rate):
    from fmnist_app.inference import FrozenModel
    from fmnist_app.live.pipeline import Classifier

    (train_images, train_labels), (images, labels) = splits(run_dir)
    model = FrozenModel(Path(run_dir) / GRAPH_FILENAME)
    logits, features = calibration.two_view_outputs(model, images)
    temperature = calibration.fit_temperature(logits, labels)
    means, precision = novelty_fit(model, train_images, train_labels, CALIBRATION_SEED)
    scored = calibration.Calibration(temperature, class_means=means, precision=precision)
    tops, novelties = camera_scores(Classifier(model, scored), images, per_condition,
                                    CALIBRATION_SEED)
    novelty_above = None if means is None else calibration.novelty_threshold(novelties,
                                                                             accept_rate)
    fitted = calibration.Calibration(
        temperature, calibration.rejection_threshold(tops, accept_rate), accept_rate,
        f"{len(labels)} held-out validation images (temperature); {len(tops)} camera scenes "
        f"of them, seed {CALIBRATION_SEED} (thresholds)"
        + ("" if means is None else f"; {min(NOVELTY_IMAGES, len(train_labels))} training "
           "images (novelty score)"),
        novelty_above, means, precision)
    before = calibration.expected_calibration_error(calibration.softmax(logits), labels)
    after = calibration.expected_calibration_error(fitted.probabilities(logits), labels)
    # A column of top probabilities is as good as the whole rows for the confidence test.
    kept = 1 - np.mean(fitted.refused(tops[:, None], None if means is None else novelties))
    path = calibration.save(fitted, run_dir)
    novelty_line = ("" if means is None else
                    f" or novelty above {novelty_above:.1f}")
    print(f"temperature {temperature:.3f} (validation ECE {100 * before:.2f}% -> "
          f"{100 * after:.2f}%); no garment below top probability "
          f"{fitted.reject_below:.3f}{novelty_line} (each keeps {accept_rate:.0%} of held-out "
          f"camera garments, both {kept:.1%})")
    if means is not None:
        clean = fitted.novelty(features)
        print(f"novelty score, median / 99th percentile: held-out images "
              f"{np.median(clean):.1f} / {np.percentile(clean, 99):.1f}, the same through the "
              f"camera {np.median(novelties):.1f} / {np.percentile(novelties, 99):.1f}")
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run (output_dir/NAME)")
    # 125 x 8 conditions: a 99% quantile then rests on ten scenes past it, not three.
    parser.add_argument("--scenes", type=int, default=125, metavar="N",
                        help="camera scenes per garment condition (default %(default)s)")
    parser.add_argument("--accept-rate", type=float, default=calibration.ACCEPT_RATE,
                        help="share of held-out garments to keep (default %(default)s)")
    args = parser.parse_args(argv)
    if not 0.5 <= args.accept_rate < 1:
        parser.error(f"--accept-rate {args.accept_rate} must be in [0.5, 1)")
    from fmnist_app.inference import ModelError
    try:
        calibrate(args.run_dir, args.scenes, args.accept_rate)
    except (ConfigError, DatasetError, ModelError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
