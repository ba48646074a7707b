"""Train a Fashion-MNIST classifier and export its frozen graph.

    python -m fmnist_app.train --config config.json [--output-dir D] [--steps N] [--resume]

Reads top to bottom: config -> data -> model -> fit (validation, checkpoints, TensorBoard)
-> export. Everything a run makes lands in OUTPUT_DIR/MODEL_DIR:
config.json, log.jsonl, tensorboard/, checkpoints/, best.weights.h5,
frozen_inference_graph.pb and metrics.json.
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

if __name__ == "__main__":
    # Ctrl-C while TensorFlow is still importing: one line instead of an import traceback.
    # main() hands SIGINT back to Python's KeyboardInterrupt once the imports are done.
    signal.signal(signal.SIGINT, lambda *_: sys.exit("interrupted while starting; nothing "
                                                      "was written"))

import numpy as np

import data_input
from fmnist_app import config as config_module
from fmnist_app import distribute
from fmnist_app.camera_views import make_camera_views
from fmnist_app.dataset import (
    CLASS_NAMES,
    GRAPH_FILENAME,
    NUM_CLASSES,
    DatasetError,
    load_split,
    stratified_split,
)
from fmnist_app.evaluation import class_metrics, confusion_matrix
from fmnist_app.export import export_frozen_graph
from fmnist_app.files import TEMP_SUFFIX, atomic_path, write_atomically
from fmnist_app.inference import FrozenModel
from fmnist_app.losses import create_loss
from fmnist_app.machine import cpu_model, has_native_bfloat16
from fmnist_app.models import conv_and_dense_layers, create_model, members
from fmnist_app.optim import WeightAverage, make_optimizer
from fmnist_app.outliers import make_outliers
from fmnist_app.tf_quiet import keras, tf

WEIGHTS_FILENAME = "model.weights.h5"
OUTLIER_BANK_SIZE = 20000
CAMERA_BANK_FILENAME = "camera_views.npz"


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.json", help="JSON recipe (default config.json)")
    parser.add_argument("--output-dir", help="override OUTPUT_DIR")
    parser.add_argument("--model-dir", help="override MODEL_DIR (the run's folder name)")
    parser.add_argument("--steps", type=int, help="override STEPS")
    parser.add_argument("--seed", type=int, help="override SEED")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, VALUE as JSON (e.g. --set EMA_DECAY=0 "
                             "--set LOSS=focal); repeatable")
    parser.add_argument("--init-from", metavar="RUN_DIR",
                        help="start from the weights of a finished run (sets INIT_FROM)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUTPUT_DIR/MODEL_DIR from its last checkpoint")
    return parser.parse_args(argv)


def parse_overrides(pairs):
    """["KEY=VALUE", ...] -> {KEY: value}; VALUE is read as JSON, else kept as a string."""
    overrides = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise config_module.ConfigError(f"--set {pair!r} must look like KEY=VALUE")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


# --------------------------------------------------------------------------- pieces

def class_accuracies(predictions, labels):
    """Overall accuracy and a list of 10 per-class accuracies (fractions)."""
    overall, per_class = class_metrics(confusion_matrix(labels, predictions))
    return overall, [c["accuracy"] for c in per_class]


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_weights_atomically(model, path):
    # Keras picks the format from the suffix, so the temporary name must end in .weights.h5.
    with atomic_path(path) as tmp:
        model.save_weights(tmp.with_suffix(".weights.h5"))
        tmp.with_suffix(".weights.h5").replace(tmp)


class StopRequest:
    """Within its `with` block, SIGINT/SIGTERM become a flag the loop checks, so a checkpoint
    is written first; outside it (data loading, export, the test pass) they act at once.

    Until the first step of this run has finished there is nothing to save, yet that step
    (tracing and compiling the graph) can take 10 s in which the main thread is inside
    TensorFlow and cannot run a Python handler. A helper thread hears the signal at once
    through the wakeup fd and ends the process right away in that case.
    """

    def __init__(self):
        self.signum = None
        self.first_step_done = False
        self._previous = {}

    def __enter__(self):
        self._heard, wakeup = socket.socketpair()
        wakeup.setblocking(False)
        self._wakeup = wakeup
        self._previous_wakeup_fd = signal.set_wakeup_fd(wakeup.fileno())
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        self._wakeup.close()
        self._heard.close()

    def _handle(self, signum, _frame):
        self.signum = signum

    def _watch(self):
        while True:
            try:
                heard = self._heard.recv(1)
            except OSError:         # closed by __exit__
                return
            if not heard:
                return
            if heard[0] in self._previous and not self.first_step_done:
                print(f"\nstopped by signal {heard[0]} before the first step finished; nothing "
                      "new to save", file=sys.stderr, flush=True)
                os._exit(128 + heard[0])


def leave_now(status, log, writer):
    """End the process once the stop checkpoint is written and the logs flushed. A normal
    exit unwinds TensorFlow first (the input pipeline, its threads), which takes seconds on
    a busy CPU, and nothing is left to do (perf/stop_latency.py measures it)."""
    log.flush()
    writer.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class Progress:
    """One status line: step, images/s, loss, last validation accuracy, ETA."""

    def __init__(self, total, batch_size, start_step):
        self.total, self.batch_size = total, batch_size
        self.tty = sys.stdout.isatty()
        self.mark_time, self.mark_step = time.monotonic(), start_step
        self.images_per_second = 0.0

    def update(self, step, loss, val_accuracy, force=False):
        every = 20 if self.tty else 200
        if not force and step % every:
            return
        now = time.monotonic()
        if step > self.mark_step:
            images = (step - self.mark_step) * self.batch_size
            self.images_per_second = images / (now - self.mark_time)
            self.mark_time, self.mark_step = now, step
        eta = (self.total - step) * self.batch_size / max(self.images_per_second, 1e-9)
        val = f"{100 * val_accuracy:.2f}%" if val_accuracy is not None else "-"
        line = (f"step {step}/{self.total}  {self.images_per_second:6.0f} img/s  loss {loss:.4f}"
                f"  val {val}  ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", flush=True)


# --------------------------------------------------------------------------- steps

@dataclasses.dataclass
class Data:
    train_images: np.ndarray
    train_labels: np.ndarray
    monitor_name: str             # "val", or "test_monitor" when nothing is held out
    monitor_images: np.ndarray
    monitor_labels: np.ndarray
    extra_held_out: tuple = ()    # (images, labels) of the user's images kept for measuring


@dataclasses.dataclass
class State:
    """Everything a checkpoint holds, built under the distribution strategy's scope."""
    model: object
    optimizer: object
    average: object               # WeightAverage or None
    step: object
    elapsed: object               # training seconds, evaluation excluded
    best_accuracy: object
    evals_since_best: object
    checkpoint: object
    manager: object

    def averaged(self):
        """Context in which the model holds its averaged weights (if EMA is on)."""
        return self.average.applied() if self.average else contextlib.nullcontext()


