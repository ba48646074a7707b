"""Fit a run's calibration.json on its held-out validation images.

    python -m fmnist_app.calibrate output_dir/RUN [--scenes 40] [--accept-rate 0.98]

1. Temperature: fitted on the two-view logits of the run's validation split (the images
   the run held out: same SEED and VALIDATION_SIZE as its config.json).
2. Rejection threshold: validation garments rendered into camera scenes under every garment
   condition of fmnist_app.scenes (seed CALIBRATION_SEED, never the benchmark's), run
   through the live pipeline; the threshold keeps --accept-rate of them.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from fmnist_app import calibration, scenes
from fmnist_app.config import ConfigError
from fmnist_app.config import load as load_config
from fmnist_app.dataset import GRAPH_FILENAME, DatasetError, load_split, stratified_split

CALIBRATION_SEED = 20261122       # the scene benchmark uses others (perf/live_accuracy.py)


def validation_split(run_dir):
    """(images, labels) the run held out, from its own config.json."""
    config = load_config(Path(run_dir) / "config.json")
    if not config.VALIDATION_SIZE:
        raise ConfigError(f"{run_dir} trained on every image (VALIDATION_SIZE 0): nothing is "
                          "held out to calibrate on; train with VALIDATION_SIZE > 0")
    images, labels = load_split("train", config.DATA_DIR or None)
    _, held_out = stratified_split(labels, config.VALIDATION_SIZE, config.SEED)
    return images[held_out], labels[held_out]


def camera_top_probabilities(classifier, images, per_condition, seed):
    """Top calibrated probability of each non-empty camera frame of held-out garments."""
    from fmnist_app.live.pipeline import Pipeline
    rng = np.random.default_rng(seed)
    tops = []
    for condition in scenes.GARMENT_CONDITIONS:
        for index in rng.choice(len(images), per_condition, replace=False):
            pipeline = Pipeline(classifier, smoothing_frames=1)
            result = pipeline.process(scenes.render(condition, images[index], rng)[0],
                                      scenes.BOX_FRACTION)
            if result.probabilities is not None:
                tops.append(float(result.probabilities.max()))
    return np.asarray(tops)


def calibrate(run_dir, per_condition, accept_rate):
    from fmnist_app.inference import FrozenModel
    from fmnist_app.live.pipeline import Classifier

    images, labels = validation_split(run_dir)
    model = FrozenModel(Path(run_dir) / GRAPH_FILENAME)
    logits = calibration.two_view_logits(model, images)
    temperature = calibration.fit_temperature(logits, labels)
    scaled = calibration.Calibration(temperature)
    tops = camera_top_probabilities(Classifier(model, scaled), images, per_condition,
                                    CALIBRATION_SEED)
    fitted = calibration.Calibration(
        temperature, calibration.rejection_threshold(tops, accept_rate), accept_rate,
        f"{len(labels)} held-out validation images (temperature); {len(tops)} camera scenes "
        f"of them, seed {CALIBRATION_SEED} (threshold)")
    before = calibration.expected_calibration_error(calibration.softmax(logits), labels)
    after = calibration.expected_calibration_error(fitted.probabilities(logits), labels)
    path = calibration.save(fitted, run_dir)
    print(f"temperature {temperature:.3f} (validation ECE {100 * before:.2f}% -> "
          f"{100 * after:.2f}%); no garment below top probability "
          f"{fitted.reject_below:.3f} (keeps {accept_rate:.0%} of held-out camera garments)")
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run (output_dir/NAME)")
    parser.add_argument("--scenes", type=int, default=40, metavar="N",
                        help="camera scenes per garment condition (default 40)")
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
