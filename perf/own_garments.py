"""Does fine-tuning on "your own garments" fix what the shipped model gets wrong on them?

    .venv/bin/python perf/own_garments.py [--per-class 20] [--shots 1] [--seed 7] [--out DIR]
                                          [--model RUN_DIR] [--set KEY=VALUE ...]

A stand-in for a user's folder: test-set garments rendered as camera scenes under the scene
benchmark's harder conditions (seed --seed, used by no tuning), three frames each through the
demo pipeline, saved as the window's 0-9 keys would save them. With --shots K each garment is
saved from K scenes, as a user shoots their own sneaker more than once: the fine-tune's
held-out half then holds new shots of garments it trained on (the question "does it now
know *my* sneaker"), where with K = 1 every held-out image is a garment it never saw.
Then the README's commands: `benchmark.py --images`-style measurement of the shipped
model (or the run given by --model), the fine-tune from it (configs/finetune.json, timed),
and the same measurement of the fine-tuned model, on the half of the folder the fine-tune
held out. Also the Fashion-MNIST test accuracy of both, on the test images not used for the
folder. Prints one table with the CPU.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_app import scenes  # noqa: E402
from fmnist_app.config import load as load_config  # noqa: E402
from fmnist_app.dataset import GRAPH_FILENAME, SHIPPED_MODEL_DIR, load_split  # noqa: E402
from fmnist_app.evaluation import (  # noqa: E402
    confused_pairs_table,
    confusion_matrix,
    most_confused_pairs,
)
from fmnist_app.inference import FrozenModel  # noqa: E402
from fmnist_app.live.collect import read_examples, save_example  # noqa: E402
from fmnist_app.live.pipeline import EMPTY, NOT_INSIDE, Pipeline, load_classifier  # noqa: E402
from fmnist_app.machine import cpu_model  # noqa: E402

HARD_CONDITIONS = ("light garment on dark", "textured background", "colour on colour",
                   "hand at the box edge", "off-centre, rotated, scaled")


def collect(folder, per_class, seed, shots, graph):
    """Render and save the stand-in folder, each garment in `shots` scenes (each under the
    next condition), keeping what the demo with `graph` finds in the box; returns the test
    index of every saved image, in the order `read_examples` reads them back (class folder,
    then file name), and the scene condition each was shot under."""
    images, labels = load_split("test")
    classifier = load_classifier(graph)
    rng = np.random.default_rng(seed)
    saved = []
    for label in range(10):
        for number, index in enumerate(rng.choice(np.flatnonzero(labels == label), per_class,
                                                  replace=False)):
            for shot in range(shots):
                condition = HARD_CONDITIONS[(number + shot) % len(HARD_CONDITIONS)]
                pipeline = Pipeline(classifier)
                for frame in scenes.render(condition, images[index], rng, 3):
                    result = pipeline.process(frame, scenes.BOX_FRACTION)
                if result.verdict not in (EMPTY, NOT_INSIDE):    # a user saves what they see
                    saved.append((save_example(folder, label, result, f"scene {condition}"),
                                  index, condition))
    saved.sort()
    return (np.asarray([index for _, index, _ in saved]),
            np.asarray([condition for _, _, condition in saved]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shots", type=int, default=1,
                        help="scenes per garment (default 1: every image a different garment)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/own_garments"))
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR, metavar="RUN_DIR",
                        help="the run to start from and compare with (default: the shipped "
                             "model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to the fine-tune (a change to configs/finetune.json)")
    args = parser.parse_args()
    folder, runs = args.out / "my_garments", args.out / "runs"
    if args.out.exists():
        sys.exit(f"error: {args.out} exists; pass a new --out")
    start_graph = args.model / GRAPH_FILENAME
    if not start_graph.is_file():
        sys.exit(f"error: no {GRAPH_FILENAME} in {args.model}; pass a finished run's folder")
    source, shot_under = collect(folder, args.per_class, args.seed, args.shots, start_graph)

    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "fmnist_app.train", "--config",
                    str(ROOT / "configs/finetune.json"), "--init-from",
                    str(args.model), "--output-dir", str(runs), "--model-dir", "tuned",
                    "--set", f"EXTRA_DATA_DIR={json.dumps(str(folder))}",
                    *[arg for change in args.set for arg in ("--set", change)]],
                   cwd=ROOT, check=True)
    whole_command = time.monotonic() - started
    metrics = json.loads((runs / "tuned" / "metrics.json").read_text())
    config = load_config(runs / "tuned" / "config.json")

    from fmnist_app.train import extra_split
    images, labels, _ = read_examples(folder)
    held_out, _ = extra_split(labels, config.EXTRA_HOLDOUT, config.SEED)
    test_images, test_labels = load_split("test")
    assert np.array_equal(test_labels[source], labels), "folder and test indices out of step"
    # The ceiling: the held-out shots' own garments as clean test images, no camera between.
    clean = test_images[source[held_out]]
    unused = np.setdiff1d(np.arange(len(test_labels)), source)
    rows, errors_by_condition = [], []
    tuned = runs / "tuned" / GRAPH_FILENAME
    for name, graph in ((args.model.name, start_graph), ("fine-tuned", tuned)):
        model = FrozenModel(graph)
        own = model.predict(images[held_out]).argmax(axis=1)
        same_clean = model.predict(clean).argmax(axis=1)
        test = model.predict(test_images[unused]).argmax(axis=1)
        errors_by_condition.append({condition: int(np.sum(
            (own != labels[held_out]) & (shot_under[held_out] == condition)))
            for condition in HARD_CONDITIONS})
        rows.append((name, np.mean(own == labels[held_out]),
                     np.mean(same_clean == labels[held_out]),
                     np.mean(test == test_labels[unused]),
                     most_confused_pairs(confusion_matrix(labels[held_out], own))))
    print(f"\n{len(labels)} saved images ({args.per_class} garments per class, {args.shots} "
          f"scene(s) each, seed {args.seed}); "
          f"{len(held_out)} held out by the fine-tune; CPU {cpu_model()}")
    print(f"{'model':12s} {'held-out own':>13s} {'errors':>7s} {'same, clean**':>14s} "
          f"{'errors':>7s} {'FMNIST test*':>13s}")
    for name, own, same_clean, test, _ in rows:
        print(f"{name:12s} {100 * own:12.1f}% {round((1 - own) * len(held_out)):7d} "
              f"{100 * same_clean:13.1f}% {round((1 - same_clean) * len(held_out)):7d} "
              f"{100 * test:12.2f}%")
    print(f"* the {len(unused)} test images not rendered into the folder")
    print("** the held-out images' own garments as clean Fashion-MNIST test images: "
          "the errors left with no camera in between")
    print(f"\nheld-out errors by the scene they were shot in ({args.model.name} -> fine-tuned):")
    for condition in HARD_CONDITIONS:
        print(f"  {condition:30s} {np.sum(shot_under[held_out] == condition):4d} shots  "
              f"{errors_by_condition[0][condition]:3d} -> {errors_by_condition[1][condition]:3d}")
    for name, _, _, _, pairs in rows:
        print(f"\n{name} on the held-out images: "
              + confused_pairs_table({"most_confused": pairs}))
    print(f"fine-tune: {metrics['steps']} steps, training {metrics['wall_seconds'] / 60:.1f} min, "
          f"whole command {whole_command / 60:.1f} min; configs/finetune.json"
          + (f" with {' '.join(args.set)}" if args.set else ""))


if __name__ == "__main__":
    main()