def check_run_dir(config, resume, chief):
    """Refuse to overwrite a finished or started run, and to resume a different model.

    Nothing in the run folder changes here: config.json is written only after a restore
    succeeded (see write_run_config), so a failed --resume leaves the run as it was.
    """
    run_dir, checkpoint_dir = config.run_dir, config.run_dir / "checkpoints"
    has_checkpoint = checkpoint_dir.exists() and tf.train.latest_checkpoint(checkpoint_dir)
    if chief and not resume and (has_checkpoint or (run_dir / GRAPH_FILENAME).exists()
                                 or (run_dir / "log.jsonl").exists()):
        raise TrainingError(f"{run_dir} already holds a run: pass --resume to continue it, "
                            "or --model-dir NEW_NAME to start another")
    if not resume:
        return
    if not has_checkpoint:
        raise TrainingError(f"nothing to resume: no checkpoint in {checkpoint_dir}; "
                            "start the run again without --resume")
    saved_path = run_dir / "config.json"
    if saved_path.exists():
        saved = config_module.load(saved_path)
        for key in ("MODEL", "PRECISION"):
            if getattr(saved, key) != getattr(config, key):
                raise TrainingError(
                    f"cannot resume {run_dir} with {key}={getattr(config, key)}: it was trained "
                    f"with {key}={getattr(saved, key)}; resume with its own config "
                    f"(--config {saved_path}) or start a new --model-dir")


def write_run_config(config, chief):
    if chief:
        config.run_dir.mkdir(parents=True, exist_ok=True)
        # A run killed while writing a file (SIGKILL gives no chance to clean up) leaves its
        # temporary file behind; nothing reads them, so they go now.
        for orphan in config.run_dir.glob(f"*{TEMP_SUFFIX}"):
            orphan.unlink(missing_ok=True)
        write_atomically(config.to_json().encode(), config.run_dir / "config.json")


