"""Mix a fine-tuned run's weights with the weights it started from, chosen on validation.

    python -m fmnist_app.interpolate output_dir/FINE_TUNED --start RUN_IT_STARTED_FROM \
        --out output_dir/NEW

A short fine-tune (the camera stage, your own garments) moves the weights a little way from
where they started; averaging the two ends, weight by weight, often keeps most of what the
fine-tune taught and gives back some of what it cost on the original task (WiSE-FT, Wortsman
et al. 2022). The share `alpha` of the fine-tuned weights is chosen on the run's own held-out
validation images, never the test set: the largest of 0.1, 0.2, ..., 1.0 whose validation
accuracy is at least that of the starting weights. Writes a run folder like training does
(model.weights.h5, frozen_inference_graph.pb, config.json, metrics.json with every alpha's
validation accuracy), so `python -m fmnist_app.calibrate`, `benchmark.py`, the scene
benchmark and the demo take it as they take a trained run.
"""

import argparse
import sys
from pathlib import Path

from fmnist_app import derived_run
from fmnist_app.calibrate import next_step
from fmnist_app.config import ConfigError
from fmnist_app.config import load as load_config

ALPHAS = tuple(round(0.1 * step, 1) for step in range(11))      # 0.0 (start) ... 1.0 (tuned)


def mixed(start, tuned, alpha):
    """Each weight array (1 - alpha) * start + alpha * tuned (batch-norm statistics too)."""
    return [(1 - alpha) * a + alpha * b for a, b in zip(start, tuned)]


def end_weights(model, start, tuned):
    """(start weights, tuned weights): each run folder's saved weights loaded into `model`,
    an instance of the architecture both share."""
    from fmnist_app.train import WEIGHTS_FILENAME
    ends = []
    for folder in (start, tuned):
        model.load_weights(folder / WEIGHTS_FILENAME)
        ends.append(model.get_weights())
    return ends


def choose_alpha(accuracies):
    """The largest alpha whose validation accuracy is at least the starting weights' (alpha 0)."""
    return max(alpha for alpha, accuracy in accuracies.items() if accuracy >= accuracies[0.0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tuned", type=Path, help="the fine-tuned run's folder")
    parser.add_argument("--start", type=Path, required=True,
                        help="the folder of the weights it started from (its INIT_FROM)")
    parser.add_argument("--out", type=Path, required=True, help="the new run folder to write")
    args = parser.parse_args(argv)
    derived_run.check_folders({args.tuned: "the fine-tuned run", args.start: "--start"},
                              args.out)
    try:
        config = load_config(args.tuned / "config.json")
    except (ConfigError, OSError) as err:
        sys.exit(f"error: {err}")
    validation = derived_run.held_out(args.tuned)

    from fmnist_app.models import create_model
    model = create_model(config.MODEL, config.MEMBERS)
    ends = end_weights(model, args.start, args.tuned)
    accuracies = {}
    for alpha in ALPHAS:
        model.set_weights(mixed(*ends, alpha))
        accuracies[alpha] = derived_run.validation_accuracy(model, validation)
        print(f"alpha {alpha:.1f}: validation accuracy {100 * accuracies[alpha]:.2f}%")
    alpha = choose_alpha(accuracies)
    model.set_weights(mixed(*ends, alpha))

    graph = derived_run.write(model, args.out, (args.tuned / "config.json").read_text(), {
        "model": config.MODEL, "seed": config.SEED,
        "interpolated": {"tuned": str(args.tuned), "start": str(args.start)},
        "alpha": alpha, "validation_accuracy": accuracies[alpha],
        "validation_accuracy_by_alpha": {f"{a:.1f}": v for a, v in accuracies.items()}})
    print(f"alpha {alpha:.1f} (the largest with validation accuracy >= the start's "
          f"{100 * accuracies[0.0]:.2f}%): wrote {graph}\n{next_step(args.out)}")


if __name__ == "__main__":
    main()
