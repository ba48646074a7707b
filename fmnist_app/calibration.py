"""Calibrated probabilities and a "not a garment" threshold, fitted on held-out data and kept
next to the frozen graph as calibration.json. TensorFlow-free: numbers in, numbers out.

- Temperature (Guo et al. 2017): logits / T before the softmax, T fitted by minimising the
  negative log-likelihood on the run's validation images (never trained on). The demo's
  logits are the mean over the image and its mirror (two views), so T is fitted on those.
- Rejection: with T applied, a frame is "no garment" when its top probability is below a
  threshold, or when its novelty score (fmnist_app.novelty: how far its features lie from
  every class of training garments) is above one. Each threshold is the quantile of
  held-out garments seen through the camera path (validation images rendered into camera
  scenes, see fmnist_app.scenes) that keeps ACCEPT_RATE of them. Rates chosen, not scores
  guessed. A calibration without the novelty part (older runs, graphs without `features`)
  judges by confidence alone.
- Expected calibration error (ECE, 15 equal-width confidence bins) for the report.

Fit it with `python -m fmnist_app.calibrate output_dir/RUN`.
"""

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fmnist_app import novelty

CALIBRATION_FILENAME = "calibration.json"
ECE_BINS = 15
ACCEPT_RATE = 0.99          # of held-out camera garments, kept by each of the two tests


class CalibrationError(ValueError):
    """A calibration file cannot be used; the message says which and how to make one."""


@dataclass(frozen=True)
class Calibration:
    temperature: float = 1.0
    reject_below: float | None = None       # top probability under this: "no garment"
    accept_rate: float | None = None
    fitted_on: str = ""
    novelty_above: float | None = None      # novelty score over this: "no garment"
    class_means: list | None = None         # novelty score: (10, width) feature means ...
    precision: list | None = None           # ... and their shared (width, width) precision

    def probabilities(self, logits):
        return softmax(np.asarray(logits, np.float64) / self.temperature)

    @functools.cached_property
    def _novelty_fit(self):
        return np.asarray(self.class_means, np.float64), np.asarray(self.precision, np.float64)

    def novelty(self, features):
        """Novelty scores (N,) of features (N, width), or None when this calibration has no
        novelty fit or the graph gives no features."""
        if features is None or self.class_means is None:
            return None
        return novelty.scores(features, *self._novelty_fit)

    def unsure(self, probabilities):
        """Which rows of calibrated probabilities are under the confidence threshold."""
        probabilities = np.atleast_2d(probabilities)
        if self.reject_below is None:
            return np.zeros(len(probabilities), bool)
        return probabilities.max(axis=1) < self.reject_below

    def novel(self, novelty_scores):
        """Which novelty scores are over the novelty threshold (none when either is missing)."""
        scores = np.atleast_1d(np.asarray([] if novelty_scores is None else novelty_scores,
                                          np.float64))
        if self.novelty_above is None:
            return np.zeros(len(scores), bool)
        return scores > self.novelty_above

    def refused(self, probabilities, novelty_scores=None):
        """Which frames (rows of calibrated probabilities, with their novelty scores when
        known) are "no garment": too unsure, or too unlike every class."""
        refused = self.unsure(probabilities)
        if novelty_scores is not None:
            refused |= self.novel(novelty_scores)
        return refused


UNCALIBRATED = Calibration()


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def negative_log_likelihood(logits, labels, temperature):
    log_probs = np.log(np.clip(softmax(logits / temperature), 1e-12, None))
    return -float(np.mean(log_probs[np.arange(len(labels)), labels]))