def load_data(config):
    """The training images and what the run is monitored on (validation, else test)."""
    images, labels = load_split("train", config.DATA_DIR or None)
    train_idx, val_idx = stratified_split(labels, config.VALIDATION_SIZE, config.SEED)
    if config.TRAIN_SUBSET:
        train_idx = np.random.default_rng(config.SEED).permutation(train_idx)[:config.TRAIN_SUBSET]
    if config.VALIDATION_SIZE:
        monitor = "val", images[val_idx], labels[val_idx]
    else:  # all 60k train; the test set is only watched for the curve, never used to choose.
        monitor = "test_monitor", *load_split("test", config.DATA_DIR or None)
    name, monitor_images, monitor_labels = monitor
    data = Data(images[train_idx], labels[train_idx], name, monitor_images,
                monitor_labels.astype(np.int64))
    return mix_in_extra(config, data) if config.EXTRA_DATA_DIR else data


def extra_split(labels, holdout, seed):
    """(held-out indices, kept indices): `holdout` of each class's images, seeded."""
    rng = np.random.default_rng(seed)
    held_out = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:int(holdout * np.sum(labels == c))]
        for c in np.unique(labels)]).astype(int)
    return held_out, np.setdiff1d(np.arange(len(labels)), held_out)


def mix_in_extra(config, data):
    """Add the user's labelled images: EXTRA_HOLDOUT of each class held out to measure on,
    the rest repeated until they are EXTRA_SHARE of the training examples (a few dozen
    images would otherwise be lost among 57,000)."""
    from fmnist_app.live.collect import CollectError, read_examples
    try:
        images, labels, skipped = read_examples(config.EXTRA_DATA_DIR)
    except CollectError as err:
        raise TrainingError(str(err)) from None
    for path, why in skipped:
        print(f"skipped {path}: {why}")
    if len(images) < 2:
        raise TrainingError(f"EXTRA_DATA_DIR {config.EXTRA_DATA_DIR} holds {len(images)} usable "
                            "images; save some with the window's 0-9 keys first")
    held_out, kept = extra_split(labels, config.EXTRA_HOLDOUT, config.SEED)
    repeats = max(1, round(config.EXTRA_SHARE * len(data.train_labels)
                           / ((1 - config.EXTRA_SHARE) * max(len(kept), 1))))
    print(f"your images: {len(kept)} to train on (x{repeats}), {len(held_out)} held out")
    extra_labels = np.tile(labels[kept], repeats).astype(data.train_labels.dtype)
    data.train_images = np.concatenate([data.train_images, np.tile(images[kept], (repeats, 1, 1))])
    data.train_labels = np.concatenate([data.train_labels, extra_labels])
    data.extra_held_out = (images[held_out], labels[held_out])
    return data


def build_state(config, strategy, checkpoint_dir):
    """Model, optimizer, moving average and counters, under the strategy's scope."""
    with strategy.scope():
        model = create_model(config.MODEL, config.MEMBERS)
        if config.INIT_FROM:
            model.load_weights(init_weights_path(config.INIT_FROM))
        if config.FREEZE_BATCH_NORM:
            freeze_batch_norm(model)
        freeze_first_layers(model, config.FREEZE_LAYERS)
        optimizer = make_optimizer(config, lr_scale=strategy.num_replicas_in_sync)
        optimizer.build(model.trainable_variables)
        average = WeightAverage(model, config.EMA_DECAY) if config.EMA_DECAY else None
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        best_accuracy = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        evals_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, elapsed=elapsed,
                                     best_accuracy=best_accuracy, evals_since_best=evals_since_best,
                                     average=average.shadow if average else [])
    manager = tf.train.CheckpointManager(
        checkpoint, distribute.checkpoint_dir_for(strategy, checkpoint_dir), max_to_keep=2)
    return State(model, optimizer, average, step, elapsed, best_accuracy, evals_since_best,
                 checkpoint, manager)


