"""A run folder made from finished runs rather than by training (`fmnist_app.ensemble`,
`fmnist_app.interpolate`): the checks before, the validation images to choose on, and the
folder written after, the same files a training run leaves, so every later command
(calibrate, benchmark.py, the scene benchmark, the demo, `--init-from`) takes it alike."""

import json
import sys

import numpy as np

from fmnist_app.config import ConfigError
from fmnist_app.dataset import GRAPH_FILENAME, DatasetError
from fmnist_app.files import write_atomically
from fmnist_app.machine import cpu_model


def check_folders(inputs, out):
    """Exit with one line unless every folder of `inputs` ({folder: how the user named it})
    holds trained weights and `out` is new."""
    from fmnist_app.train import WEIGHTS_FILENAME
    for folder, role in inputs.items():
        if not (folder / WEIGHTS_FILENAME).is_file():
            sys.exit(f"error: no {WEIGHTS_FILENAME} in {folder} ({role}); give a finished "
                     "run's folder")
    if out.exists():
        sys.exit(f"error: {out} exists; a run folder is never overwritten, pass a new --out")


def held_out(run):
    """(pixels, labels) of the validation images `run` held out, or exit with one line."""
    from fmnist_app.calibrate import splits
    try:
        _, (images, labels) = splits(run)
    except (ConfigError, DatasetError, OSError) as err:
        sys.exit(f"error: {err}")
    return images.astype(np.float32)[..., None], labels


def validation_accuracy(model, validation):
    """Share of `validation` = (pixels, labels) the Keras model gets right."""
    pixels, labels = validation
    predicted = model.predict(pixels, batch_size=500, verbose=0).argmax(axis=1)
    return float(np.mean(predicted == labels))


def write(model, out, config_json, metrics):
    """Write `out` as a run folder: weights, frozen graph, config.json (the given text) and
    metrics.json (`metrics` with the commit and CPU); returns the graph's path."""
    from fmnist_app.export import export_frozen_graph
    from fmnist_app.train import WEIGHTS_FILENAME, git_commit
    out.mkdir(parents=True)
    model.save_weights(out / WEIGHTS_FILENAME)
    graph = export_frozen_graph(model, out / GRAPH_FILENAME)
    write_atomically(config_json.encode(), out / "config.json")
    metrics = {"git_commit": git_commit(), "cpu": cpu_model(), **metrics,
               "frozen_graph": str(graph)}
    write_atomically((json.dumps(metrics, indent=2) + "\n").encode(), out / "metrics.json")
    return graph

