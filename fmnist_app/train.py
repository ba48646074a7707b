"""Train a Fashion-MNIST classifier and export its frozen graph.

    python -m fmnist_app.train --config config.json [--output-dir D] [--steps N] [--resume]

Reads top to bottom: config -> data -> model -> fit (validation, checkpoints, TensorBoard)
-> export. Everything a run makes lands in OUTPUT_DIR/MODEL_DIR:
config.json, log.jsonl, tensorboard/, checkpoints/, best.weights.h5,
frozen_inference_graph.pb and metrics.json.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fmnist_app.tf_quiet import import_tensorflow_quietly

import_tensorflow_quietly()  # before anything imports TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import data_input  # noqa: E402
from fmnist_app import config as config_module  # noqa: E402
from fmnist_app import distribute  # noqa: E402
from fmnist_app.evaluation import class_metrics, confusion_matrix  # noqa: E402
from fmnist_app.export import GRAPH_FILENAME, export_frozen_graph, write_atomically  # noqa: E402
from fmnist_app.inference import FrozenModel  # noqa: E402
from fmnist_app.losses import create_loss  # noqa: E402
from fmnist_app.models import create_model  # noqa: E402


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

def learning_rate_schedule(config, lr_scale=1):
    """The configured schedule; `lr_scale` multiplies the rate (one factor per replica)."""
    peak = config.LEARNING_RATE * lr_scale
    if config.LR_SCHEDULE == "cosine":
        warmup = min(config.WARMUP_STEPS, config.STEPS - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak / 100 if warmup else peak,
            decay_steps=config.STEPS - warmup, alpha=0.0,
            warmup_target=peak if warmup else None, warmup_steps=warmup)
    return keras.optimizers.schedules.ExponentialDecay(
        peak, config.DECAY_STEPS, config.DECAY_RATE, staircase=True)


def make_optimizer(config, lr_scale=1):
    schedule = learning_rate_schedule(config, lr_scale)
    if config.OPTIMIZER == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.WEIGHT_DECAY)
    return keras.optimizers.Adam(schedule)


class WeightAverage:
    """Exponential moving average of all model weights (trainable and batch-norm stats).

    The effective decay ramps up as min(decay, (1 + n) / (10 + n)) so short runs work too.
    """

    def __init__(self, model, decay):
        self.model, self.decay = model, decay
        self.shadow = [tf.Variable(w, trainable=False) for w in model.weights]

    def update(self, step):
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for avg, w in zip(self.shadow, self.model.weights):
            avg.assign(decay * avg + (1.0 - decay) * tf.cast(w, avg.dtype))

    @contextlib.contextmanager
    def applied(self):
        """Temporarily load the averaged weights into the model."""
        saved = [w.numpy() for w in self.model.weights]
        for w, avg in zip(self.model.weights, self.shadow):
            w.assign(avg)
        try:
            yield
        finally:
            for w, value in zip(self.model.weights, saved):
                w.assign(value)


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
    tmp = Path(path).with_name("tmp-" + Path(path).name)
    model.save_weights(tmp)
    os.replace(tmp, path)


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so a checkpoint is written first."""

    def __init__(self):
        self.signum = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.signum = signum


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


# --------------------------------------------------------------------------- main