def freeze_batch_norm(model):
    """Batch norm in inference mode, its scales and offsets fixed (the Keras transfer-learning
    recipe): a fine-tune whose batches are partly the user's images keeps the statistics
    Fashion-MNIST was classified with, and each step skips the batch statistics (about a
    third faster here)."""
    for network in members(model):
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def freeze_first_layers(model, count):
    """The first `count` conv and dense layers keep their weights. Backpropagation then stops
    above them, so a fine-tune's step is cheaper: with 7 of fastnet's 8 convolutions frozen
    the own-garments fine-tune runs about 3x faster (495-629 against 178-203 img/s in
    float32 on a CPU without bfloat16 units; docs/EXPERIMENTS.md)."""
    for network in members(model):
        weighted = conv_and_dense_layers(network)
        if count >= len(weighted):
            raise TrainingError(f"FREEZE_LAYERS {count} leaves nothing to train: {model.name} "
                                f"has {len(weighted)} conv/dense layers per network; use at "
                                f"most {len(weighted) - 1}")
        for layer in weighted[:count]:
            layer.trainable = False


def with_init_architecture(config):
    """A run that starts from another's weights takes that run's MODEL and MEMBERS from its
    config.json: a fine-tune's recipe then fits the shipped model, one network or several."""
    path = Path(config.INIT_FROM) / "config.json"
    if not config.INIT_FROM or not path.is_file():
        return config
    try:
        started_from = config_module.load(path)
    except config_module.ConfigError as err:
        raise TrainingError(f"INIT_FROM {config.INIT_FROM}: {err}") from None
    return dataclasses.replace(config, MODEL=started_from.MODEL, MEMBERS=started_from.MEMBERS)


def init_weights_path(run_dir):
    """The weights a finished run exported (model.weights.h5), else its best validation ones."""
    for name in (WEIGHTS_FILENAME, "best.weights.h5"):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    raise TrainingError(f"INIT_FROM {run_dir} holds no {WEIGHTS_FILENAME} (nor best.weights.h5):"
                        " point it at a finished run folder (output_dir/NAME)")


def restore_latest(state, checkpoint_dir):
    """Restore the newest readable checkpoint; an unreadable one (a crash while writing it,
    a damaged disk) falls back to the one before it, which is kept for exactly this."""
    candidates = sorted(tf.train.get_checkpoint_state(checkpoint_dir).all_model_checkpoint_paths,
                        key=lambda p: int(p.rsplit("-", 1)[-1]), reverse=True)
    for path in candidates:
        try:
            state.checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as err:
            print(f"warning: checkpoint {path} is unreadable ({type(err).__name__}); "
                  "trying the one before it", file=sys.stderr, flush=True)
    raise TrainingError(f"no readable checkpoint in {checkpoint_dir}; start the run again "
                        "without --resume (or with a new --model-dir)")