def fit_temperature(logits, labels):
    """The T in [0.05, 20] minimising the NLL: a grid over log T, then a finer one."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 61))
    best = min(grid, key=lambda t: negative_log_likelihood(logits, labels, t))
    fine = best * np.exp(np.linspace(-0.1, 0.1, 41))
    return float(min(fine, key=lambda t: negative_log_likelihood(logits, labels, t)))


def rejection_threshold(top_probabilities, accept_rate=ACCEPT_RATE):
    """The top probability that keeps `accept_rate` of held-out garments."""
    return float(np.quantile(np.asarray(top_probabilities), 1.0 - accept_rate))


def novelty_threshold(novelty_scores, accept_rate=ACCEPT_RATE):
    """The novelty score that keeps `accept_rate` of held-out garments."""
    return float(np.quantile(np.asarray(novelty_scores), accept_rate))


def reliability(probabilities, labels, bins=ECE_BINS):
    """Per confidence bin: (lower edge, count, mean confidence, accuracy)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append((float(edges[b]), count,
                     float(confidence[members].mean()) if count else 0.0,
                     float(correct[members].mean()) if count else 0.0))
    return rows


def expected_calibration_error(probabilities, labels, bins=ECE_BINS):
    """Sum over bins of (share of images) x |accuracy - mean confidence|."""
    rows = reliability(probabilities, labels, bins)
    total = sum(count for _, count, _, _ in rows)
    return float(sum(count * abs(acc - conf) for _, count, conf, acc in rows) / max(total, 1))


def two_view_outputs(model, images, plain=None):
    """(logits, features) averaged over the images and their mirrors: what the demo
    classifies and judges novelty with; features are None for a graph without them.

    Without `plain` both views go through the model in one batch (the demo's case); with the
    plain views' (logits, features) already computed, as the benchmark has, only the
    mirrors do.
    """
    images = np.asarray(images)
    mirrored = images[:, :, ::-1]
    if plain is None:
        both = model.logits_and_features(np.concatenate([images, mirrored]))
    else:
        mirrors = model.logits_and_features(np.ascontiguousarray(mirrored))
        both = [None if a is None or b is None else np.concatenate([a, b])
                for a, b in zip(plain, mirrors)]
    count = len(images)
    return tuple(None if values is None else (values[:count] + values[count:]) / 2
                 for values in both)


def two_view_logits(model, images):
    """Mean logits of the images and their mirrors (two_view_outputs without the features)."""
    return two_view_outputs(model, images)[0]


ARRAY_FIELDS = ("class_means", "precision")


def to_json(calibration):
    """The numbers a person reads first, one per line; then the novelty fit's matrices, one
    row per line (7 significant digits: the scores move by a millionth)."""
    values = asdict(calibration)
    arrays = {key: values.pop(key) for key in ARRAY_FIELDS if values[key] is not None}
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in values.items()]
    for key, rows in arrays.items():
        body = ",\n".join("    " + json.dumps([float(f"{v:.7g}") for v in row]) for row in rows)
        lines.append(f"  {json.dumps(key)}: [\n{body}\n  ]")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def save(calibration, folder):
    from fmnist_app.files import write_atomically
    path = Path(folder) / CALIBRATION_FILENAME
    write_atomically(to_json(calibration).encode(), path)
    return path


def check_novelty_fit(calibration):
    """Raise ValueError unless the novelty fields are all absent or fit together."""
    present = [calibration.class_means is not None, calibration.precision is not None,
               calibration.novelty_above is not None]
    if not any(present):
        return
    if not all(present):
        raise ValueError("novelty_above, class_means and precision come together")
    means, precision = calibration._novelty_fit
    width = means.shape[-1]
    if means.ndim != 2 or precision.shape != (width, width):
        raise ValueError(f"class_means {means.shape} and precision {precision.shape} do not "
                         "fit together")


def load_for(graph_path):
    """The calibration next to a frozen graph, or UNCALIBRATED if there is none."""
    path = Path(graph_path).parent / CALIBRATION_FILENAME
    if not path.is_file():
        return UNCALIBRATED
    try:
        values = json.loads(path.read_text())
        calibration = Calibration(**values)
        if not calibration.temperature > 0:
            raise ValueError(f"temperature {calibration.temperature} is not positive")
        check_novelty_fit(calibration)
    except (OSError, ValueError, TypeError) as err:
        raise CalibrationError(f"{path} is unusable ({err}); rebuild it with "
                               f"`python -m fmnist_app.calibrate {path.parent}`") from None
    return calibration
