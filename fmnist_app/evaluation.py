"""Test-set evaluation of a frozen graph: metrics, timing, flip TTA and the JSON record.

Every metric comes from one confusion matrix (rows: true class, columns: predicted), so the
tables, the JSON and the plots always agree and the counts add up to the number of images.
A ratio with a zero denominator (a class never predicted, or absent from a small slice) is
reported as 0, like scikit-learn's zero_division=0. Per-class accuracy is the study's
"accuracy of class c": the share of class-c images classified as c (= recall).

Flip TTA: the softmax of the mean logits of each image and its mirror, exactly the two
views the demo classifies (fmnist_app.calibration.two_view_outputs). It suits models trained
with FLIP_FOOTWEAR (the shipped one); for a model that never saw a shoe facing right it
costs footwear accuracy, and the per-class TTA table shows it.

Calibration: with a calibration.json next to the graph, the expected calibration error of
the two-view probabilities before and after its temperature, and the share of test images
its rejection thresholds (confidence and novelty) would call "no garment".
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from fmnist_app import calibration
from fmnist_app.dataset import CLASS_NAMES, NUM_CLASSES

SCHEMA = "fmnist-benchmark/1"
BATCH_SIZE = 1000
LATENCY_REPEATS = 50
TOP_CONFUSED_PAIRS = 5
TTA_RULE = "softmax of the mean logits of the image and its mirror (the demo's two views)"


class ReportError(ValueError):
    """A benchmark JSON file cannot be used; the message says which and how to make one."""


# --------------------------------------------------------------------------- metrics

def confusion_matrix(labels, predictions):
    """Counts (10, 10): row = true class, column = predicted class."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return matrix