def step_functions(config, strategy, state, global_batch):
    """(train_step, predict_batch) as tf.functions."""
    loss_fn = create_loss(config)
    model, optimizer = state.model, state.optimizer

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.nn.compute_average_loss(loss_fn(labels, logits),
                                              global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(images, labels):
        losses = strategy.run(replica_step, args=(images, labels))
        state.step.assign_add(1)
        if state.average:
            state.average.update(state.step)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    @tf.function
    def predict_batch(images):
        return tf.argmax(model(images, training=False), axis=-1)

    return train_step, predict_batch


def picks_best_weights(config):
    """Whether the run exports its best validation weights rather than its final ones. Not a
    fine-tune on the user's images: there the validation images measure what the model keeps
    of Fashion-MNIST, not what it learns of the user's garments, and picked the half-trained
    weights at the first evaluation (perf/own_garments.py)."""
    return bool(config.VALIDATION_SIZE) and not config.EXTRA_DATA_DIR


def evaluate(config, state, data, predict_batch, save_best):
    """Monitor accuracy with the averaged weights; keeps best.weights.h5 when the run picks
    its best weights (picks_best_weights)."""
    with state.averaged():
        predictions = np.concatenate([predict_batch(x).numpy() for x, _ in
                                      data_input.eval_dataset(data.monitor_images,
                                                              data.monitor_labels)])
        accuracy, per_class = class_accuracies(predictions, data.monitor_labels)
        improved = accuracy > float(state.best_accuracy.numpy())
        if improved and picks_best_weights(config) and save_best:
            save_weights_atomically(state.model, config.run_dir / "best.weights.h5")
    if improved:
        state.best_accuracy.assign(accuracy)
        state.evals_since_best.assign(0)
    else:
        state.evals_since_best.assign_add(1)
    return accuracy, per_class


def log_evaluation(log, data, current, loss, state, progress, accuracy, per_class):
    name = data.monitor_name
    record = {"step": current, "wall_seconds": round(float(state.elapsed.numpy()), 1),
              "loss": loss, "images_per_second": round(progress.images_per_second, 1),
              f"{name}_accuracy": accuracy, f"{name}_per_class": per_class}
    log.write(json.dumps(record) + "\n")
    log.flush()
    tf.summary.scalar(f"{name}/accuracy", accuracy, step=current)
    for cls, acc in enumerate(per_class):
        tf.summary.scalar(f"{name}_per_class/{cls}_{CLASS_NAMES[cls]}", acc, step=current)


def mixed_in_sources(config, data, chief):
    """(images, labels, fraction) drawn into every batch besides the training images:
    outliers (not garments) and camera views of training garments."""
    sources = []
    if config.OUTLIER_FRACTION:
        outliers = make_outliers(OUTLIER_BANK_SIZE, config.SEED, data.train_images)
        sources.append((outliers, np.full(len(outliers), NUM_CLASSES), config.OUTLIER_FRACTION))
    if config.CAMERA_FRACTION:
        sources.append((*camera_bank(config, data, chief), config.CAMERA_FRACTION))
    return sources


def camera_bank(config, data, chief):
    """The run's camera views, rendered once and kept in the run folder so a resumed run
    trains on the same bank without rendering it again."""
    path = config.run_dir / CAMERA_BANK_FILENAME
    if path.exists():
        with np.load(path) as saved:
            return saved["views"], saved["labels"]
    print(f"camera views: rendering {config.CAMERA_VIEWS:,} training garments through the demo's "
          "camera path (a few minutes; kept for --resume)", flush=True)
    started = time.monotonic()
    views, labels = make_camera_views(config.CAMERA_VIEWS, config.SEED, data.train_images,
                                      data.train_labels, config.CAMERA_CONDITION_WEIGHTS)
    print(f"camera views: {len(labels):,} of {config.CAMERA_VIEWS:,} kept (the rest the "
          f"preprocessing refused), rendered in {time.monotonic() - started:.0f} s", flush=True)
    if chief:
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            np.savez_compressed(file, views=views, labels=labels)
    return views, labels


def fit(config, strategy, state, data, chief):
    """The training loop: steps, logging, evaluation, checkpoints, signals.

    Returns True when early stopping ended it. Exits (status 128+signal) after saving a
    checkpoint when SIGINT/SIGTERM arrive, and with a TrainingError when the loss diverges.
    """
    global_batch = config.BATCH_SIZE * strategy.num_replicas_in_sync
    start_step = int(state.step.numpy())
    # A resumed run draws a fresh shuffle/augmentation stream instead of replaying the first one.
    tf.random.set_seed(config.SEED + start_step)
    dataset = strategy.experimental_distribute_dataset(data_input.train_dataset(
        data.train_images, data.train_labels, global_batch, config.AUGMENT_PROB,
        config.SEED + start_step, config.ERASE_FILL, config.FLIP_FOOTWEAR,
        config.ROTATE_DEGREES, mixed_in_sources(config, data, chief),
        config.AUGMENT_SHIFTS_ONLY))
    train_step, predict_batch = step_functions(config, strategy, state, global_batch)
    run_dir = config.run_dir
    if chief:
        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
        log_path = run_dir / "log.jsonl"
    else:
        writer, log_path = tf.summary.create_noop_writer(), os.devnull
    progress = Progress(config.STEPS, global_batch, start_step)
    print(f"training {state.model.name} ({state.model.count_params():,} parameters) for "
          f"{config.STEPS} steps of {global_batch} ({strategy.num_replicas_in_sync} replica(s)) "
          f"on {len(data.train_labels)} images, {config.PRECISION}; "
          f"TensorBoard: tensorboard --logdir {config.OUTPUT_DIR}", flush=True)
    last_accuracy, stopped_early = None, False
    clock = time.monotonic()
    with open(log_path, "a") as log, writer.as_default(), StopRequest() as stop:
        for images, labels in dataset:
            if int(state.step.numpy()) >= config.STEPS or stopped_early:
                break
            loss = float(train_step(images, labels))
            stop.first_step_done = True
            current = int(state.step.numpy())
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss} at step {current}: training diverged; the last good "
                    f"checkpoint in {run_dir / 'checkpoints'} is kept. Lower LEARNING_RATE and "
                    "start a new --model-dir")
            state.elapsed.assign_add(time.monotonic() - clock)
            clock = time.monotonic()
            progress.update(current, loss, last_accuracy)
            if current % 50 == 0:
                tf.summary.scalar("train/loss", loss, step=current)
                tf.summary.scalar("train/learning_rate",
                                  float(state.optimizer.learning_rate), step=current)
            if current % config.EVAL_EVERY == 0 or current == config.STEPS:
                last_accuracy, per_class = evaluate(config, state, data, predict_batch, chief)
                log_evaluation(log, data, current, loss, state, progress, last_accuracy, per_class)
                progress.update(current, loss, last_accuracy, force=True)
                patience = config.EARLY_STOPPING_PATIENCE
                if patience and int(state.evals_since_best.numpy()) >= patience:
                    print(f"\nearly stop at step {current}: "
                          f"no improvement in {patience} evaluations")
                    stopped_early = True
                clock = time.monotonic()  # evaluation time is not training time
            if current % config.CHECKPOINT_EVERY == 0 or current == config.STEPS or stop.signum:
                state.manager.save(checkpoint_number=current)
            if stop.signum:
                print(f"\nstopped by signal {stop.signum} at step {current}; checkpoint saved. "
                      "Continue with: python -m fmnist_app.train --config "
                      f"{run_dir / 'config.json'} --resume", flush=True)
                leave_now(128 + stop.signum, log, writer)
    if progress.tty:
        print()
    return stopped_early


