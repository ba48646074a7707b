"""Fault injection: bad inputs that used to crash, hang or lose work each get one clear line,
and nothing of a run changes unless the step that changes it succeeded."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_train_export import tiny_config

from conftest import ROOT, make_dataset
from fmnist_app import config as config_module
from fmnist_app import train
from fmnist_app.dataset import DatasetError, load_split
from fmnist_app.files import write_atomically
from fmnist_app.inference import FrozenModel, ModelError
from fmnist_app.tf_quiet import keras, tf


def train_cli(*args):
    return subprocess.run([sys.executable, "-m", "fmnist_app.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("key, value", [("LEARNING_RATE", float("nan")),
                                        ("FOCAL_GAMMA", float("inf")),
                                        ("WEIGHT_DECAY", float("-inf"))])
def test_non_finite_numbers_are_refused(key, value):
    with pytest.raises(config_module.ConfigError, match=f"{key} must be a finite number"):
        config_module.from_dict({key: value})


def test_unknown_model_is_a_config_error_before_any_folder_exists(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"MODEL": "resnet50", "OUTPUT_DIR": str(tmp_path / "out")}))
    result = train_cli("--config", str(path))
    one_line_error(result, "MODEL must be one of", "fastnet")
    assert not (tmp_path / "out").exists()


# The main thread sleeps far longer than the test waits: only the StopRequest's helper thread
# can end the process in time, as it must while a first step is being traced for seconds.
SIGNAL_IN_FIRST_STEP = """
import os, signal, sys, time
from fmnist_app.train import StopRequest
with StopRequest() as stop:
    if sys.argv[1] == "after":
        stop.first_step_done = True
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(120 if sys.argv[1] == "before" else 0.5)
    print("flag", stop.signum)