def _ratio(numerator, denominator):
    """Elementwise numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator > 0)


def class_metrics(matrix):
    """Overall accuracy and per-class accuracy, precision, recall, F1 and support."""
    correct = np.diag(matrix)
    support = matrix.sum(axis=1)
    precision = _ratio(correct, matrix.sum(axis=0))
    recall = _ratio(correct, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    per_class = [
        {"index": c, "name": CLASS_NAMES[c], "accuracy": float(recall[c]),
         "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
         "support": int(support[c])}
        for c in range(NUM_CLASSES)]
    return float(_ratio(correct.sum(), matrix.sum())), per_class


def most_confused_pairs(matrix, top=TOP_CONFUSED_PAIRS):
    """Unordered class pairs with the most mistakes either way, ties broken by class index."""
    pairs = []
    for a in range(NUM_CLASSES):
        for b in range(a + 1, NUM_CLASSES):
            total = int(matrix[a, b] + matrix[b, a])
            if total:
                pairs.append({"classes": [a, b], "total": total,
                              "a_as_b": int(matrix[a, b]), "b_as_a": int(matrix[b, a])})
    pairs.sort(key=lambda p: (-p["total"], p["classes"]))
    return pairs[:top]


def summarise(labels, probabilities):
    """Every accuracy number for one set of predictions."""
    matrix = confusion_matrix(labels, np.argmax(probabilities, axis=1))
    overall, per_class = class_metrics(matrix)
    return {"overall_accuracy": overall, "per_class": per_class,
            "confusion_matrix": matrix.tolist(), "most_confused": most_confused_pairs(matrix)}


# --------------------------------------------------------------------------- predictions

def timed_predictions(model, images):
    """(logits, features or None, timing) for all images: throughput of that very pass and
    1-image latency.

    The first batch is the warm-up (one-off memory and oneDNN kernel set-up) and is left out
    of the throughput unless it is the only one, so no images are predicted twice.
    """
    parts, seconds = [], []
    for start in range(0, len(images), BATCH_SIZE):
        tick = time.perf_counter()
        parts.append(model.logits_and_features(images[start:start + BATCH_SIZE], BATCH_SIZE))
        seconds.append(time.perf_counter() - tick)
    logits = (np.concatenate([part[0] for part in parts]) if parts
              else np.zeros((0, NUM_CLASSES), np.float32))
    features = (np.concatenate([part[1] for part in parts])
                if parts and parts[0][1] is not None else None)
    sizes = [len(part[0]) for part in parts]
    timed = slice(1, None) if len(parts) > 1 else slice(None)
    timed_images, timed_seconds = sum(sizes[timed]), sum(seconds[timed])

    single = images[:1]
    model.predict(single)
    latencies = []
    for _ in range(LATENCY_REPEATS):
        tick = time.perf_counter()
        model.predict(single)
        latencies.append(time.perf_counter() - tick)
    timing = {"images": len(images), "batch_size": BATCH_SIZE,
              "timed_images": timed_images, "timed_seconds": timed_seconds,
              "images_per_second": timed_images / timed_seconds if timed_seconds > 0 else 0.0,
              "latency_ms_median": 1000 * float(np.median(latencies)),
              "latency_repeats": LATENCY_REPEATS}
    return logits, features, timing


def calibration_summary(logits, labels, fitted, features=None):
    """ECE (and reliability bins) of the two-view probabilities before and after the
    temperature, and the share of test images the rejection thresholds would refuse (given
    the two-view features, the novelty threshold too)."""
    before = calibration.softmax(np.asarray(logits, np.float64))
    after = fitted.probabilities(logits)
    rejected = None
    if fitted.reject_below is not None:
        rejected = float(np.mean(fitted.refused(after, fitted.novelty(features))))
    novelty_above = None if features is None else fitted.novelty_above
    return {"temperature": fitted.temperature, "reject_below": fitted.reject_below,
            "novelty_above": novelty_above,
            "fitted_on": fitted.fitted_on, "bins": calibration.ECE_BINS,
            "ece_before": calibration.expected_calibration_error(before, labels),
            "ece_after": calibration.expected_calibration_error(after, labels),
            "reliability_before": calibration.reliability(before, labels),
            "reliability_after": calibration.reliability(after, labels),
            "test_rejected": rejected}


# --------------------------------------------------------------------------- JSON record

def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_report(model_path, data_dir, labels, probabilities, timing, tta_probabilities=None,
                 calibration_numbers=None, split="test"):
    """The whole benchmark as one JSON-ready dict; TTA numbers live apart under "tta"."""
    report = {"schema": SCHEMA,
              "model": {"path": str(Path(model_path).resolve()), "sha256": sha256_of(model_path)},
              "dataset": {"path": str(Path(data_dir).resolve()), "split": split,
                          "images": len(labels)},
              **summarise(labels, probabilities),
              "timing": timing,
              "calibration": calibration_numbers,
              "tta": None}
    if tta_probabilities is not None:
        report["tta"] = {"rule": TTA_RULE, **summarise(labels, tta_probabilities)}
    return report


def write_report(report, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def accuracies(report):
    """(overall, [per-class]) accuracies of a report as floats, or None if it has none."""
    try:
        per_class = [float(c["accuracy"]) for c in report["per_class"]]
        overall = float(report["overall_accuracy"])
    except (TypeError, KeyError, ValueError):
        return None
    return (overall, per_class) if len(per_class) == NUM_CLASSES else None


def read_report(path):
    """Load a benchmark JSON written by write_report, or raise ReportError saying why."""
    path = Path(path)
    remedy = "write one with `python benchmark.py --json NEW_FILE.json`"
    if not path.is_file():
        raise ReportError(f"--compare file {path} not found; {remedy}")
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"--compare file {path} is not readable JSON ({err}); {remedy}") from None
    if accuracies(report) is None:
        raise ReportError(f"--compare file {path} is not a benchmark JSON (needs overall_accuracy "
                          f"and {NUM_CLASSES} per_class accuracies); {remedy}")
    return report


# --------------------------------------------------------------------------- text tables

def _label(c):
    return f"Class {c} ({CLASS_NAMES[c]})"


LABEL_WIDTH = max(len(_label(c)) for c in range(NUM_CLASSES))


def accuracy_table(summary, title):
    """The study's table: Overall with 2 decimals, then each class with 1, in percent."""
    # Widths 6 and 5 line the decimal points up: " 94.23" over " 91.0".
    lines = [title, f"{'Overall':<{LABEL_WIDTH}}  {100 * summary['overall_accuracy']:6.2f}"]
    lines += [f"{_label(c['index']):<{LABEL_WIDTH}}  {100 * c['accuracy']:5.1f}"
              for c in summary["per_class"]]
    return "\n".join(lines)


def precision_recall_table(summary):
    lines = ["Per-class precision / recall / F1 (%)",
             f"{'':<{LABEL_WIDTH}}  precision  recall     F1  images"]
    lines += [f"{_label(c['index']):<{LABEL_WIDTH}}  {100 * c['precision']:9.1f}  "
              f"{100 * c['recall']:6.1f}  {100 * c['f1']:5.1f}  {c['support']:6d}"
              for c in summary["per_class"]]
    total = sum(c["support"] for c in summary["per_class"])
    lines.append(f"{'Total':<{LABEL_WIDTH}}  {'':9}  {'':6}  {'':5}  {total:6d}")
    return "\n".join(lines)