def export_graph(config, state):
    """Freeze the best validation weights (picks_best_weights), else the final (averaged)
    weights, in float32."""
    keras.mixed_precision.set_global_policy("float32")
    export_model = create_model(config.MODEL, config.MEMBERS)
    best = config.run_dir / "best.weights.h5"
    if picks_best_weights(config) and best.exists():
        export_model.load_weights(best)
    else:
        with state.averaged():
            export_model.set_weights([w.numpy() for w in state.model.weights])
    # Kept next to the graph so a later run can start from it (INIT_FROM, --init-from).
    save_weights_atomically(export_model, config.run_dir / WEIGHTS_FILENAME)
    return export_frozen_graph(export_model, config.run_dir / GRAPH_FILENAME)


def score_and_record(config, state, data, graph_path, global_batch, stopped_early):
    """Test accuracy of the exported graph, and metrics.json with how the run was made."""
    test_images, test_labels = load_split("test", config.DATA_DIR or None)
    exported = FrozenModel(graph_path)
    test_predictions = exported.predict(test_images).argmax(axis=1)
    test_accuracy, test_per_class = class_accuracies(test_predictions, test_labels)
    steps, wall_seconds = int(state.step.numpy()), float(state.elapsed.numpy())
    validation_accuracy = None
    if config.VALIDATION_SIZE:
        validation_accuracy = float(np.mean(
            exported.predict(data.monitor_images).argmax(axis=1) == data.monitor_labels))
    extra = {}
    if len(data.extra_held_out) and len(data.extra_held_out[1]):
        images, labels = data.extra_held_out
        right = exported.predict(images).argmax(axis=1) == labels
        extra = {"extra_held_out_images": int(len(labels)),
                 "extra_held_out_accuracy": float(right.mean())}
    metrics = {
        "git_commit": git_commit(), "cpu": cpu_model(), "model": config.MODEL,
        "members": config.MEMBERS,
        "parameters": state.model.count_params(), "seed": config.SEED, "steps": steps,
        "batch_size": global_batch, "replicas": global_batch // config.BATCH_SIZE,
        "train_images": int(len(data.train_labels)), "precision": config.PRECISION,
        "wall_seconds": round(wall_seconds, 1),
        "images_per_second": round(steps * global_batch / max(wall_seconds, 1e-9), 1),
        "stopped_early": stopped_early,
        "validation_accuracy": validation_accuracy,      # of the exported weights
        "test_accuracy": test_accuracy, "test_per_class": test_per_class,
        "frozen_graph": str(graph_path), **extra,
    }
    write_atomically((json.dumps(metrics, indent=2) + "\n").encode(),
                     config.run_dir / "metrics.json")
    print(f"done: {steps} steps in {wall_seconds / 60:.1f} min; test accuracy "
          f"{100 * test_accuracy:.2f}%; graph {graph_path}")
    if config.VALIDATION_SIZE:
        from fmnist_app.calibrate import next_step
        print(next_step(config.run_dir))
    return metrics


