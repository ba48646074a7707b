"""Augmented images per second of the full training input pipeline.

    python perf/augment_speed.py [--prob 0.3] [--batch 128] [--batches 300]

Reads the 60,000 training images, then times the tf.data pipeline the trainer uses
(shuffle, batch, the five augmentations vectorised per batch, prefetch) with no model.
The goal is >= 20,000 img/s, far above the ~700-900 img/s that training consumes here.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data_input
from fmnist_app.dataset import load_split
from fmnist_app.machine import cpu_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prob", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images, labels = load_split("train")
    dataset = data_input.train_dataset(images, labels, args.batch, args.prob, seed=0)
    iterator = iter(dataset)
    for _ in range(20):  # trace the graph and fill the prefetch buffer
        next(iterator)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.batches):
            next(iterator)
        rates.append(args.batches * args.batch / (time.perf_counter() - start))
    rates.sort()
    print(f"augmented pipeline, AUGMENT_PROB={args.prob}, batch {args.batch}: "
          f"median {rates[len(rates) // 2]:,.0f} img/s (runs: "
          + ", ".join(f"{r:,.0f}" for r in rates) + f") on {cpu_model()}")


if __name__ == "__main__":
    main()
