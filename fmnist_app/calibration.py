"""Calibrated probabilities and a "not a garment" threshold, fitted on held-out data and kept
next to the frozen graph as calibration.json. TensorFlow-free: numbers in, numbers out.

- Temperature (Guo et al. 2017): logits / T before the softmax, T fitted by minimising the
  negative log-likelihood on the run's validation images (never trained on). The demo's
  logits are the mean over the image and its mirror (two views), so T is fitted on those.
- Rejection: with T applied, a frame is "no garment" when its top probability is below a
  threshold: the quantile of the top probabilities of held-out garments seen through the
  camera path (validation images rendered into camera scenes, see fmnist_app.scenes) that
  keeps ACCEPT_RATE of them. A rate chosen, not a score guessed.
- Expected calibration error (ECE, 15 equal-width confidence bins) for the report.

Fit it with `python -m fmnist_app.calibrate output_dir/RUN`.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CALIBRATION_FILENAME = "calibration.json"
ECE_BINS = 15
ACCEPT_RATE = 0.98


class CalibrationError(ValueError):
    """A calibration file cannot be used; the message says which and how to make one."""


@dataclass(frozen=True)
class Calibration:
    temperature: float = 1.0
    reject_below: float | None = None       # top probability under this: "no garment"
    accept_rate: float | None = None
    fitted_on: str = ""

    def probabilities(self, logits):
        return softmax(np.asarray(logits, np.float64) / self.temperature)


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


def two_view_logits(model, images, plain_logits=None):
    """Mean logits of the images and their mirrors: what the demo classifies with.

    Without `plain_logits` both views go through the model in one batch (the demo's case);
    with them (already computed, as the benchmark has) only the mirrors do.
    """
    images = np.asarray(images)
    mirrored = images[:, :, ::-1]
    if plain_logits is not None:
        return (plain_logits + model.logits(np.ascontiguousarray(mirrored))) / 2
    logits = model.logits(np.concatenate([images, mirrored]))
    return (logits[:len(images)] + logits[len(images):]) / 2


def save(calibration, folder):
    from fmnist_app.files import write_atomically
    path = Path(folder) / CALIBRATION_FILENAME
    write_atomically((json.dumps(asdict(calibration), indent=2) + "\n").encode(), path)
    return path


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
    except (OSError, ValueError, TypeError) as err:
        raise CalibrationError(f"{path} is unusable ({err}); rebuild it with "
                               f"`python -m fmnist_app.calibrate {path.parent}`") from None
    return calibration
