"""Your own garments: collect labelled frames with --no-gui, measure a model on the folder
with benchmark.py --images, fine-tune on it from a finished run, load the result in the demo."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from test_train_export import tiny_config

import demo_program
from conftest import ROOT
from fmnist_app import scenes
from fmnist_app.dataset import CLASS_NAMES, load_split
from fmnist_app.live.collect import class_folder, counts, read_examples, remove_example
from fmnist_app.live.pipeline import load_classifier


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from fmnist_app.export import export_frozen_graph
    from fmnist_app.models import create_model
    return export_frozen_graph(create_model("simple_model_1"),
                               tmp_path_factory.mktemp("model") / "frozen_inference_graph.pb")


@pytest.fixture(scope="module")
def clip_and_labels(tmp_path_factory):
    """Ten scenes of test garments, 3 frames each, and a labels CSV for every frame."""
    images, labels = load_split("test")
    folder = tmp_path_factory.mktemp("clip")
    path = folder / "garments.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    rows, rng = ["frame,class"], np.random.default_rng(5)
    for number, index in enumerate(range(10)):
        for frame in scenes.render("plain light background", images[index], rng, 3):
            writer.write(frame)
            name = CLASS_NAMES[labels[index]] if number % 2 else labels[index]  # either way
            rows.append(f"{len(rows) - 1},{name}")
    writer.release()
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return path, folder / "labels.csv", labels[:10]


def test_no_gui_collects_the_labelled_frames(clip_and_labels, tiny_model, tmp_path):
    clip, labels_csv, labels = clip_and_labels
    collected = tmp_path / "mine"
    demo_program.main(["--no-gui", "--video", str(clip), "--model", str(tiny_model),
                       "--predictions", str(tmp_path / "rows.csv"), "--labels", str(labels_csv),
                       "--collect-dir", str(collected)])
    expected = np.bincount(np.repeat(labels, 3), minlength=10)
    assert counts(collected) == expected.tolist()
    example = next((collected / class_folder(int(labels[0]))).glob("*.json"))
    record = json.loads(example.read_text())
    assert record["label"] == CLASS_NAMES[labels[0]] and record["source"].startswith("video")
    images, read_labels, skipped = read_examples(collected)
    assert len(images) == 30 and sorted(read_labels) == sorted(np.repeat(labels, 3))
    assert skipped == []
    remove_example(next((collected / class_folder(int(labels[0]))).glob("2*[0-9].png")))
    assert sum(counts(collected)) == 29


def test_a_bad_labels_file_is_one_line(tiny_model, clip_and_labels, tmp_path):
    clip, _, _ = clip_and_labels
    bad = tmp_path / "labels.csv"
    bad.write_text("frame,class\n0,Jumper\n")
    with pytest.raises(SystemExit) as exit_info:
        demo_program.main(["--no-gui", "--video", str(clip), "--model", str(tiny_model),
                           "--predictions", str(tmp_path / "rows.csv"), "--labels", str(bad)])
    assert "line 2" in str(exit_info.value.code) and "\n" not in str(exit_info.value.code)


def test_benchmark_images_measures_a_folder_and_skips_what_is_not_an_image(tiny_model,
                                                                          tmp_path):
    images, labels = load_split("test")
    folder = tmp_path / "mine"
    for i in range(20):
        target = folder / class_folder(int(labels[i]))
        target.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / f"{i}.png"), images[i])
    crop = scenes.render("plain light background", images[20], np.random.default_rng(0))[0]
    (folder / class_folder(int(labels[20]))).mkdir(exist_ok=True)
    cv2.imwrite(str(folder / class_folder(int(labels[20])) / "photo.jpg"),
                crop[80:400, 160:480])                        # a crop: preprocessed first
    (folder / class_folder(0)).mkdir(exist_ok=True)
    (folder / class_folder(0) / "notes.txt").write_text("not an image")
    (folder / "holiday").mkdir()
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "benchmark.py", "--model", str(tiny_model),
                             "--images", str(folder), "--json", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "notes.txt: not an image" in result.stdout
    assert "holiday: not a class folder" in result.stdout
    assert f"{folder.resolve()} (21 your images)" in result.stdout
    report = json.loads(out.read_text())
    assert report["dataset"]["images"] == 21 and report["dataset"]["split"] == "your images"
    assert np.asarray(report["confusion_matrix"]).sum() == 21


def frozen_and_trained_weights(run_dir, frozen_layers):
    """(weight arrays of batch norm and of the first `frozen_layers` conv/dense layers, the
    other layers' weight arrays) of a run's exported model."""
    from fmnist_app.models import conv_and_dense_layers, create_model
    from fmnist_app.tf_quiet import keras
    model = create_model(json.loads((run_dir / "config.json").read_text())["MODEL"])
    model.load_weights(run_dir / "model.weights.h5")
    frozen = [*conv_and_dense_layers(model)[:frozen_layers],
              *(layer for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization))]
    return ([w for layer in frozen for w in layer.get_weights()],
            [w for layer in model.layers if layer not in frozen for w in layer.get_weights()])


def test_fine_tune_on_your_images_exports_a_graph_the_demo_loads(fake_data_dir, tmp_path):
    from fmnist_app import train
    base = tiny_config(fake_data_dir, tmp_path, STEPS=10, EVAL_EVERY=10, CHECKPOINT_EVERY=10)
    train.train(base)
    mine = tmp_path / "mine"
    images, labels = load_split("train", fake_data_dir)
    for i in range(40):
        target = mine / class_folder(int(labels[i]))
        target.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / f"{i}.png"), images[i])
    tuned = tiny_config(fake_data_dir, tmp_path, MODEL_DIR="tuned", STEPS=10, EVAL_EVERY=5,
                        CHECKPOINT_EVERY=10, INIT_FROM=str(base.run_dir),
                        EXTRA_DATA_DIR=str(mine), OUTLIER_FRACTION=0.1, FREEZE_BATCH_NORM=True,
                        FREEZE_LAYERS=2)
    metrics = train.train(tuned)
    # Batch norm (statistics, scales and offsets) and the first two convolutions kept as the
    # starting run left them, every other layer trained.
    before, after = (frozen_and_trained_weights(run.run_dir, 2) for run in (base, tuned))
    assert before[0] and all(np.allclose(a, b, rtol=1e-6) for a, b in zip(before[0], after[0]))
    assert not any(np.allclose(a, b) for a, b in zip(before[1], after[1]) if a.size > 10)
    # The fine-tune exports its final weights, whatever the Fashion-MNIST validation says
    # halfway; a plain run keeps its best.
    assert (base.run_dir / "best.weights.h5").exists()
    assert not (tuned.run_dir / "best.weights.h5").exists()
    assert metrics["extra_held_out_images"] == 20
    assert 0.0 <= metrics["extra_held_out_accuracy"] <= 1.0
    classifier = load_classifier(tuned.run_dir / "frozen_inference_graph.pb")
    probabilities, novelty = classifier.assess(images[0])
    assert probabilities.shape == (10,) and novelty is None      # not calibrated yet
    # perf/finetune_line.py: alpha 1 is the fine-tune as exported, alpha 0 the run it started
    # from, on the same held-out half and the same test images.
    sys.path.insert(0, str(ROOT / "perf"))
    import finetune_line
    line = finetune_line.line(tuned.run_dir, alphas=(0.0, 1.0))
    assert line[1.0][:2] == (round((1 - metrics["extra_held_out_accuracy"]) * 20), 20)
    assert abs(line[1.0][2] - metrics["test_accuracy"]) <= 1 / 200     # a near tie at most
    base_test = json.loads((base.run_dir / "metrics.json").read_text())["test_accuracy"]
    assert abs(line[0.0][2] - base_test) <= 1 / 200


def test_fine_tune_of_an_ensemble_trains_each_member_above_its_frozen_layers(fake_data_dir,
                                                                             tmp_path):
    from fmnist_app import train
    from fmnist_app.models import conv_and_dense_layers, create_model, members
    start = tmp_path / "pair"
    start.mkdir()
    base = tiny_config(fake_data_dir, tmp_path, MEMBERS=2)
    (start / "config.json").write_text(base.to_json())
    create_model(base.MODEL, members=2).save_weights(start / train.WEIGHTS_FILENAME)
    # The fine-tune's recipe names another model: the architecture comes from INIT_FROM.
    tuned = tiny_config(fake_data_dir, tmp_path, MODEL="fastnet", MODEL_DIR="tuned", STEPS=6,
                        EVAL_EVERY=6, CHECKPOINT_EVERY=6, INIT_FROM=str(start),
                        FREEZE_BATCH_NORM=True, FREEZE_LAYERS=2)
    metrics = train.train(tuned)
    assert metrics["model"] == base.MODEL and metrics["members"] == 2
    models = {}
    for name, folder in (("start", start), ("tuned", tuned.run_dir)):
        models[name] = create_model(base.MODEL, members=2)
        models[name].load_weights(folder / train.WEIGHTS_FILENAME)
    for before, after in zip(*(members(models[name]) for name in ("start", "tuned"))):
        layers_before, layers_after = conv_and_dense_layers(before), conv_and_dense_layers(after)
        for index, (old, new) in enumerate(zip(layers_before, layers_after)):
            # Frozen weights go through the moving average too: equal up to its rounding.
            same = all(np.allclose(a, b, rtol=1e-6) for a, b in zip(old.get_weights(),
                                                                    new.get_weights()))
            assert same == (index < 2), (before.name, old.name)


def test_freezing_every_layer_is_refused_with_the_limit():
    from fmnist_app import train
    from fmnist_app.models import conv_and_dense_layers, create_model
    model = create_model("simple_model_1")           # 4 convolutions and 2 dense layers
    with pytest.raises(train.TrainingError, match="leaves nothing to train.*at most 5"):
        train.freeze_first_layers(model, 6)
    train.freeze_first_layers(model, 5)
    assert [layer.name for layer in conv_and_dense_layers(model)
            if layer.trainable] == ["logits"]
