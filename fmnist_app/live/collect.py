"""Your own garments as labelled examples: keys 0-9 in the window (or a labels CSV with
--no-gui) save the current frame's 28x28 model input, its analysed crop and a small JSON:

    <folder>/<class folder>/<timestamp>.png          the 28x28 input (used as it is)
    <folder>/<class folder>/<timestamp>_crop.png     the crop (re-preprocessed if needed)
    <folder>/<class folder>/<timestamp>.json         source, box, the model's answer then

`benchmark.py --images <folder>` measures a model on them; `python -m fmnist_app.train
--config configs/finetune.json --set EXTRA_DATA_DIR=<folder>` trains on them. No Qt here.
"""

import json
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from fmnist_app.dataset import CLASS_NAMES


class CollectError(OSError):
    """An example could not be written; the message names the folder and the fix."""


def class_folder(index):
    """A file-system-safe folder name per class ("T-shirt/top" -> "T-shirt_top")."""
    return CLASS_NAMES[index].replace("/", "_").replace(" ", "_")


def parse_class(name):
    """The class index `name` stands for: 0-9, a class name or its folder name; else None."""
    if name.isdigit() and int(name) < len(CLASS_NAMES):
        return int(name)
    if name in CLASS_NAMES:
        return CLASS_NAMES.index(name)
    folders = [class_folder(i) for i in range(len(CLASS_NAMES))]
    return folders.index(name) if name in folders else None


def save_example(folder, label, result, source_name):
    """Write one labelled example; returns the path of its 28x28 PNG."""
    target = Path(folder) / class_folder(label)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for path, image in ((target / f"{stamp}.png", result.model_input),
                            (target / f"{stamp}_crop.png", result.crop)):
            if not cv2.imwrite(str(path), image):
                raise OSError(f"OpenCV could not write {path.name}")
        (target / f"{stamp}.json").write_text(json.dumps({
            "label": CLASS_NAMES[label], "source": source_name, "frame": result.index,
            "guide_box": result.box._asdict(), "verdict": result.verdict,
            "model_said": [{"class": name, "probability": round(p, 4)}
                           for name, p in result.top3]}, indent=2) + "\n")
    except OSError as err:
        raise CollectError(f"cannot save an example in {target} ({err}); pick a writable "
                           "folder with --collect-dir") from None
    return target / f"{stamp}.png"


def remove_example(png_path):
    """Undo: delete an example's three files."""
    png_path = Path(png_path)
    for path in (png_path, png_path.with_name(png_path.stem + "_crop.png"),
                 png_path.with_suffix(".json")):
        path.unlink(missing_ok=True)


def counts(folder):
    """Examples per class index in a collection folder."""
    folder = Path(folder)
    return [len([p for p in (folder / class_folder(i)).glob("*.png")
                 if not p.stem.endswith("_crop")])
            for i in range(len(CLASS_NAMES))]


def read_examples(folder):
    """(images (N, 28, 28) uint8, labels (N,), skipped [(path, why)]) from a collection folder.

    Class folders are named as save_example names them (or by class index 0-9). A 28x28
    grey PNG is used as it is; any other image is taken as a crop and goes through the demo's
    preprocessing. Files that are not images, and folders that are not classes, are skipped
    and reported, never fatal.
    """
    from fmnist_app.preprocess import FOUND, analyse_crop

    folder = Path(folder)
    if not folder.is_dir():
        raise CollectError(f"image folder {folder} not found; give a folder with one "
                           "sub-folder per class (as the window's 0-9 keys make)")
    images, labels, skipped = [], [], []
    for entry in sorted(folder.iterdir()):
        label = parse_class(entry.name)
        if label is None or not entry.is_dir():
            skipped.append((entry, "not a class folder"))
            continue
        for path in sorted(entry.iterdir()):
            if path.suffix == ".json":
                continue
            if path.stem.endswith("_crop") and path.with_name(
                    path.stem[:-len("_crop")] + ".png").exists():
                continue                     # its ready 28x28 twin is used instead
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
            if image is None:
                skipped.append((path, "not an image"))
                continue
            if image.shape == (28, 28) and image.dtype == np.uint8:
                images.append(image)
            else:
                try:
                    image28, outcome = analyse_crop(image)
                except ValueError as err:
                    skipped.append((path, str(err)))
                    continue
                if outcome != FOUND:
                    skipped.append((path, f"no garment found ({outcome})"))
                    continue
                images.append(image28)
            labels.append(label)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), skipped
    return np.stack(images), np.asarray(labels, np.int64), skipped
