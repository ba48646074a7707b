"""Fashion-MNIST facts and files: class names, sizes, where the data and the shipped model
live, the IDX reader and an explicit, checked download. TensorFlow-free.

    python -m fmnist_app.dataset                   # where the dataset was found, or how to get it
    python -m fmnist_app.dataset --download [DIR]  # fetch the four files (default: Keras' cache)

Nothing downloads implicitly. The data is looked for in: the DATA_DIR / --data-dir given,
$FMNIST_DATA_DIR, the Debian package's folder, then Keras' cache (~/.keras/datasets/
fashion-mnist, where a tutorial's `keras.datasets.fashion_mnist.load_data()` left it).
"""

import gzip
import hashlib
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
KERAS_CACHE_DIR = Path.home() / ".keras" / "datasets" / "fashion-mnist"
DOWNLOAD_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"   # Keras' source
# SHA-256 of each file's *uncompressed* IDX bytes, and their length. Mirrors re-compress the
# files (the Debian package's .gz differ byte-wise from Keras' copy), so the content is what
# is checked. Computed from the Debian package dataset-fashion-mnist 0.0~git20200523.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                                47040016),
    "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                                60008),
    "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                               7840016),
    "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                               10008),
}
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
    """The folder to read: the argument or $FMNIST_DATA_DIR when given (they must exist),
    else the Debian package's folder, else Keras' cache."""
    given = data_dir or os.environ.get(DATA_DIR_ENV)
    if given:
        if not Path(given).is_dir():
            raise DatasetError(f"Fashion-MNIST folder {given} does not exist; point DATA_DIR /"
                               f" ${DATA_DIR_ENV} at a folder holding the four IDX files, or "
                               f"leave them empty after `apt-get install {DEBIAN_PACKAGE}`")
        return Path(given)
    for folder in (Path(DEFAULT_DATA_DIR), KERAS_CACHE_DIR):
        if folder.is_dir() and any(folder.glob("train-images-idx3-ubyte*")):
            return folder
    raise DatasetError(
        f"Fashion-MNIST not found in {DEFAULT_DATA_DIR} nor {KERAS_CACHE_DIR}: install it with "
        f"`apt-get install {DEBIAN_PACKAGE}`, or fetch it with "
        "`python -m fmnist_app.dataset --download`, or point DATA_DIR / "
        f"${DATA_DIR_ENV} at a folder holding the four IDX files")


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


def download(folder, base_url=DOWNLOAD_URL, timeout=60):
    """Fetch the four .gz files into `folder`, check each one's content, then move it into
    place (a failed or interrupted download leaves nothing half-written). Returns the folder."""
    import urllib.request

    from fmnist_app.files import atomic_path

    folder = Path(folder)
    for stem, (sha256, length) in CONTENT_SHA256.items():
        name = stem + ".gz"
        target = folder / name
        with atomic_path(target) as tmp:
            try:
                with urllib.request.urlopen(base_url + name, timeout=timeout) as response, \
                        open(tmp, "wb") as out:
                    while block := response.read(1 << 20):
                        out.write(block)
            except OSError as err:
                raise DatasetError(f"cannot download {base_url + name} ({err}); check the "
                                   "network, or install the Debian package instead") from None
            try:
                content = gzip.decompress(tmp.read_bytes())
            except (OSError, EOFError, zlib.error) as err:
                raise DatasetError(f"{base_url + name} is not a complete gzip file ({err}); "
                                   "try again") from None
            if len(content) != length or hashlib.sha256(content).hexdigest() != sha256:
                raise DatasetError(f"{base_url + name} does not hold the Fashion-MNIST data "
                                   f"(SHA-256 of its content differs); nothing was written")
        print(f"  {name}: {len(content):,} bytes, checksum ok")
    return folder


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--download", nargs="?", const=str(KERAS_CACHE_DIR), metavar="DIR",
                        help=f"fetch the four files into DIR (default {KERAS_CACHE_DIR})")
    parser.add_argument("--url", default=DOWNLOAD_URL, help="where to fetch them from")
    args = parser.parse_args(argv)
    try:
        if args.download:
            print(f"downloading Fashion-MNIST from {args.url} into {args.download}")
            download(args.download, args.url)
        print(f"Fashion-MNIST found at {find_data_dir(args.download)}")
    except DatasetError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
