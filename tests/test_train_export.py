"""A tiny real training run, kill-and-resume, the frozen graph and its safe reader."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from fmnist_app import calibrate, calibration, train
from fmnist_app import config as config_module
from fmnist_app.export import export_frozen_graph
from fmnist_app.inference import FrozenModel, ModelError
from fmnist_app.live.pipeline import engine_note
from fmnist_app.machine import cpu_model, has_native_bfloat16
from fmnist_app.models import create_model


def tiny_config(data_dir, output_dir, **changes):
    values = {"MODEL": "simple_model_1", "STEPS": 40, "BATCH_SIZE": 32, "EVAL_EVERY": 20,
              "CHECKPOINT_EVERY": 10, "VALIDATION_SIZE": 100, "EMA_DECAY": 0.9,
              "LR_SCHEDULE": "cosine", "WARMUP_STEPS": 5, "LEARNING_RATE": 0.003,
              "DATA_DIR": str(data_dir), "OUTPUT_DIR": str(output_dir), "MODEL_DIR": "tiny"}
    values.update(changes)
    return config_module.from_dict(values)


def run_cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "fmnist_app.train", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(fake_data_dir, tmp_path_factory):
    cfg = tiny_config(fake_data_dir, tmp_path_factory.mktemp("runs"))
    return cfg, train.train(cfg)


def test_tiny_run_leaves_a_complete_run_directory(tiny_run):
    cfg, metrics = tiny_run
    run_dir = cfg.run_dir
    for name in ("config.json", "log.jsonl", "metrics.json", "best.weights.h5",
                 "frozen_inference_graph.pb"):
        assert (run_dir / name).is_file(), name
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-40")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert config_module.load(run_dir / "config.json") == cfg
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40]
    assert all(len(r["val_per_class"]) == 10 for r in records)
    assert metrics["steps"] == 40 and metrics["train_images"] == 500
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_tiny_run_learns_the_synthetic_classes(tiny_run):
    _, metrics = tiny_run
    # 10 easy classes: chance is 10%; 40 small steps already get well past it.
    assert metrics["validation_accuracy"] > 0.5


def perturbed_model():
    """A small model whose batch-norm statistics are off their defaults, so that folding
    them into the frozen graph is really tested."""
    model = create_model("simple_model_1")
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def hidden_layer(model, images):
    """The Keras model's last hidden layer (the input of `logits`): the graph's `features`."""
    return tf.keras.Model(model.input, model.get_layer("logits").input)(images,
                                                                       training=False).numpy()


def test_frozen_graph_matches_the_keras_model():
    model = perturbed_model()
    images = np.random.default_rng(1).integers(0, 256, (16, 28, 28, 1)).astype(np.float32)
    expected = model(images, training=False).numpy()
    path = export_frozen_graph(model, Path(os.environ.get("TMPDIR", "/tmp")) / "match_test.pb")
    frozen = FrozenModel(path)
    logits, probabilities = frozen.logits_and_probabilities(images.astype(np.uint8))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # `features` is the last hidden layer, the input of the logits layer.
    _, features = frozen.logits_and_features(images)
    assert frozen.has_features
    np.testing.assert_allclose(features, hidden_layer(model, images), rtol=1e-5, atol=1e-5)
    op_types = {node.op for node in tf.compat.v1.GraphDef.FromString(path.read_bytes()).node}
    assert "FusedBatchNormV3" not in op_types  # grappler folded batch norm away
    path.unlink()


def test_the_demos_batch_of_two_runs_on_litert_with_the_same_answers(tmp_path, monkeypatch):
    model = perturbed_model()
    path = export_frozen_graph(model, tmp_path / "live.pb")
    pair = np.random.default_rng(2).integers(0, 256, (2, 28, 28, 1)).astype(np.float32)
    live = FrozenModel(path, live=True)
    assert live.on_litert and live.live_engine.startswith("LiteRT") and engine_note(live) == ""
    logits, features = live.logits_and_features(pair)
    np.testing.assert_allclose(logits, model(pair, training=False).numpy(), atol=1e-4)
    np.testing.assert_allclose(features, hidden_layer(model, pair), atol=1e-4)
    assert live.predict(np.zeros((5, 28, 28))).shape == (5, 10)   # other sizes: the session
    # Without LiteRT the demo still runs, on the session, and says so.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    fallback = FrozenModel(path, live=True)
    assert not fallback.on_litert
    assert fallback.live_problem.startswith("LiteRT cannot run it: ")
    assert fallback.live_engine.startswith("TensorFlow session (LiteRT cannot run it")
    assert "runs on the slower TensorFlow session" in engine_note(fallback)   # the model line
    np.testing.assert_allclose(fallback.logits_and_features(pair)[0], logits, atol=1e-4)


def test_calibrate_fits_the_temperature_and_a_novelty_score_that_tells_noise_apart(tiny_run):
    cfg, _ = tiny_run
    graph = cfg.run_dir / "frozen_inference_graph.pb"
    calibrate.main([str(cfg.run_dir), "--scenes", "3"])
    fitted = calibration.load_for(graph)
    assert fitted.temperature > 0 and 0 < fitted.reject_below < 1 and fitted.novelty_above > 0
    assert np.shape(fitted.class_means) == (10, 128)            # simple_model_1's hidden layer
    model = FrozenModel(graph)
    (_, _), (held_out, _) = calibrate.splits(cfg.run_dir)
    noise = np.random.default_rng(0).integers(0, 256, (100, 28, 28)).astype(np.uint8)
    scores = [np.median(fitted.novelty(calibration.two_view_outputs(model, images)[1]))
              for images in (held_out, noise)]
    assert scores[1] > 3 * scores[0]         # pixel noise is far from every class


def wait_for_checkpoint(process, checkpoint_dir, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if checkpoint_dir.exists() and tf.train.latest_checkpoint(checkpoint_dir):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    pytest.fail("no checkpoint appeared")


@pytest.mark.parametrize("kill_signal", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_the_same_final_step(fake_data_dir, tmp_path, kill_signal):
    cfg = tiny_config(fake_data_dir, tmp_path, STEPS=300, CHECKPOINT_EVERY=25, EVAL_EVERY=100)
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    first = run_cli("--config", str(path))
    wait_for_checkpoint(first, cfg.run_dir / "checkpoints")
    first.send_signal(kill_signal)
    _, err = first.communicate(timeout=60)
    assert first.returncode in (128 + kill_signal, -kill_signal), err
    killed_at = int(tf.train.latest_checkpoint(cfg.run_dir / "checkpoints").rsplit("-", 1)[1])
    assert 0 < killed_at < 300
    if kill_signal == signal.SIGTERM:
        assert (cfg.run_dir / "checkpoints").exists()

    again = run_cli("--config", str(path))  # without --resume it must refuse to overwrite
    out, err = again.communicate(timeout=60)
    assert again.returncode == 1 and "pass --resume" in err

    resumed = run_cli("--config", str(path), "--resume")
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    assert f"resumed {cfg.run_dir} at step {killed_at}" in out
    metrics = json.loads((cfg.run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 300


def test_bad_config_is_one_line_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"LOSS": "hinge"}))
    process = run_cli("--config", str(path))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines()[-1] == (
        "error: LOSS must be one of ce, weighted_ce, focal, got 'hinge'")
    assert "Traceback" not in err


def test_set_overrides_any_key_and_checks_it():
    parsed = train.parse_overrides(
        ["EMA_DECAY=0", "LOSS=focal", "CLASS_WEIGHTS=[1,2,1,1,1,1,1,1,1,1]"])
    assert parsed == {"EMA_DECAY": 0, "LOSS": "focal",
                      "CLASS_WEIGHTS": [1, 2, 1, 1, 1, 1, 1, 1, 1, 1]}
    with pytest.raises(config_module.ConfigError, match="must look like KEY=VALUE"):
        train.parse_overrides(["EMA_DECAY"])
    process = run_cli("--config", "config.json", "--set", "BATCH_SIZE=0")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: BATCH_SIZE must be in [1, 65536]")


# --------------------------------------------------------------------------- the reader

def frozen_graph_with(op_builder, path):
    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="input")])
    def graph(pixels):
        op_builder()
        logits = tf.identity(tf.reduce_mean(pixels, axis=[1, 2]) * tf.ones([1, 10]), name="logits")
        return tf.nn.softmax(logits, name="probabilities")
    path.write_bytes(graph.get_concrete_function().graph.as_graph_def().SerializeToString())
    return path


@pytest.mark.parametrize("op_name, builder", [
    ("WriteFile", lambda: tf.io.write_file("/tmp/owned", "x")),
    ("ReadFile", lambda: tf.io.read_file("/etc/hostname")),
])
def test_graph_with_file_ops_is_refused(tmp_path, op_name, builder):
    path = frozen_graph_with(builder, tmp_path / "evil.pb")
    with pytest.raises(ModelError, match=f"refused, it contains op.*{op_name}"):
        FrozenModel(path)


def test_missing_and_corrupt_graphs_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found; train one with"):
        FrozenModel(tmp_path / "absent.pb")
    corrupt = tmp_path / "corrupt.pb"
    corrupt.write_bytes(b"\x00\xffthis is not a graph" * 10)
    with pytest.raises(ModelError, match="not a frozen TensorFlow graph"):
        FrozenModel(corrupt)


def test_interpolate_keeps_the_largest_mix_that_loses_nothing_on_validation():
    from fmnist_app.interpolate import choose_alpha
    accuracies = {0.0: 0.90, 0.2: 0.92, 0.5: 0.91, 0.8: 0.90, 1.0: 0.89}
    assert choose_alpha(accuracies) == 0.8
    assert choose_alpha({0.0: 0.9, 0.5: 0.8, 1.0: 0.7}) == 0.0       # nothing beats the start


def test_interpolate_between_untrained_and_trained_weights_writes_a_run(tiny_run, tmp_path, capsys):
    from fmnist_app import interpolate
    cfg, metrics = tiny_run
    start = tmp_path / "untrained"
    start.mkdir()
    create_model(cfg.MODEL).save_weights(start / train.WEIGHTS_FILENAME)
    out = tmp_path / "mixed"
    interpolate.main([str(cfg.run_dir), "--start", str(start), "--out", str(out)])
    mixed = json.loads((out / "metrics.json").read_text())
    by_alpha = mixed["validation_accuracy_by_alpha"]
    assert len(by_alpha) == 11 and by_alpha["0.0"] < 0.3       # untrained: about chance
    # The trained end is the tiny run itself: the validation accuracy it recorded (from its
    # frozen graph, which may round an image of the 100 differently than Keras does).
    assert by_alpha["1.0"] == pytest.approx(metrics["validation_accuracy"], abs=0.011)
    assert by_alpha[f"{mixed['alpha']:.1f}"] >= by_alpha["0.0"] and mixed["alpha"] > 0
    assert (out / "frozen_inference_graph.pb").is_file() and (out / "config.json").is_file()
    with pytest.raises(SystemExit, match="exists"):                # never overwrites a run
        interpolate.main([str(cfg.run_dir), "--start", str(start), "--out", str(out)])


def untrained_twin(run_dir, folder):
    """A run folder beside `run_dir` with its config and fresh (untrained) weights."""
    folder.mkdir()
    (folder / "config.json").write_text((run_dir / "config.json").read_text())
    cfg = config_module.load(run_dir / "config.json")
    create_model(cfg.MODEL).save_weights(folder / train.WEIGHTS_FILENAME)
    return folder


def test_ensemble_of_two_runs_averages_their_logits_in_one_graph(tiny_run, tmp_path, capsys):
    from fmnist_app import ensemble
    cfg, _ = tiny_run
    twin = untrained_twin(cfg.run_dir, tmp_path / "twin")
    out = tmp_path / "pair"
    ensemble.main([str(cfg.run_dir), str(twin), "--out", str(out)])
    joined = config_module.load(out / "config.json")
    assert joined.MEMBERS == 2 and joined.MODEL == cfg.MODEL and joined.SEED == cfg.SEED
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["members"] == 2 and metrics["joined"] == [str(cfg.run_dir), str(twin)]
    assert metrics["validation_accuracy_by_member"][str(twin)] < 0.3      # untrained: chance
    images = np.random.default_rng(0).uniform(0, 255, (6, 28, 28, 1)).astype(np.float32)
    first = create_model(cfg.MODEL)
    first.load_weights(cfg.run_dir / train.WEIGHTS_FILENAME)
    second = create_model(cfg.MODEL)
    second.load_weights(twin / train.WEIGHTS_FILENAME)
    logits, features = FrozenModel(out / "frozen_inference_graph.pb").logits_and_features(images)
    expected = (first(images, training=False) + second(images, training=False)) / 2
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert features.shape == (6, 2 * hidden_layer(first, images).shape[1])
    # The weights file is a run's: it loads into create_model with MEMBERS, for a fine-tune.
    pair = create_model(cfg.MODEL, members=2)
    pair.load_weights(out / train.WEIGHTS_FILENAME)
    np.testing.assert_allclose(pair(images, training=False), expected, atol=1e-5)
    with pytest.raises(SystemExit, match="exists"):                # never overwrites a run
        ensemble.main([str(cfg.run_dir), str(twin), "--out", str(out)])


def test_ensemble_refuses_runs_that_hold_out_different_images(tiny_run, tmp_path):
    from fmnist_app import ensemble
    cfg, _ = tiny_run
    twin = untrained_twin(cfg.run_dir, tmp_path / "twin")
    values = json.loads((twin / "config.json").read_text())
    (twin / "config.json").write_text(json.dumps({**values, "SEED": cfg.SEED + 1}))
    with pytest.raises(SystemExit, match="the runs differ in SEED"):
        ensemble.main([str(cfg.run_dir), str(twin), "--out", str(tmp_path / "pair")])
    assert not (tmp_path / "pair").exists()


ZEN2_CPUINFO = {"model name": "AMD EPYC", "cpu family": "23", "model": "49",
                "flags": "fpu sse2 avx avx2 fma"}
ZEN4_CPUINFO = {"model name": "AMD EPYC", "cpu family": "25", "model": "17",
                "flags": "fpu sse2 avx2 avx512f avx512_bf16"}


def test_cpu_name_tells_apart_machines_that_share_a_model_name():
    assert cpu_model(ZEN2_CPUINFO) == "AMD EPYC (family 23, model 49, no bf16)"
    assert cpu_model(ZEN4_CPUINFO) == "AMD EPYC (family 25, model 17, bf16)"
    assert not has_native_bfloat16(ZEN2_CPUINFO) and has_native_bfloat16(ZEN4_CPUINFO)


def test_auto_precision_uses_bfloat16_only_where_the_cpu_has_it(capsys):
    assert train.training_precision("auto", native_bfloat16=True) == "mixed_bfloat16"
    assert train.training_precision("auto", native_bfloat16=False) == "float32"
    assert train.training_precision("float32", native_bfloat16=True) == "float32"
    assert capsys.readouterr().err == ""
    # Asked for by name it is kept, with a warning that names the fix.
    assert train.training_precision("mixed_bfloat16", native_bfloat16=False) == "mixed_bfloat16"
    assert "set PRECISION to auto or float32" in capsys.readouterr().err


def test_a_run_records_the_precision_auto_chose(fake_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "has_native_bfloat16", lambda: False)
    cfg = tiny_config(fake_data_dir, tmp_path, PRECISION="auto", STEPS=10, EVAL_EVERY=10)
    metrics = train.train(cfg)
    assert metrics["precision"] == "float32"
    assert config_module.load(cfg.run_dir / "config.json").PRECISION == "float32"
