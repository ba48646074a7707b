"""How well does the live demo recognise garments held up to a camera? The scene benchmark.

    .venv/bin/python perf/live_accuracy.py [--model PATH] [--per-condition 200] [--seed 1]
                                           [--frames 3] [--json FILE] [--conditions NAME ...]
                                           [--failures DIR] [--ideal-camera]

Renders *test-set* garments (never training images) into 640x480 camera frames under each
named condition of fmnist_app.scenes, and runs every frame through the demo's own pipeline
(fmnist_app.live.pipeline: crop, preprocessing, two views, calibration, rejection, smoothing
over the frames of one scene). A garment scene counts as right when its last frame shows
the true class; a negative scene (no garment) counts as wrongly accepted when its last
frame shows any class. Prints accuracy per condition and overall, what the rest showed (a
wrong class; box empty; not inside the box; no garment: under the confidence threshold or
over the novelty threshold, and of those, how many the novelty score refused),
with the CPU, and next to it the ceiling: the model on the same garments as clean test
images, two views, nothing refused (what the scenes would score if the camera and the
preprocessing lost nothing). --ideal-camera films the same scenes without blur, sensor
noise and JPEG, to tell what the camera's artefacts cost from what the rest of the path
does. --failures DIR also writes, per condition, a contact sheet of
the scenes it got wrong: the test image, the camera's crop and the model's 28x28 input,
captioned with the true class and what the demo showed.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist_app import scenes
from fmnist_app.calibration import two_view_logits
from fmnist_app.dataset import CLASS_NAMES, SHIPPED_GRAPH, load_split
from fmnist_app.inference import ModelError
from fmnist_app.live.pipeline import (
    EMPTY,
    GARMENT,
    NO_GARMENT,
    NOT_INSIDE,
    Pipeline,
    load_classifier,
)
from fmnist_app.machine import cpu_model


def balanced_choice(labels, count, rng):
    """`count` test indices, the same number from every class (rounded up)."""
    per_class = -(-count // len(CLASS_NAMES))
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in range(len(CLASS_NAMES))])


def run_scene(classifier, condition, image28, frames, rng, camera=None):
    """The demo pipeline over the frames of one scene; returns the last result and the
    per-frame pipeline times."""
    pipeline = Pipeline(classifier)
    results = [pipeline.process(frame, scenes.BOX_FRACTION)
               for frame in scenes.render(condition, image28, rng, frames, camera)]
    return results[-1], [r.pipeline_ms for r in results]


TILE = 112                   # pixels a side of each picture on a failure sheet
SHEET_COLUMNS = 4            # failures per row


def shown_as(result):
    """What the window showed at the end of a scene, in a few words."""
    if result.verdict != GARMENT:
        return result.verdict
    name, probability = result.top3[0]
    return f"{name} {100 * probability:.0f}%"


def failure_tile(image28, result, true_class):
    """Test image (black for a negative scene) | camera crop | model input, captioned
    "true -> shown"."""
    def enlarged(gray):
        return cv2.cvtColor(cv2.resize(gray, (TILE, TILE), interpolation=cv2.INTER_NEAREST),
                            cv2.COLOR_GRAY2BGR)
    pictures = np.hstack([enlarged(image28), cv2.resize(result.crop, (TILE, TILE)),
                          enlarged(result.model_input)])
    caption = np.zeros((18, pictures.shape[1], 3), np.uint8)
    cv2.putText(caption, f"{true_class} -> {shown_as(result)}", (3, 13),
                cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([pictures, caption])


def write_sheet(tiles, path):
    """The tiles in rows of SHEET_COLUMNS, a gap between them, as one PNG."""
    blank = np.zeros_like(tiles[0])
    tiles = tiles + [blank] * (-len(tiles) % SHEET_COLUMNS)
    gap = np.full((tiles[0].shape[0], 6, 3), 60, np.uint8)
    rows = [np.hstack([part for tile in tiles[i:i + SHEET_COLUMNS] for part in (tile, gap)])
            for i in range(0, len(tiles), SHEET_COLUMNS)]
    cv2.imwrite(str(path), np.vstack(rows))


def measure(classifier, images, labels, per_condition, frames, seed,
            conditions=tuple(scenes.CONDITIONS), failures=None, camera=None):
    """Rows of results per condition and the per-frame pipeline times; with `failures` (a
    dict), also {condition: [failure tiles]} for the scenes the demo got wrong; `camera`
    as for scenes.render."""
    rows, times = [], []
    for number, condition in enumerate(scenes.CONDITIONS):
        if condition not in conditions:
            continue                    # the others keep their scenes: seeded per condition
        rng = np.random.default_rng([seed, number])
        negative = condition in scenes.NEGATIVE_CONDITIONS
        chosen = balanced_choice(labels, per_condition if not negative else per_condition // 2,
                                 rng)
        hits, wrong_class, novel = 0, 0, 0
        verdicts = dict.fromkeys((EMPTY, NOT_INSIDE, NO_GARMENT), 0)
        for index in chosen:
            result, pipeline_ms = run_scene(classifier, condition, images[index], frames, rng,
                                            camera)
            times += pipeline_ms
            shown = result.verdict == GARMENT
            if not shown:
                verdicts[result.verdict] += 1
            # Of the "no garment" verdicts, those the novelty score gave (confident or not).
            novel += (result.verdict == NO_GARMENT and result.novelty is not None
                      and bool(classifier.calibration.novel(result.novelty)[0]))
            if negative:
                hits += shown                       # wrongly accepted
                missed = shown
            else:
                right = shown and result.top3[0][0] == CLASS_NAMES[labels[index]]
                hits += right
                wrong_class += shown and not right
                missed = not right
            if failures is not None and missed:
                failures.setdefault(condition, []).append(
                    failure_tile(np.zeros_like(images[index]), result, "no garment") if negative
                    else failure_tile(images[index], result, CLASS_NAMES[labels[index]]))
        clean = None if negative else float(np.mean(
            two_view_logits(classifier.model, images[chosen]).argmax(axis=1) == labels[chosen]))
        count = len(chosen)
        rows.append({"condition": condition, "negative": negative, "scenes": count,
                     "share": hits / count, "wrong_class": wrong_class / count,
                     "empty": verdicts[EMPTY] / count, "not_inside": verdicts[NOT_INSIDE] / count,
                     "no_garment": verdicts[NO_GARMENT] / count, "novel": novel / count,
                     "rejected": (verdicts[NOT_INSIDE] + verdicts[NO_GARMENT]) / count,
                     "same_garments_clean": clean})
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
    parser.add_argument("--failures", type=Path, metavar="DIR",
                        help="also write a contact sheet of each condition's failures into DIR")
    parser.add_argument("--ideal-camera", action="store_true",
                        help="the same scenes without blur, sensor noise and JPEG: what the "
                             "camera's artefacts cost")
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.model)
    except ModelError as err:
        sys.exit(f"error: {err}")
    if args.failures:
        try:
            args.failures.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            sys.exit(f"error: cannot write failure sheets to {args.failures}: {err.strerror}")
    images, labels = load_split("test")
    started = time.perf_counter()
    failures = {} if args.failures else None
    rows, times = measure(classifier, images, labels, args.per_condition, args.frames, args.seed,
                          args.conditions, failures,
                          scenes.ideal_camera if args.ideal_camera else None)
    seconds = time.perf_counter() - started

    garments = [r for r in rows if not r["negative"]]
    negative_rows = [r for r in rows if r["negative"]]
    overall = mean_of(garments, "share")
    clean = mean_of(garments, "same_garments_clean")
    negatives = mean_of(negative_rows, "share")
    print(f"{'condition':30s} {'scenes':>6s} {'right':>7s} {'wrong class':>11s} {'empty':>6s} "
          f"{'not inside':>10s} {'no garment':>10s} {'(novel)':>8s} {'same, clean':>11s}")
    for r in rows:
        print(f"{r['condition']:30s} {r['scenes']:6d} {100 * r['share']:6.1f}% "
              + (f"{'':11s} " if r["negative"] else f"{100 * r['wrong_class']:10.1f}% ")
              + f"{100 * r['empty']:5.1f}% {100 * r['not_inside']:9.1f}% "
              f"{100 * r['no_garment']:9.1f}% {100 * r['novel']:7.1f}%"
              + ("   <- share wrongly accepted" if r["negative"]
                 else f" {100 * r['same_garments_clean']:10.1f}%"))
    summary = []
    if garments:
        summary.append(f"garment conditions overall: {100 * overall:.1f}% right (the same "
                       f"garments clean: {100 * clean:.1f}%)")
    if negative_rows:
        summary.append(f"negatives: {100 * negatives:.1f}% wrongly accepted as a garment")
    print("\n" + "; ".join(summary))
    print(f"pipeline per frame: median {np.median(times):.1f} ms, p95 "
          f"{np.percentile(times, 95):.1f} ms; {len(times)} frames in {seconds:.0f} s "
          f"on {cpu_model()}; model {args.model}; seed {args.seed}"
          + ("; ideal camera (no blur, noise or JPEG)" if args.ideal_camera else ""))
    for condition, tiles in (failures or {}).items():
        number = list(scenes.CONDITIONS).index(condition)
        path = args.failures / f"{number:02d}_{re.sub('[^a-z0-9]+', '_', condition.lower())}.png"
        write_sheet(tiles, path)
        print(f"wrote {path} ({len(tiles)} failures)")
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model), "seed": args.seed, "frames": args.frames,
            "camera": "ideal" if args.ideal_camera else "webcam",
            "cpu": cpu_model(), "seconds": round(seconds, 1), "conditions": rows,
            "garment_accuracy": overall, "same_garments_clean": clean,
            "negatives_accepted": negatives,
            "pipeline_ms_median": float(np.median(times))}, indent=2) + "\n")


if __name__ == "__main__":
    main()
