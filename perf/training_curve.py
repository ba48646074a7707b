"""Time-to-accuracy curve of one or more training runs, from their log.jsonl.

    python perf/training_curve.py output_dir/final_model [output_dir/fast ...] \
        --out docs/training_curve.png

x: training wall-clock minutes (evaluation time excluded, as the trainer counts it);
y: the accuracy the run monitored (validation, or the watched test set for runs on all
60,000 training images).
"""

import argparse
import json
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def read_log(run_dir):
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        sys.exit(f"error: {path} not found; pass a run folder written by fmnist_app.train")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    key = next(k for k in records[0] if k.endswith("_accuracy"))
    return key, [r["wall_seconds"] / 60 for r in records], [100 * r[key] for r in records]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders holding log.jsonl")
    parser.add_argument("--out", default="training_curve.png")
    parser.add_argument("--target", type=float, default=95.0, help="draw a line at this accuracy")
    args = parser.parse_args()
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    for run in args.runs:
        key, minutes, accuracy = read_log(run)
        label = f"{Path(run).name} ({key.replace('_accuracy', '').replace('_', ' ')})"
        axes.plot(minutes, accuracy, marker="o", markersize=3, label=label)
        print(f"{run}: {accuracy[-1]:.2f}% after {minutes[-1]:.1f} min ({key})")
    axes.axhline(args.target, color="grey", linestyle="--", linewidth=1,
                 label=f"{args.target:g}% target")
    axes.set_xlabel("training wall time (minutes, 2 CPU cores)")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(bottom=max(0, min(axes.get_ylim()[0], args.target - 5)))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    FigureCanvasAgg(figure)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
