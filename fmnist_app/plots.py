"""The benchmark's PNGs, drawn with matplotlib's Agg canvas from a benchmark report.

Figures are built with matplotlib.figure.Figure rather than pyplot, so no GUI backend and
no global figure state are involved (safe next to Qt, safe to call repeatedly).
"""

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fmnist_app.dataset import CLASS_NAMES

MISCLASSIFIED_GRID = (6, 6)


def _save(figure, path):
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=100)
    return path


def confusion_heat_map(report, path):
    """Counts written in each cell; colour is the share of the true class (row)."""
    matrix = np.asarray(report["confusion_matrix"])
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the true class")
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if shares[row, col] > 0.5 else "black")
    ticks = range(len(CLASS_NAMES))
    axes.set_xticks(ticks, CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticks(ticks, CLASS_NAMES)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix ({matrix.sum()} test images)")
    return _save(figure, path)


def accuracy_bars(report, path):
    accuracy = [100 * c["accuracy"] for c in report["per_class"]]
    overall = 100 * report["overall_accuracy"]
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    bars = axes.barh(CLASS_NAMES, accuracy, color="tab:blue")
    axes.bar_label(bars, fmt="%.1f", padding=2)
    axes.axvline(overall, color="tab:red", linestyle="--")
    axes.invert_yaxis()  # class 0 on top, like the printed table
    axes.set_xlim(0, 112)  # room for the "100.0" label
    axes.set_xlabel("test accuracy (%)")
    axes.set_title(f"Per-class test accuracy (dashed: overall {overall:.2f}%)")
    return _save(figure, path)


def precision_recall_f1_bars(report, path):
    metrics = ("precision", "recall", "f1")
    positions = np.arange(len(CLASS_NAMES))
    width = 0.8 / len(metrics)
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.add_subplot()
    for i, metric in enumerate(metrics):
        values = [100 * c[metric] for c in report["per_class"]]
        axes.bar(positions + (i - 1) * width, values, width, label=metric)
    axes.set_xticks(positions, CLASS_NAMES, rotation=45, ha="right")
    axes.set_ylim(0, 105)
    axes.set_ylabel("%")
    axes.set_title("Per-class precision, recall and F1")
    # Outside the axes: with a good model every bar reaches the top of the plot.
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, path)


def misclassified_grid(images, labels, probabilities, path):
    """The first misclassified test images in file order, titled true / predicted (confidence)."""
    predictions = np.argmax(probabilities, axis=1)
    rows, cols = MISCLASSIFIED_GRID
    wrong = np.flatnonzero(predictions != labels)[:rows * cols]
    figure = Figure(figsize=(cols * 1.7, rows * 1.9), layout="constrained")
    figure.suptitle(f"Misclassified test images (first {len(wrong)} of "
                    f"{np.count_nonzero(predictions != labels)})")
    for slot in range(rows * cols):
        axes = figure.add_subplot(rows, cols, slot + 1)
        axes.axis("off")
        if slot < len(wrong):
            index = wrong[slot]
            predicted = predictions[index]
            axes.imshow(images[index], cmap="gray", vmin=0, vmax=255)
            axes.set_title(f"#{index} true {CLASS_NAMES[labels[index]]}\npred "
                           f"{CLASS_NAMES[predicted]} {100 * probabilities[index, predicted]:.0f}%",
                           fontsize=7)
    return _save(figure, path)


def reliability_diagram(numbers, path):
    """Accuracy against confidence per bin, before and after the temperature (two views)."""
    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for key, colour in (("before", "tab:red"), ("after", "tab:blue")):
        rows = [(conf, acc) for _, count, conf, acc in numbers[f"reliability_{key}"] if count]
        if not rows:
            continue
        confidence, accuracy = zip(*rows)
        axes.plot(confidence, accuracy, "o-", color=colour,
                  label=f"{key} temperature: ECE {100 * numbers[f'ece_{key}']:.2f}%")
    axes.set_xlabel("confidence (top probability)")
    axes.set_ylabel("accuracy")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(loc="upper left")
    axes.set_title(f"Reliability on the test set (temperature {numbers['temperature']:.2f})")
    return _save(figure, path)


def write_plots(report, images, labels, probabilities, out_dir):
    """Write the PNGs into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration_plot = ([reliability_diagram(report["calibration"], out_dir / "reliability.png")]
                        if report.get("calibration") else [])
    return calibration_plot + [
        confusion_heat_map(report, out_dir / "confusion_matrix.png"),
        accuracy_bars(report, out_dir / "per_class_accuracy.png"),
        precision_recall_f1_bars(report, out_dir / "precision_recall_f1.png"),
        misclassified_grid(images, labels, probabilities, out_dir / "misclassified.png"),
    ]