# --------------------------------------------------------------------------- the recipe

def lost_peer_error(err, config, state, strategy):
    """multi_worker: a peer died or the network went; the collective op's message names it,
    as an address or as /job:worker/.../task:N, which the cluster spec turns into one."""
    message = err.message or ""
    peer = "(address unknown)"
    task = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", message)
    address = re.search(r"\d{1,3}(?:\.\d{1,3}){3}:\d+|localhost:\d+", message)
    if task:
        cluster = strategy.cluster_resolver.cluster_spec()
        peer = cluster.task_address(task.group(1), int(task.group(2)))
    elif address:
        peer = address.group(0)
    checkpoint_dir = config.run_dir / "checkpoints"
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    kept = f"step {latest.rsplit('-', 1)[1]}" if latest else "none yet"
    return TrainingError(
        f"lost contact with worker {peer} at step {int(state.step.numpy())}; last checkpoint "
        f"kept: {kept} in {checkpoint_dir}. Start every worker again with: python -m "
        f"fmnist_app.train --config {config.run_dir / 'config.json'} --resume")


def training_precision(requested, native_bfloat16=None):
    """The Keras policy PRECISION asks for on this CPU: auto means mixed_bfloat16 where the
    CPU has bfloat16 units and float32 elsewhere. mixed_bfloat16 asked for by name on a CPU
    without them is kept (a comparison may want it), with a warning, as it is then slow."""
    if native_bfloat16 is None:
        native_bfloat16 = has_native_bfloat16()
    if requested == "auto":
        return "mixed_bfloat16" if native_bfloat16 else "float32"
    if requested == "mixed_bfloat16" and not native_bfloat16:
        print(f"warning: PRECISION mixed_bfloat16 on a CPU without bfloat16 units "
              f"({cpu_model()}) trains about 10x slower than float32; set PRECISION "
              "to auto or float32", file=sys.stderr)
    return requested


def train(config, resume=False):
    """config -> data -> model -> fit -> export; returns the metrics (the chief writes them)."""
    # The run records (config.json, metrics) and a resume see the precision that ran.
    config = dataclasses.replace(config, PRECISION=training_precision(config.PRECISION))
    config = with_init_architecture(config)
    strategy = distribute.make_strategy(config.DISTRIBUTE)
    chief = distribute.is_chief(strategy)
    check_run_dir(config, resume, chief)
    keras.mixed_precision.set_global_policy(config.PRECISION)
    data = load_data(config)
    checkpoint_dir = config.run_dir / "checkpoints"
    state = build_state(config, strategy, checkpoint_dir)
    if resume:
        restore_latest(state, checkpoint_dir)
        print(f"resumed {config.run_dir} at step {int(state.step.numpy())}")
    write_run_config(config, chief)
    try:
        stopped_early = fit(config, strategy, state, data, chief)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as err:
        raise lost_peer_error(err, config, state, strategy) from None
    if not chief:
        print(f"worker done: {int(state.step.numpy())} steps; the chief exports the graph")
        return {"steps": int(state.step.numpy()), "chief": False}
    graph_path = export_graph(config, state)
    global_batch = config.BATCH_SIZE * strategy.num_replicas_in_sync
    return score_and_record(config, state, data, graph_path, global_batch, stopped_early)


def main(argv=None):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        flags = dict(OUTPUT_DIR=args.output_dir, MODEL_DIR=args.model_dir, STEPS=args.steps,
                     SEED=args.seed, INIT_FROM=args.init_from)
        overrides.update({key: value for key, value in flags.items() if value is not None})
        config = config_module.load(args.config, **overrides)
        train(config, resume=args.resume)
    except (config_module.ConfigError, DatasetError, TrainingError,
            distribute.DistributeError) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        # Outside the training loop (loading data, exporting): checkpoints already written
        # stay, and --resume continues from the last one.
        sys.exit("interrupted; checkpoints written so far are kept (continue with --resume)")


if __name__ == "__main__":
    main()