def train(config, resume=False):
    """Run the whole recipe; returns the metrics dict (the chief also writes metrics.json)."""
    strategy = distribute.make_strategy(config.DISTRIBUTE)
    chief = distribute.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.BATCH_SIZE * replicas
    run_dir = config.run_dir
    checkpoint_dir = run_dir / "checkpoints"
    has_checkpoint = checkpoint_dir.exists() and tf.train.latest_checkpoint(checkpoint_dir)
    if chief and not resume and (has_checkpoint or (run_dir / GRAPH_FILENAME).exists()):
        raise TrainingError(f"{run_dir} already holds a run: pass --resume to continue it, "
                            "or --model-dir NEW_NAME to start another")
    if resume and not has_checkpoint:
        raise TrainingError(f"nothing to resume: no checkpoint in {checkpoint_dir}")
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(config.to_json().encode(), run_dir / "config.json")
    keras.mixed_precision.set_global_policy(config.PRECISION)

    # ---- data
    train_images, train_labels = data_input.load_split("train", config.DATA_DIR or None)
    train_idx, val_idx = data_input.stratified_split(
        train_labels, config.VALIDATION_SIZE, config.SEED)
    if config.TRAIN_SUBSET:
        train_idx = np.random.default_rng(config.SEED).permutation(train_idx)[:config.TRAIN_SUBSET]
    if config.VALIDATION_SIZE:
        monitor_name = "val"
        monitor_images, monitor_labels = train_images[val_idx], train_labels[val_idx]
    else:  # all 60k train; the test set is only watched for the curve, never used to choose.
        monitor_name = "test_monitor"
        monitor_images, monitor_labels = data_input.load_split("test", config.DATA_DIR or None)
    monitor_labels = monitor_labels.astype(np.int64)

    # ---- model, loss, optimizer, state (variables live under the strategy's scope)
    with strategy.scope():
        model = create_model(config.MODEL)
        optimizer = make_optimizer(config, lr_scale=replicas)
        optimizer.build(model.trainable_variables)
        average = WeightAverage(model, config.EMA_DECAY) if config.EMA_DECAY else None
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        best_accuracy = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        evals_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
    loss_fn = create_loss(config)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, elapsed=elapsed,
                                     best_accuracy=best_accuracy, evals_since_best=evals_since_best,
                                     average=average.shadow if average else [])
    manager = tf.train.CheckpointManager(
        checkpoint, distribute.checkpoint_dir_for(strategy, checkpoint_dir), max_to_keep=2)
    if resume:
        checkpoint.restore(tf.train.latest_checkpoint(checkpoint_dir)).assert_existing_objects_matched()
        print(f"resumed {run_dir} at step {int(step.numpy())}")
    start_step = int(step.numpy())
    # A resumed run draws a fresh shuffle/augmentation stream instead of replaying the first one.
    tf.random.set_seed(config.SEED + start_step)
    dataset = strategy.experimental_distribute_dataset(data_input.train_dataset(
        train_images[train_idx], train_labels[train_idx], global_batch, config.AUGMENT_PROB,
        config.SEED + start_step, config.ERASE_FILL, config.FLIP_FOOTWEAR,
        config.ROTATE_DEGREES))

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
        step.assign_add(1)
        if average:
            average.update(step)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    @tf.function
    def predict_batch(images):
        return tf.argmax(model(images, training=False), axis=-1)

    def evaluate():
        with average.applied() if average else contextlib.nullcontext():
            predictions = np.concatenate([predict_batch(x).numpy() for x, _ in
                                          data_input.eval_dataset(monitor_images, monitor_labels)])
            accuracy, per_class = class_accuracies(predictions, monitor_labels)
            improved = accuracy > float(best_accuracy.numpy())
            if improved and config.VALIDATION_SIZE and chief:
                save_weights_atomically(model, run_dir / "best.weights.h5")
        if improved:
            best_accuracy.assign(accuracy)
            evals_since_best.assign(0)
        else:
            evals_since_best.assign_add(1)
        return accuracy, per_class

    # ---- fit
    if chief:
        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
        log_path = run_dir / "log.jsonl"
    else:
        writer, log_path = tf.summary.create_noop_writer(), os.devnull
    stop = StopRequest()
    progress = Progress(config.STEPS, global_batch, start_step)
    print(f"training {config.MODEL} ({model.count_params():,} parameters) for {config.STEPS} steps"
          f" of {global_batch} ({replicas} replica(s)) on {len(train_idx)} images,"
          f" {config.PRECISION}; TensorBoard: tensorboard --logdir {config.OUTPUT_DIR}", flush=True)
    last_accuracy, loss, stopped_early = None, float("nan"), False
    clock = time.monotonic()
    with open(log_path, "a") as log, writer.as_default():
        for images, labels in dataset:
            if int(step.numpy()) >= config.STEPS or stopped_early:
                break
            loss = float(train_step(images, labels))
            current = int(step.numpy())
            elapsed.assign_add(time.monotonic() - clock)
            clock = time.monotonic()
            progress.update(current, loss, last_accuracy)
            if current % 50 == 0:
                tf.summary.scalar("train/loss", loss, step=current)
                tf.summary.scalar("train/learning_rate",
                                  float(optimizer.learning_rate), step=current)
            if current % config.EVAL_EVERY == 0 or current == config.STEPS:
                last_accuracy, per_class = evaluate()
                record = {"step": current, "wall_seconds": round(float(elapsed.numpy()), 1),
                          "loss": loss, "images_per_second": round(progress.images_per_second, 1),
                          f"{monitor_name}_accuracy": last_accuracy,
                          f"{monitor_name}_per_class": per_class}
                log.write(json.dumps(record) + "\n")
                log.flush()
                tf.summary.scalar(f"{monitor_name}/accuracy", last_accuracy, step=current)
                for cls, acc in enumerate(per_class):
                    tf.summary.scalar(f"{monitor_name}_per_class/{cls}_{data_input.CLASS_NAMES[cls]}",
                                      acc, step=current)
                progress.update(current, loss, last_accuracy, force=True)
                patience = config.EARLY_STOPPING_PATIENCE
                if patience and int(evals_since_best.numpy()) >= patience:
                    print(f"\nearly stop at step {current}: "
                          f"no improvement in {patience} evaluations")
                    stopped_early = True
                clock = time.monotonic()  # evaluation time is not training time
            if current % config.CHECKPOINT_EVERY == 0 or current == config.STEPS or stop.signum:
                manager.save(checkpoint_number=current)
            if stop.signum:
                print(f"\nstopped by signal {stop.signum} at step {current}; checkpoint saved. "
                      "Continue with: python -m fmnist_app.train --config "
                      f"{run_dir / 'config.json'} --resume", flush=True)
                sys.exit(128 + stop.signum)
    if progress.tty:
        print()
    wall_seconds = float(elapsed.numpy())
    if not chief:
        print(f"worker done: {int(step.numpy())} steps; the chief exports the graph")
        return {"steps": int(step.numpy()), "chief": False}

    # ---- export: the best validation weights, else the final (averaged) weights
    keras.mixed_precision.set_global_policy("float32")
    export_model = create_model(config.MODEL)
    if config.VALIDATION_SIZE and (run_dir / "best.weights.h5").exists():
        export_model.load_weights(run_dir / "best.weights.h5")
    else:
        with average.applied() if average else contextlib.nullcontext():
            export_model.set_weights([w.numpy() for w in model.weights])
    graph_path = export_frozen_graph(export_model, run_dir / GRAPH_FILENAME)
    test_images, test_labels = data_input.load_split("test", config.DATA_DIR or None)
    test_predictions = FrozenModel(graph_path).predict(test_images).argmax(axis=1)
    test_accuracy, test_per_class = class_accuracies(test_predictions, test_labels)

    metrics = {
        "git_commit": git_commit(), "model": config.MODEL, "parameters": model.count_params(),
        "seed": config.SEED, "steps": int(step.numpy()), "batch_size": global_batch,
        "replicas": replicas,
        "train_images": int(len(train_idx)), "precision": config.PRECISION,
        "wall_seconds": round(wall_seconds, 1),
        "images_per_second": round(int(step.numpy()) * global_batch / max(wall_seconds, 1e-9), 1),
        "stopped_early": stopped_early,
        "validation_accuracy": float(best_accuracy.numpy()) if config.VALIDATION_SIZE else None,
        "test_accuracy": test_accuracy, "test_per_class": test_per_class,
        "frozen_graph": str(graph_path),
    }
    write_atomically((json.dumps(metrics, indent=2) + "\n").encode(), run_dir / "metrics.json")
    print(f"done: {int(step.numpy())} steps in {wall_seconds / 60:.1f} min; test accuracy "
          f"{100 * test_accuracy:.2f}%; graph {graph_path}")
    return metrics


def main(argv=None):
    args = parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        overrides.update(OUTPUT_DIR=args.output_dir, MODEL_DIR=args.model_dir, STEPS=args.steps,
                         SEED=args.seed)
        config = config_module.load(args.config, **overrides)
        train(config, resume=args.resume)
    except (config_module.ConfigError, data_input.DatasetError, TrainingError,
            distribute.DistributeError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
