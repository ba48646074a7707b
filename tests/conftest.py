"""Shared fixtures: a small, valid Fashion-MNIST-format dataset written to disk."""

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_idx(path, array, magic, compress=True):
    """Write `array` (uint8) as an IDX file with the given magic number."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def synthetic_images(labels, seed):
    """28x28 images where each class is a bright bar at its own place: easy to learn."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, (len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 2 + 2 * int(label)
        images[i, row:row + 4, 4 + int(label):20] = 230
    return images


def make_dataset(folder, train_per_class=60, test_per_class=20, compress=True):
    """Write the four IDX files for a small balanced dataset into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split, per_class, seed in (("train", train_per_class, 0), ("t10k", test_per_class, 1)):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", synthetic_images(labels, seed),
                  2051, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels, 2049, compress)
    return folder


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fmnist"))
