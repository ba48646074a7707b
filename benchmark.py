"""Evaluate a frozen graph on the 10,000 Fashion-MNIST test images.

    python benchmark.py [--model PATH] [--data-dir DIR] [--json FILE] [--plots DIR]
                        [--compare OTHER.json] [--tta]

Prints the per-class test accuracy table, precision/recall/F1, the confusion matrix, the
most confused pairs and the speed on this machine. Reads only the frozen graph (through
fmnist_app.inference) and the test set, never the model code. The logic lives in
fmnist_app.evaluation and fmnist_app.plots.
"""

import argparse
import os
import sys
from pathlib import Path

from fmnist_app.dataset import DATA_DIR_ENV, DEFAULT_DATA_DIR, SHIPPED_GRAPH


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHIPPED_GRAPH),
                        help="frozen graph to evaluate (default: the shipped model, %(default)s)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: "
                        f"${DATA_DIR_ENV}, else {DEFAULT_DATA_DIR})")
    parser.add_argument("--images", metavar="DIR",
                        help="evaluate on your own labelled images instead of the test set: one "
                             "folder per class, as the window's 0-9 keys save them")
    parser.add_argument("--mirror", action="store_true",
                        help="mirror every image first (shoes then point right, as a user may "
                             "hold them)")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("--plots", metavar="DIR", help="also write the PNG plots into DIR")
    parser.add_argument("--compare", metavar="OTHER.json",
                        help="print per-class differences against a JSON from an earlier --json")
    parser.add_argument("--tta", action="store_true",
                        help="also report two-view (image + mirror) test-time averaging, "
                             "separately")
    return parser.parse_args(argv)


def check_writable(json_path, plots_dir):
    """Raise OSError now, not after the whole run, if an output cannot be written."""
    if json_path:
        folder = Path(json_path).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise OSError(13, "folder missing or not writable", str(json_path))
    if plots_dir:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        if not os.access(plots_dir, os.W_OK):
            raise OSError(13, "not writable", str(plots_dir))


def run(args):
    import numpy as np

    from fmnist_app import calibration, evaluation
    from fmnist_app.dataset import find_data_dir, load_split
    from fmnist_app.evaluation import ReportError
    from fmnist_app.inference import FrozenModel

    # Cheap checks first, so a bad --compare file or output path fails before the model runs.
    other = evaluation.read_report(args.compare) if args.compare else None
    check_writable(args.json, args.plots)
    model = FrozenModel(args.model)
    fitted = calibration.load_for(args.model)
    if args.images:
        from fmnist_app.live.collect import read_examples
        data_dir = Path(args.images)
        images, labels, skipped = read_examples(data_dir)
        for path, why in skipped:
            print(f"skipped {path}: {why}")
        if not len(images):
            raise ReportError(f"no usable images in {data_dir}; save some with the window's "
                              "0-9 keys (--collect-dir) or put 28x28 PNGs in class folders")
    else:
        data_dir = find_data_dir(args.data_dir)
        images, labels = load_split("test", data_dir)

    if args.mirror:
        images = np.ascontiguousarray(np.asarray(images)[:, :, ::-1])
    logits, features, timing = evaluation.timed_predictions(model, images)
    probabilities = calibration.softmax(logits.astype(float))
    two_view_logits, two_view_features = calibration.two_view_outputs(
        model, images, plain=(logits, features))
    tta = calibration.softmax(two_view_logits.astype(float)) if args.tta else None
    report = evaluation.build_report(
        args.model, data_dir, labels, probabilities, timing, tta,
        evaluation.calibration_summary(two_view_logits, labels, fitted, two_view_features),
        "your images" if args.images else "test")
    print(evaluation.format_report(report))
    if other is not None:
        print("\n" + evaluation.format_comparison(report, other, args.compare))
    if args.json:
        evaluation.write_report(report, args.json)
        print(f"\nwrote {args.json}")
    if args.plots:
        from fmnist_app.plots import write_plots

        paths = write_plots(report, images, labels, probabilities, args.plots)
        print(f"\nwrote {', '.join(str(p) for p in paths)}")


def main(argv=None):
    args = parse_args(argv)
    from fmnist_app.calibration import CalibrationError
    from fmnist_app.dataset import DatasetError
    from fmnist_app.evaluation import ReportError
    from fmnist_app.inference import ModelError
    from fmnist_app.live.collect import CollectError

    try:
        run(args)
    except (ModelError, DatasetError, ReportError, CalibrationError, CollectError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # writing --json or --plots
        print(f"error: cannot write {err.filename} ({err.strerror}); choose a writable path",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