"""


def test_a_signal_before_the_first_step_ends_the_run_at_once():
    result = subprocess.run([sys.executable, "-c", SIGNAL_IN_FIRST_STEP, "before"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 128 + signal.SIGTERM
    assert "before the first step finished; nothing new to save" in result.stderr


def test_a_signal_after_the_first_step_is_left_to_the_training_loop():
    result = subprocess.run([sys.executable, "-c", SIGNAL_IN_FIRST_STEP, "after"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"flag {int(signal.SIGTERM)}"


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "fmnist_app.train", "--config",
                                "config.json", "--output-dir", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)     # TensorFlow takes longer than this to import
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted while starting; nothing was written"
    assert not any(tmp_path.iterdir())


def test_ctrl_c_while_loading_data_is_one_line(monkeypatch):
    def interrupted(config):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "load_data", interrupted)
    with pytest.raises(SystemExit) as stopped:
        train.main(["--config", "config.json", "--output-dir", "/nonexistent-never-created"])
    assert str(stopped.value.code).startswith("interrupted; checkpoints written so far are kept")


def test_a_refused_resume_leaves_the_run_untouched(fake_data_dir, tmp_path):
    cfg = tiny_config(fake_data_dir, tmp_path, STEPS=10, EVAL_EVERY=10, CHECKPOINT_EVERY=10)
    train.train(cfg)
    saved = (cfg.run_dir / "config.json").read_bytes()
    result = train_cli("--config", str(cfg.run_dir / "config.json"), "--resume",
                       "--set", "MODEL=fastnet_small", "--set", "STEPS=20")
    one_line_error(result, "cannot resume", "MODEL=simple_model_1")
    assert (cfg.run_dir / "config.json").read_bytes() == saved


def test_a_diverging_loss_stops_the_run_and_keeps_the_checkpoints(fake_data_dir, tmp_path,
                                                                  monkeypatch):
    """A loss that turns NaN at step 13 (as a too-high learning rate makes it)."""
    real_loss = train.create_loss

    def poisoned(config):
        loss = real_loss(config)
        calls = tf.Variable(0)

        def fn(labels, logits):
            calls.assign_add(1)
            nan = tf.where(calls > 12, float("nan"), 0.0)
            return loss(labels, logits) + nan
        return fn

    monkeypatch.setattr(train, "create_loss", poisoned)
    cfg = tiny_config(fake_data_dir, tmp_path, STEPS=40, CHECKPOINT_EVERY=5)
    with pytest.raises(train.TrainingError, match="training diverged") as err:
        train.train(cfg)
    assert "step 13" in str(err.value) and "\n" not in str(err.value)
    assert tf.train.latest_checkpoint(cfg.run_dir / "checkpoints").endswith("ckpt-10")
    assert not (cfg.run_dir / "frozen_inference_graph.pb").exists()


def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(fake_data_dir, tmp_path):
    cfg = tiny_config(fake_data_dir, tmp_path, STEPS=20, EVAL_EVERY=10, CHECKPOINT_EVERY=10)
    train.train(cfg)
    checkpoints = cfg.run_dir / "checkpoints"
    for part in checkpoints.glob("ckpt-20.data-*"):
        part.write_bytes(b"damaged")
    (cfg.run_dir / "frozen_inference_graph.pb").unlink()
    resumed = tiny_config(fake_data_dir, tmp_path, STEPS=30, EVAL_EVERY=10, CHECKPOINT_EVERY=10)
    metrics = train.train(resumed, resume=True)
    assert metrics["steps"] == 30


def test_a_corrupt_gzip_body_is_a_dataset_error(tmp_path):
    folder = make_dataset(tmp_path / "data")
    raw = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    damaged = raw[:40] + bytes(b ^ 0x5A for b in raw[40:200]) + raw[200:]
    (folder / "train-images-idx3-ubyte.gz").write_bytes(damaged)
    with pytest.raises(DatasetError, match="cannot be read") as err:
        load_split("train", folder)
    assert "\n" not in str(err.value)


def frozen(model, path):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from fmnist_app.export import _optimise
    spec = tf.TensorSpec(model.input.shape, model.input.dtype, name="input")

    @tf.function(input_signature=[spec])
    def serve(pixels):
        logits = tf.cast(model(tf.cast(pixels, tf.float32)), tf.float32)
        return {"logits": tf.identity(logits, name="logits"),
                "probabilities": tf.nn.softmax(logits, name="probabilities")}

    concrete = convert_variables_to_constants_v2(serve.get_concrete_function())
    write_atomically(_optimise(concrete.graph.as_graph_def(), concrete.graph)
                     .SerializeToString(), path)
    return path


def small_model(shape, outputs):
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, keras.layers.Dense(outputs)(x))


@pytest.mark.parametrize("shape, outputs, problem", [
    ((32, 32, 3), 10, "has shape [-1, 32, 32, 3], expected [batch, 28, 28, 1]"),
    ((28, 28, 1), 12, "output `logits` has shape (2, 12)"),
])
def test_a_graph_with_the_wrong_interface_is_refused_at_load(tmp_path, shape, outputs, problem):
    path = frozen(small_model(shape, outputs), tmp_path / "graph.pb")
    with pytest.raises(ModelError, match=problem.replace("[", r"\[").replace("(", r"\(")
                       .replace("]", r"\]").replace(")", r"\)")) as err:
        FrozenModel(path)
    assert "\n" not in str(err.value)


def test_a_uint8_input_is_refused_at_load(tmp_path):
    inputs = keras.Input((28, 28, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    path = frozen(model, tmp_path / "graph.pb")
    with pytest.raises(ModelError, match="dtype"):
        FrozenModel(path)


def test_export_to_a_folder_says_which_file_to_give(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fmnist_app.export", "--weights", "w.h5",
                             "--model", "fastnet", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    one_line_error(result, "is a folder", "frozen_inference_graph.pb")


def test_a_leftover_temporary_file_is_cleared_when_the_run_starts(fake_data_dir, tmp_path):
    cfg = tiny_config(fake_data_dir, tmp_path, STEPS=10, EVAL_EVERY=10, CHECKPOINT_EVERY=10)
    cfg.run_dir.mkdir(parents=True)
    orphan = cfg.run_dir / "frozen_inference_graph.pb.abc123.tmp"
    orphan.write_bytes(b"half a graph")
    train.train(cfg)
    assert not orphan.exists()


def test_artifacts_get_the_umask_mode_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomically(b"{}", tmp_path / "metrics.json")
    finally:
        os.umask(previous)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644


def test_benchmark_refuses_an_unwritable_json_path_before_running(tmp_path):
    result = subprocess.run([sys.executable, "benchmark.py", "--json",
                             str(tmp_path / "missing" / "report.json")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: cannot write") and result.stderr.count("\n") == 1


def test_compare_with_a_non_report_never_suggests_overwriting_it(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not json")
    result = subprocess.run([sys.executable, "benchmark.py", "--compare", str(other)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and f"--json {other}" not in result.stderr
