"""tf.distribute on a CPU-only machine: two logical CPUs, and two worker processes on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from conftest import ROOT
from fmnist_app.inference import FrozenModel

# Two logical CPU devices must be configured before TensorFlow touches a device.
MIRRORED_SCRIPT = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from fmnist_app import train
train.main(["--config", sys.argv[1]])
"""


def write_config(path, data_dir, output_dir, **changes):
    values = {"MODEL": "simple_model_1", "STEPS": 30, "BATCH_SIZE": 16, "EVAL_EVERY": 30,
              "CHECKPOINT_EVERY": 10, "VALIDATION_SIZE": 100, "LEARNING_RATE": 0.003,
              "DATA_DIR": str(data_dir), "OUTPUT_DIR": str(output_dir), "MODEL_DIR": "dist"}
    values.update(changes)
    path.write_text(json.dumps(values))
    return path


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_mirrored_over_two_logical_cpus_trains_and_exports(fake_data_dir, tmp_path):
    # Two replicas reduce in no fixed order, so short runs vary: 30 steps gave 0.43 to 1.0,
    # 80 steps gave 1.0 every time.
    config = write_config(tmp_path / "c.json", fake_data_dir, tmp_path, DISTRIBUTE="mirrored",
                          STEPS=80, EVAL_EVERY=40)
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "of 32 (2 replica(s))" in done.stdout
    metrics = json.loads((tmp_path / "dist" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["batch_size"] == 32 and metrics["steps"] == 80
    # The synthetic classes are easy: a working distributed update learns them.
    assert metrics["validation_accuracy"] > 0.5
    probabilities = FrozenModel(tmp_path / "dist" / "frozen_inference_graph.pb").predict(
        np.zeros((3, 28, 28), np.uint8))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_multi_worker_on_two_local_processes_only_chief_writes(fake_data_dir, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        output_dir = tmp_path / f"worker{index}"
        config = write_config(tmp_path / f"c{index}.json", fake_data_dir, output_dir,
                              DISTRIBUTE="multi_worker")
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "fmnist_app.train", "--config", str(config)], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [p.communicate(timeout=240) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (_, err) in zip(processes, results):
        assert p.returncode == 0, err[-2000:]
    chief_run, other_run = tmp_path / "worker0" / "dist", tmp_path / "worker1" / "dist"
    metrics = json.loads((chief_run / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["steps"] == 30
    assert (chief_run / "frozen_inference_graph.pb").is_file()
    assert not other_run.exists()
    assert "worker done: 30 steps" in results[1][0]


def test_multi_worker_without_tf_config_is_a_clear_error(fake_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = write_config(tmp_path / "c.json", fake_data_dir, tmp_path, DISTRIBUTE="multi_worker")
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run([sys.executable, "-m", "fmnist_app.train", "--config", str(config)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: DISTRIBUTE=multi_worker needs $TF_CONFIG")
    assert not (tmp_path / "dist").exists()


def start_workers(configs, cluster, *extra):
    processes = []
    for index, config in enumerate(configs):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "fmnist_app.train", "--config", str(config), *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def test_a_lost_worker_is_one_line_and_both_resume_to_the_end(fake_data_dir, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    # Both workers see one output folder, as on a shared file system; only the chief writes.
    configs = [write_config(tmp_path / f"c{index}.json", fake_data_dir, tmp_path / "shared",
                            DISTRIBUTE="multi_worker", STEPS=400, CHECKPOINT_EVERY=20,
                            EVAL_EVERY=400) for index in range(2)]
    chief, worker = start_workers(configs, cluster)
    checkpoints = tmp_path / "shared" / "dist" / "checkpoints"
    try:
        deadline = time.monotonic() + 240
        while not (checkpoints.exists() and tf.train.latest_checkpoint(checkpoints)):
            assert time.monotonic() < deadline and chief.poll() is None, chief.communicate()
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
        _, err = chief.communicate(timeout=240)
    finally:
        chief.kill()
        worker.kill()
    lines = err.strip().splitlines()
    assert chief.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert lines[-1].startswith(f"error: lost contact with worker 127.0.0.1:{ports[1]}"), lines[-1]
    assert "--resume" in lines[-1] and "step" in lines[-1]
    lost_at = int(tf.train.latest_checkpoint(checkpoints).rsplit("-", 1)[1])
    assert 0 < lost_at < 400

    chief, worker = start_workers(configs, cluster, "--resume")
    try:
        results = [p.communicate(timeout=300) for p in (chief, worker)]
    finally:
        chief.kill()
        worker.kill()
    assert chief.returncode == 0 and worker.returncode == 0, results[0][1][-2000:]
    assert f"at step {lost_at}" in results[0][0]
    metrics = json.loads((tmp_path / "shared" / "dist" / "metrics.json").read_text())
    assert metrics["steps"] == 400 and metrics["replicas"] == 2
