"""Where does the camera path lose garments the model knows? One step at a time.

    .venv/bin/python perf/camera_path_loss.py [--model PATH] [--garments 1000] [--seed 1]
                                              [--frames 3] [--condition NAME]

The same test garments (the same number from every class) go through the demo's own
pipeline (fmnist_app.live.pipeline, as the window and perf/live_accuracy.py use it) in
scenes that add one thing at a time between the dataset image and a webcam frame:

1. the test image itself (the model's two views, as in the scene benchmark's "clean" column);
2. that image printed the way the dataset's product photos look (dark where the garment is,
   on a wall the colour of the paper), held still in the middle of the box, in even light,
   filmed by a perfect camera: what the preprocessing alone changes;
3. the same, but the garment in the scene benchmark's cloth (grey or coloured, with its own
   shading) on its light walls: what the cloth changes;
4. held as the benchmark holds it in --condition (turned, off-centre, sized, a hand ...), in
   uneven light, still a perfect camera (perf/live_accuracy.py --ideal-camera);
5. the same scenes through the webcam: blur, sensor noise, JPEG (perf/live_accuracy.py).

Prints, per step, the share of garments whose most likely class is right (nothing refused),
the share the demo shows with the right class (its "no garment" thresholds applied), and
the share lost before the model (box empty or not inside), with the CPU.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from live_accuracy import balanced_choice  # perf/live_accuracy.py, next to this script

from fmnist_app import scenes
from fmnist_app.calibration import two_view_logits
from fmnist_app.dataset import CLASS_NAMES, SHIPPED_GRAPH, load_split
from fmnist_app.inference import ModelError
from fmnist_app.live.pipeline import GARMENT, Pipeline, load_classifier
from fmnist_app.machine import cpu_model

PAPER = 0.9                      # the print's paper and wall, grey level
PRINT_SHADING = 0.9              # the darkest print is a tenth of the paper's level
EVEN_LIGHT = 220.0


def still_scene(image28, colour, shading, wall):
    """The garment centred, upright and at its usual size on a plain wall, evenly lit, for a
    perfect camera."""
    canvas = scenes.plain(scenes.grey(wall))
    scenes.place_garment(canvas, image28, colour, shading)
    light = np.full((scenes.HEIGHT, scenes.WIDTH, 1), EVEN_LIGHT, np.float32)
    return scenes.Scene(canvas, light, blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=None)


def printed(image28, rng):
    return still_scene(image28, scenes.grey(PAPER), PRINT_SHADING, PAPER)


def in_cloth(image28, rng):
    colour, shading = scenes.dark_cloth(rng)
    return still_scene(image28, colour, shading, rng.uniform(*scenes.LIGHT_WALL))


def steps(condition):
    """(name, frames(image28, rng, count) or None for the test image itself)."""
    def still(make):
        return lambda image28, rng, count: scenes.frames(make(image28, rng), count, rng)
    return [
        ("the test image", None),
        ("printed, held still, even light", still(printed)),
        ("the benchmark's cloth and walls", still(in_cloth)),
        (f"held as in \"{condition}\", perfect camera",
         lambda image28, rng, count: scenes.render(condition, image28, rng, count,
                                                   scenes.ideal_camera)),
        ("... through the webcam", lambda image28, rng, count:
         scenes.render(condition, image28, rng, count)),
    ]


def measure(classifier, images, labels, frames, seed, condition):
    """Rows (step, right class, shown right, lost before the model), shares of the garments."""
    rows = []
    for name, film in steps(condition):
        if film is None:            # the scene benchmark's "clean" column: nothing refused
            right = np.mean(two_view_logits(classifier.model, images).argmax(axis=1) == labels)
            rows.append((name, right, right, 0.0))
            continue
        right = shown_right = lost = 0
        for number, (image28, label) in enumerate(zip(images, labels)):
            pipeline = Pipeline(classifier)
            # Each garment gets the same random numbers at every step: the scenes of steps
            # 4 and 5 are the same scene, filmed two ways.
            for frame in film(image28, np.random.default_rng([seed, number]), frames):
                result = pipeline.process(frame, scenes.BOX_FRACTION)
            if result.probabilities is None:
                lost += 1
                continue
            hit = result.top3[0][0] == CLASS_NAMES[label]
            right += hit
            shown_right += hit and result.verdict == GARMENT
        rows.append((name, right / len(labels), shown_right / len(labels), lost / len(labels)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_GRAPH)
    parser.add_argument("--garments", type=int, default=1000, metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=3, help="frames per scene (default 3)")
    parser.add_argument("--condition", default="plain light background",
                        choices=list(scenes.GARMENT_CONDITIONS))
    args = parser.parse_args()
    try:
        classifier = load_classifier(args.model)
    except ModelError as err:
        sys.exit(f"error: {err}")
    images, labels = load_split("test")
    chosen = balanced_choice(labels, args.garments, np.random.default_rng(args.seed))
    rows = measure(classifier, images[chosen], labels[chosen], args.frames, args.seed,
                   args.condition)
    width = max(len(row[0]) for row in rows)
    print(f"{'step':{width}s} {'right class':>11s} {'shown right':>11s} {'lost before':>11s}")
    for name, right, shown_right, lost in rows:
        print(f"{name:{width}s} {100 * right:10.1f}% {100 * shown_right:10.1f}% "
              f"{100 * lost:10.1f}%")
    print(f"{len(chosen)} test garments, seed {args.seed}, {args.frames} frames per scene; "
          f"model {args.model}; CPU {cpu_model()}")


if __name__ == "__main__":
    main()