def confusion_table(summary):
    header = "true \\ predicted".ljust(LABEL_WIDTH) + "".join(f"{c:6d}" for c in range(NUM_CLASSES))
    lines = ["Confusion matrix (rows: true class, columns: predicted class)", header]
    lines += [_label(c).ljust(LABEL_WIDTH) + "".join(f"{n:6d}" for n in row)
              for c, row in enumerate(summary["confusion_matrix"])]
    return "\n".join(lines)


def confused_pairs_table(summary):
    lines = ["Most confused pairs (mistakes either way)"]
    for pair in summary["most_confused"]:
        a, b = (CLASS_NAMES[c] for c in pair["classes"])
        lines.append(f"{a + ' vs ' + b:<28}  {pair['total']:5d}  "
                     f"({a} as {b}: {pair['a_as_b']}, {b} as {a}: {pair['b_as_a']})")
    if len(lines) == 1:
        lines.append("none: every image is classified correctly")
    return "\n".join(lines)


def timing_table(timing):
    throughput = (f"throughput  {timing['images_per_second']:8.0f} images/s  (timed on "
                  f"{timing['timed_images']} of {timing['images']} images, batches of "
                  f"{timing['batch_size']}; the first batch is the warm-up)")
    latency = (f"latency     {timing['latency_ms_median']:8.2f} ms per single image "
               f"(median of {timing['latency_repeats']})")
    return f"Speed on this machine\n{throughput}\n{latency}"


def calibration_table(numbers, split="test"):
    if numbers["temperature"] == 1.0 and numbers["reject_below"] is None:
        return ("Calibration: none (no calibration.json next to the graph; make one with "
                "`python -m fmnist_app.calibrate RUN_DIR`)\n"
                f"expected calibration error of the two-view probabilities: "
                f"{100 * numbers['ece_before']:.2f}%")
    lines = [f"Calibration (two views, as the demo; {numbers['bins']} confidence bins)",
             f"temperature {numbers['temperature']:.3f}, fitted on {numbers['fitted_on']}",
             f"expected calibration error  {100 * numbers['ece_before']:5.2f}% before  ->  "
             f"{100 * numbers['ece_after']:5.2f}% after"]
    if numbers["reject_below"] is not None:
        novelty = ("" if numbers.get("novelty_above") is None else
                   f" or novelty above {numbers['novelty_above']:.1f}")
        lines.append(f"no garment below top probability {numbers['reject_below']:.3f}"
                     f"{novelty}: {100 * numbers['test_rejected']:.2f}% of "
                     + ("the test images" if split == "test" else split))
    return "\n".join(lines)


def format_report(report):
    """Everything benchmark.py prints, in reading order."""
    model, dataset = report["model"], report["dataset"]
    # The split is "test" or "your images" (benchmark.py --images).
    what = "test images" if dataset["split"] == "test" else dataset["split"]
    header = (f"model    {model['path']}\nsha256   {model['sha256']}\n"
              f"dataset  {dataset['path']} ({dataset['images']} {what})")
    sections = [
        header,
        accuracy_table(report, "Test accuracy (%)"),
        precision_recall_table(report),
        confusion_table(report),
        confused_pairs_table(report),
        timing_table(report["timing"])]
    if report.get("calibration"):
        sections.append(calibration_table(report["calibration"], report["dataset"]["split"]))
    if report["tta"] is not None:
        sections.append(accuracy_table(report["tta"], "Test accuracy with flip TTA (%), "
                                       "reported apart from the plain number\n"
                                       f"rule: {report['tta']['rule']}"))
    return "\n\n".join(sections)


def format_comparison(report, other, other_path):
    """Per-class accuracy of this run next to another run's, with the change in points."""
    (mine, my_classes), (theirs, their_classes) = accuracies(report), accuracies(other)
    model = other.get("model")
    sha = model.get("sha256") if isinstance(model, dict) else None
    lines = [f"Comparison with {other_path} (model sha256 {str(sha)[:12]})",
             f"{'':<{LABEL_WIDTH}}   this  other  change"]
    rows = [("Overall", mine, theirs)]
    rows += [(_label(c), a, b) for c, (a, b) in enumerate(zip(my_classes, their_classes))]
    lines += [f"{name:<{LABEL_WIDTH}}  {100 * a:5.2f}  {100 * b:5.2f}  {100 * (a - b):+6.2f}"
              for name, a, b in rows]
    return "\n".join(lines)
