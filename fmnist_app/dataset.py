"""Fashion-MNIST facts and files: class names, sizes, where the data and the shipped model
live, and the IDX reader. TensorFlow-free, so plots, the demo and the benchmark stay light.

    python -m fmnist_app.dataset            # where the dataset was found, or how to get it
"""

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28
# Sandal, Sneaker and Ankle boot all face left in train and test.
FOOTWEAR_CLASSES = (5, 7, 9)

REPO_ROOT = Path(__file__).resolve().parents[1]
GRAPH_FILENAME = "frozen_inference_graph.pb"
SHIPPED_MODEL_DIR = REPO_ROOT / "output_dir" / "final_model"
SHIPPED_GRAPH = SHIPPED_MODEL_DIR / GRAPH_FILENAME

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"      # the Debian package's folder
DATA_DIR_ENV = "FMNIST_DATA_DIR"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetError(ValueError):
    """The dataset is missing or a file in it is corrupt; the message says which and why."""


def find_data_dir(data_dir=None):
    """The first of: the argument, $FMNIST_DATA_DIR, the Debian package's folder."""
    candidates = [data_dir, os.environ.get(DATA_DIR_ENV), DEFAULT_DATA_DIR]
    chosen = Path(next(c for c in candidates if c))
    if not chosen.is_dir():
        raise DatasetError(
            f"Fashion-MNIST not found at {chosen}: install it with "
            f"`apt-get install {DEBIAN_PACKAGE}` or point DATA_DIR / ${DATA_DIR_ENV} "
            "at a folder holding the four IDX files")
    return chosen


def _idx_path(data_dir, stem):
    for name in (stem + ".gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DatasetError(
        f"{data_dir / stem}[.gz] is missing: reinstall `{DEBIAN_PACKAGE}` "
        "or copy the Fashion-MNIST IDX files there")


def read_idx(path, expected_magic):
    """Read one IDX file (gzip or raw) and check its header against its contents."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path}: cannot be read ({err}); re-download or reinstall it") from None
    if len(raw) < 8:
        raise DatasetError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expected_magic:
        raise DatasetError(f"{path}: wrong magic number {magic}, expected {expected_magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected_len = header + int(np.prod(dims))
    if len(raw) != expected_len:
        raise DatasetError(
            f"{path}: file holds {len(raw)} bytes but its header {dims} says {expected_len}"
            " (truncated or padded)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_split(split, data_dir=None):
    """Return (images uint8 [N, 28, 28], labels uint8 [N]) for 'train' or 'test'."""
    folder = find_data_dir(data_dir)
    image_stem, label_stem = SPLIT_FILES[split]
    image_path, label_path = _idx_path(folder, image_stem), _idx_path(folder, label_stem)
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(f"{image_path}: images are {images.shape[1:]}, expected 28x28")
    if labels.ndim != 1:
        raise DatasetError(f"{label_path}: labels have shape {labels.shape}, expected one axis")
    if len(images) != len(labels):
        raise DatasetError(
            f"{image_path}: {len(images)} images but {label_path.name} has {len(labels)} labels")
    if len(labels) and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DatasetError(
            f"{label_path}: label {labels[bad]} at index {bad} is outside 0..{NUM_CLASSES - 1}")
    return images, labels


def stratified_split(labels, validation_size, seed):
    """Indices (train, validation) with validation_size/10 images of each class.

    Seeded and deterministic; validation_size=0 gives every index to training.
    """
    labels = np.asarray(labels)
    if validation_size % NUM_CLASSES:
        raise ValueError(f"validation size {validation_size} must be a multiple of {NUM_CLASSES}")
    per_class = validation_size // NUM_CLASSES
    rng = np.random.default_rng(seed)
    validation = []
    for cls in range(NUM_CLASSES):
        members = np.flatnonzero(labels == cls)
        if per_class > len(members):
            raise ValueError(f"validation wants {per_class} of class {cls}, only {len(members)}")
        validation.append(rng.choice(members, per_class, replace=False))
    validation = np.sort(np.concatenate(validation)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(labels)), validation)
    return train, validation


def main():
    try:
        print(f"Fashion-MNIST found at {find_data_dir()}")
    except DatasetError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
