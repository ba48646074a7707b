"""How well does the live demo recognise garments held up to a camera? The scene benchmark.

    .venv/bin/python perf/live_accuracy.py [--model PATH] [--per-condition 200] [--seed 1]
                                           [--frames 3] [--json FILE] [--conditions NAME ...]

Renders *test-set* garments (never training images) into 640x480 camera frames under each
named condition of fmnist_app.scenes, and runs every frame through the demo's own pipeline
(fmnist_app.live.pipeline: crop, preprocessing, two views, calibration, rejection, smoothing
over the frames of one scene). A garment scene counts as right when its last frame shows
the true class; a negative scene (no garment) counts as wrongly accepted when its last
frame shows any class. Prints accuracy per condition and overall, with the CPU, and next to
it the ceiling: the model on the same garments as clean test images, two views, nothing
refused (what the scenes would score if the camera and the preprocessing lost nothing).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist_app import scenes
from fmnist_app.calibration import two_view_logits
from fmnist_app.dataset import CLASS_NAMES, SHIPPED_GRAPH, load_split
from fmnist_app.inference import ModelError
from fmnist_app.live.pipeline import GARMENT, Pipeline, load_classifier
from fmnist_app.machine import cpu_model


def balanced_choice(labels, count, rng):
    """`count` test indices, the same number from every class (rounded up)."""
    per_class = -(-count // len(CLASS_NAMES))
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in range(len(CLASS_NAMES))])


def run_scene(classifier, condition, image28, frames, rng):
    """The demo pipeline over the frames of one scene; returns the last result and the
    per-frame pipeline times."""
    pipeline = Pipeline(classifier)
    results = [pipeline.process(frame, scenes.BOX_FRACTION)
               for frame in scenes.render(condition, image28, rng, frames)]
    return results[-1], [r.pipeline_ms for r in results]


def measure(classifier, images, labels, per_condition, frames, seed,
            conditions=tuple(scenes.CONDITIONS)):
    rows, times = [], []
    for number, condition in enumerate(scenes.CONDITIONS):
        if condition not in conditions:
            continue                    # the others keep their scenes: seeded per condition
        rng = np.random.default_rng([seed, number])
        negative = condition in scenes.NEGATIVE_CONDITIONS
        chosen = balanced_choice(labels, per_condition if not negative else per_condition // 2,
                                 rng)
        hits, empty, rejected = 0, 0, 0
        for index in chosen:
            result, pipeline_ms = run_scene(classifier, condition, images[index], frames, rng)
            times += pipeline_ms
            shown = result.verdict == GARMENT
            empty += result.empty
            rejected += not shown and not result.empty
            if negative:
                hits += shown
            else:
                hits += shown and result.top3[0][0] == CLASS_NAMES[labels[index]]
        clean = None if negative else float(np.mean(
            two_view_logits(classifier.model, images[chosen]).argmax(axis=1) == labels[chosen]))
        rows.append({"condition": condition, "negative": negative, "scenes": len(chosen),
                     "share": hits / len(chosen), "empty": empty / len(chosen),
                     "rejected": rejected / len(chosen), "same_garments_clean": clean})
    return rows, times


def mean_of(rows, key):
    """The mean of `key` over `rows`, or None when --conditions left none of them."""
    return float(np.mean([r[key] for r in rows])) if rows else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_GRAPH)
    parser.add_argument("--per-condition", type=int, default=200, metavar="N",
                        help="garment scenes per condition (negatives: half); default 200")
    parser.add_argument("--frames", type=int, default=3, help="frames per scene (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="FILE")
    parser.add_argument("--conditions", nargs="+", default=list(scenes.CONDITIONS),
                        choices=list(scenes.CONDITIONS), metavar="NAME",
                        help="only these conditions (default all): "
                             + "; ".join(scenes.CONDITIONS))
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.model)
    except ModelError as err:
        sys.exit(f"error: {err}")
    images, labels = load_split("test")
    started = time.perf_counter()
    rows, times = measure(classifier, images, labels, args.per_condition, args.frames, args.seed,
                          args.conditions)
    seconds = time.perf_counter() - started

    garments = [r for r in rows if not r["negative"]]
    negative_rows = [r for r in rows if r["negative"]]
    overall = mean_of(garments, "share")
    clean = mean_of(garments, "same_garments_clean")
    negatives = mean_of(negative_rows, "share")
    print(f"{'condition':30s} {'scenes':>6s} {'right':>7s} {'empty':>6s} {'no garment':>11s} "
          f"{'same, clean':>12s}")
    for r in rows:
        print(f"{r['condition']:30s} {r['scenes']:6d} {100 * r['share']:6.1f}% "
              f"{100 * r['empty']:5.1f}% {100 * r['rejected']:10.1f}%"
              + ("   <- share wrongly accepted" if r["negative"]
                 else f" {100 * r['same_garments_clean']:11.1f}%"))
    summary = []
    if garments:
        summary.append(f"garment conditions overall: {100 * overall:.1f}% right (the same "
                       f"garments clean: {100 * clean:.1f}%)")
    if negative_rows:
        summary.append(f"negatives: {100 * negatives:.1f}% wrongly accepted as a garment")
    print("\n" + "; ".join(summary))
    print(f"pipeline per frame: median {np.median(times):.1f} ms, p95 "
          f"{np.percentile(times, 95):.1f} ms; {len(times)} frames in {seconds:.0f} s "
          f"on {cpu_model()}; model {args.model}; seed {args.seed}")
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model), "seed": args.seed, "frames": args.frames,
            "cpu": cpu_model(), "seconds": round(seconds, 1), "conditions": rows,
            "garment_accuracy": overall, "same_garments_clean": clean,
            "negatives_accepted": negatives,
            "pipeline_ms_median": float(np.median(times))}, indent=2) + "\n")


if __name__ == "__main__":
    main()
