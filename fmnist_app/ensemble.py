"""Join trained runs into one model whose logits are the mean of theirs.

    python -m fmnist_app.ensemble output_dir/RUN_A output_dir/RUN_B --out output_dir/NEW

Two networks trained apart make partly different mistakes, and averaging their logits
cancels some of them: the shipped model is the camera-stage fastnet averaged with its twin
that learnt from box-like outliers, which says "no garment" to a cushion where the first
says "Bag" (README, Results). The runs must be of one registered model and hold out the same
validation images (the same SEED, VALIDATION_SIZE and DATA_DIR), so that calibration fits
the ensemble on images none of its members trained on. Writes a run folder like training
does (model.weights.h5, frozen_inference_graph.pb, config.json with MEMBERS, metrics.json
with each member's validation accuracy and the ensemble's), so `python -m
fmnist_app.calibrate`, `benchmark.py`, the scene benchmark, the demo and a fine-tune
(`--init-from`) take it as they take a trained run.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from fmnist_app import derived_run
from fmnist_app.calibrate import next_step
from fmnist_app.config import ConfigError
from fmnist_app.config import load as load_config

# What must agree between the runs: one architecture, and one held-out split to calibrate on.
SHARED_KEYS = ("MODEL", "MEMBERS", "SEED", "VALIDATION_SIZE", "DATA_DIR")


def member_configs(runs):
    """The runs' configs, or a ConfigError naming the first key on which they differ."""
    configs = [load_config(run / "config.json") for run in runs]
    for key in SHARED_KEYS:
        values = [getattr(config, key) for config in configs]
        if len(set(values)) > 1:
            each = ", ".join(f"{run}: {value!r}" for run, value in zip(runs, values))
            raise ConfigError(f"the runs differ in {key} ({each}); join runs of one model that "
                              "hold out the same validation images")
    if configs[0].MEMBERS != 1:
        raise ConfigError(f"{runs[0]} is already an ensemble (MEMBERS {configs[0].MEMBERS}); "
                          "join the single runs it was made of")
    return configs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="the new run folder to write")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        sys.exit("error: give two or more run folders to join")
    derived_run.check_folders({run: "a run to join" for run in args.runs}, args.out)
    try:
        configs = member_configs(args.runs)
    except (ConfigError, OSError) as err:
        sys.exit(f"error: {err}")
    validation = derived_run.held_out(args.runs[0])

    from fmnist_app.models import create_model, ensemble
    from fmnist_app.train import WEIGHTS_FILENAME
    networks, accuracies = [], {}
    for run in args.runs:
        network = create_model(configs[0].MODEL)
        network.load_weights(run / WEIGHTS_FILENAME)
        networks.append(network)
        accuracies[str(run)] = derived_run.validation_accuracy(network, validation)
        print(f"{run}: validation accuracy {100 * accuracies[str(run)]:.2f}%")
    joined = ensemble(networks, configs[0].MODEL)
    joined_accuracy = derived_run.validation_accuracy(joined, validation)
    print(f"ensemble: validation accuracy {100 * joined_accuracy:.2f}%")

    config = dataclasses.replace(configs[0], MEMBERS=len(networks), MODEL_DIR=args.out.name,
                                 OUTPUT_DIR=str(args.out.parent))
    graph = derived_run.write(joined, args.out, config.to_json(), {
        "model": config.MODEL, "members": len(networks), "parameters": joined.count_params(),
        "seed": config.SEED, "joined": [str(run) for run in args.runs],
        "validation_accuracy": joined_accuracy, "validation_accuracy_by_member": accuracies})
    print(f"wrote {graph}\n{next_step(args.out)}")


if __name__ == "__main__":
    main()
