"""Has a fine-tune on your own garments gone too far, or not far enough? Its weights measured
on the line from where it started.

    .venv/bin/python perf/finetune_line.py RUN_DIR [RUN_DIR ...] [--alphas 0.5 0.8 1 1.5]

For each alpha the weights (1 - alpha) * start + alpha * fine-tuned (fmnist_app.interpolate's
mix, batch-norm statistics too; alpha 0 is the starting run, 1 the fine-tune, above 1 goes on
in the same direction), and with them the errors on the half of your images the run held out
(EXTRA_DATA_DIR, EXTRA_HOLDOUT and SEED from its config.json, split as the fine-tune split
them) and the accuracy on all Fashion-MNIST test images. Mixing the two ends often keeps most
of what a fine-tune taught and gives back some of what it cost (WiSE-FT, Wortsman et al.
2022). If your images' errors are lowest at alpha 1, stopping earlier or pushing further in
the same direction does not help. With several runs (a fine-tune of each of several folders)
it also prints the totals. The start is each run's INIT_FROM unless --start names it.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist_app.config import load as load_config
from fmnist_app.machine import cpu_model

ALPHAS = (0.0, 0.5, 0.8, 1.0, 1.25, 1.5)


def line(run, start=None, alphas=ALPHAS):
    """{alpha: (errors on the run's held-out images, their number, test accuracy)}."""
    from fmnist_app.dataset import load_split
    from fmnist_app.interpolate import end_weights, mixed
    from fmnist_app.live.collect import read_examples
    from fmnist_app.models import create_model
    from fmnist_app.train import extra_split
    config = load_config(run / "config.json")
    if not config.EXTRA_DATA_DIR:
        sys.exit(f"error: {run} is not a fine-tune on your images (no EXTRA_DATA_DIR in its "
                 "config.json)")
    start = Path(start or config.INIT_FROM)
    images, labels, _ = read_examples(config.EXTRA_DATA_DIR)
    held_out, _ = extra_split(labels, config.EXTRA_HOLDOUT, config.SEED)
    test_images, test_labels = load_split("test", config.DATA_DIR)
    model = create_model(config.MODEL, config.MEMBERS)
    ends = end_weights(model, start, run)

    def predicted(pixels):
        return model.predict(pixels.astype(np.float32)[..., None], batch_size=1000,
                             verbose=0).argmax(axis=1)

    results = {}
    for alpha in alphas:
        model.set_weights(mixed(*ends, alpha))
        errors = int(np.sum(predicted(images[held_out]) != labels[held_out]))
        results[alpha] = (errors, len(held_out),
                          float(np.mean(predicted(test_images) == test_labels)))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR",
                        help="finished fine-tunes on your images")
    parser.add_argument("--start", type=Path,
                        help="the run they started from (default: each run's INIT_FROM)")
    parser.add_argument("--alphas", type=float, nargs="+", default=ALPHAS)
    args = parser.parse_args()
    totals = {alpha: [0, 0] for alpha in args.alphas}
    print(f"errors on the held-out images (test accuracy) by alpha; CPU {cpu_model()}")
    print(f"{'run':40s} " + " ".join(f"{alpha:>16g}" for alpha in args.alphas))
    for run in args.runs:
        results = line(run, args.start, args.alphas)
        cells = []
        for alpha, (errors, count, test) in results.items():
            totals[alpha][0] += errors
            totals[alpha][1] += count
            cells.append(f"{errors:4d} ({100 * test:5.2f}%)")
        print(f"{str(run)[-40:]:40s} " + " ".join(f"{cell:>16s}" for cell in cells))
    if len(args.runs) > 1:
        print(f"{'all':40s} " + " ".join(f"{errors:4d} of {count:<7d}"
                                         for errors, count in totals.values()))


if __name__ == "__main__":
    main()
