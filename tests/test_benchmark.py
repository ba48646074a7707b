"""benchmark.py on a tiny frozen graph: numbers, JSON, plots, flip TTA and its errors."""

import contextlib
import hashlib
import io
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import benchmark
from conftest import ROOT, synthetic_images, write_idx
from fmnist_app import dataset, evaluation
from fmnist_app.export import export_frozen_graph
from fmnist_app.inference import FrozenModel
from fmnist_app.models import create_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def tiny_graph(fake_data_dir, tmp_path_factory):
    """simple_model_1 fitted for a few steps on the fake training split, then frozen."""
    keras.utils.set_random_seed(0)
    model = create_model("simple_model_1")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = dataset.load_split("train", fake_data_dir)
    model.fit(images[..., None].astype("float32"), labels, batch_size=50, epochs=4, verbose=0)
    return export_frozen_graph(model, tmp_path_factory.mktemp("graph") / "frozen.pb")


@pytest.fixture(scope="session")
def noisy_test_dir(tmp_path_factory):
    """A 200-image test split where every 4th label is wrong, so mistakes are guaranteed."""
    folder = tmp_path_factory.mktemp("noisy")
    labels = np.tile(np.arange(10, dtype=np.uint8), 20)
    images = synthetic_images(labels, seed=1)
    labels[::4] = (labels[::4] + 1) % 10
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images, dataset.IMAGES_MAGIC)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels, dataset.LABELS_MAGIC)
    return folder


@pytest.fixture(scope="session")
def benchmark_run(tiny_graph, noisy_test_dir, tmp_path_factory):
    """One full command with every output: (stdout, report dict, plots folder)."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["--model", str(tiny_graph), "--data-dir", str(noisy_test_dir),
            "--json", str(out / "report.json"), "--plots", str(out / "plots"), "--tta"]
    stdout = run_main(argv)
    return stdout, json.loads((out / "report.json").read_text()), out / "plots"


def run_main(argv):
    """Run benchmark.main in this process; returns stdout, fails on a non-zero exit."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert benchmark.main(argv) == 0
    return buffer.getvalue()


def section(stdout, title):
    """The lines of one printed table, from its title to the next blank line."""
    start = stdout.index(title + "\n") + len(title) + 1
    return stdout[start:].split("\n\n")[0].splitlines()


# --------------------------------------------------------------------------- numbers

def test_table_equals_a_direct_computation_from_predictions(benchmark_run, tiny_graph,
                                                            noisy_test_dir):
    stdout, report, _ = benchmark_run
    images, labels = dataset.load_split("test", noisy_test_dir)
    predicted = FrozenModel(tiny_graph).predict(images).argmax(axis=1)

    overall = np.mean(predicted == labels)
    assert report["overall_accuracy"] == pytest.approx(overall, abs=1e-12)
    table = section(stdout, "Test accuracy (%)")
    assert table[0].split() == ["Overall", f"{100 * overall:.2f}"]
    for c, (row, line) in enumerate(zip(report["per_class"], table[1:], strict=True)):
        in_class, called_c = labels == c, predicted == c
        hits = np.sum(in_class & called_c)
        # A class never predicted has precision 0 (scikit-learn's zero_division=0).
        precision = hits / called_c.sum() if called_c.any() else 0.0
        recall = hits / in_class.sum()
        assert row["accuracy"] == pytest.approx(recall, abs=1e-12)
        assert row["precision"] == pytest.approx(precision, abs=1e-12)
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        assert row["f1"] == pytest.approx(f1, abs=1e-12)
        name = f"Class {c} ({dataset.CLASS_NAMES[c]})"
        assert line == f"{name:<{evaluation.LABEL_WIDTH}}  {100 * recall:5.1f}"

    matrix = np.asarray(report["confusion_matrix"])
    for t in range(10):
        for p in range(10):
            assert matrix[t, p] == np.sum((labels == t) & (predicted == p))
    assert matrix.sum() == len(labels) == report["dataset"]["images"]


def test_the_noisy_labels_show_up_as_confusions(benchmark_run):
    _, report, _ = benchmark_run
    assert 0.5 < report["overall_accuracy"] < 1.0
    top = report["most_confused"][0]
    matrix = np.asarray(report["confusion_matrix"])
    a, b = top["classes"]
    assert top["total"] == matrix[a, b] + matrix[b, a] > 0
    totals = [p["total"] for p in report["most_confused"]]
    assert totals == sorted(totals, reverse=True)


def test_metrics_on_a_hand_made_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 0, 1])
    overall, per_class = evaluation.class_metrics(evaluation.confusion_matrix(labels, predictions))
    assert overall == pytest.approx(3 / 6)
    assert per_class[0]["precision"] == pytest.approx(2 / 3)
    assert per_class[0]["recall"] == pytest.approx(2 / 3)
    assert per_class[1]["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    # Class 2 is never predicted, class 3 never occurs: zero, not NaN.
    assert per_class[2]["precision"] == per_class[3]["recall"] == per_class[3]["f1"] == 0.0
    pairs = evaluation.most_confused_pairs(evaluation.confusion_matrix(labels, predictions))
    assert pairs[0] == {"classes": [0, 1], "total": 2, "a_as_b": 1, "b_as_a": 1}


def test_same_graph_gives_the_same_table(benchmark_run, tiny_graph, noisy_test_dir):
    def tables(stdout):  # every printed section but the speed one, which is measured
        return [s.strip() for s in stdout.split("\n\n") if not s.startswith(("Speed", "wrote"))]

    again = run_main(["--model", str(tiny_graph), "--data-dir", str(noisy_test_dir), "--tta"])
    assert tables(again) == tables(benchmark_run[0])


def test_timing_and_model_identity_are_recorded(benchmark_run, tiny_graph):
    _, report, _ = benchmark_run
    assert report["model"]["sha256"] == hashlib.sha256(tiny_graph.read_bytes()).hexdigest()
    assert report["timing"]["images_per_second"] > 0
    assert report["timing"]["latency_ms_median"] > 0


# --------------------------------------------------------------------------- flip TTA

def test_tta_is_reported_apart_from_the_plain_number(benchmark_run):
    stdout, report, _ = benchmark_run
    assert report["tta"]["rule"] == evaluation.TTA_RULE
    assert np.asarray(report["tta"]["confusion_matrix"]).sum() == report["dataset"]["images"]
    plain_table = section(stdout, "Test accuracy (%)")
    assert plain_table[0].split()[1] == f"{100 * report['overall_accuracy']:.2f}"
    assert "Test accuracy with flip TTA" in stdout


# --------------------------------------------------------------------------- JSON and plots

def test_json_round_trips_and_compares_to_itself(benchmark_run, tmp_path):
    _, report, _ = benchmark_run
    path = tmp_path / "again.json"
    evaluation.write_report(report, path)
    assert evaluation.read_report(path) == report
    comparison = evaluation.format_comparison(report, report, path).splitlines()
    assert len(comparison) == 2 + 11
    assert all(line.endswith("+0.00") for line in comparison[2:])


def test_compare_prints_per_class_changes(benchmark_run, tiny_graph, noisy_test_dir, tmp_path):
    _, report, _ = benchmark_run
    other = dict(report, per_class=[dict(c, accuracy=c["accuracy"] - 0.01)
                                    for c in report["per_class"]])
    evaluation.write_report(other, tmp_path / "other.json")
    stdout = run_main(["--model", str(tiny_graph), "--data-dir", str(noisy_test_dir),
                       "--compare", str(tmp_path / "other.json")])
    rows = section(stdout, f"Comparison with {tmp_path / 'other.json'} "
                           f"(model sha256 {report['model']['sha256'][:12]})")
    assert rows[1].split()[-1] == "+0.00"  # Overall
    assert all(row.endswith("+1.00") for row in rows[2:])


def test_plots_are_valid_pngs(benchmark_run):
    _, _, plots = benchmark_run
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["confusion_matrix.png", "misclassified.png", "per_class_accuracy.png",
                     "precision_recall_f1.png", "reliability.png"]
    for name in names:
        data = (plots / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name


# --------------------------------------------------------------------------- errors

def test_default_model_is_the_shipped_one():
    default = benchmark.parse_args([]).model
    assert default == str(ROOT / "output_dir/final_model/frozen_inference_graph.pb")


def test_missing_model_is_one_clear_line_from_the_command_line(tmp_path, noisy_test_dir):
    result = subprocess.run(
        [sys.executable, "benchmark.py", "--model", str(tmp_path / "absent.pb"),
         "--data-dir", str(noisy_test_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: model file {tmp_path / 'absent.pb'} not found; "
                                    "train one with")


@pytest.mark.parametrize("argv, expected", [
    ("--model {corrupt} --data-dir {data}", "not a frozen TensorFlow graph"),
    ("--model {graph} --data-dir {tmp}/nowhere", "Fashion-MNIST folder"),
    ("--model {graph} --data-dir {tmp}", "t10k-images-idx3-ubyte[.gz] is missing"),
    ("--model {graph} --data-dir {data} --compare {tmp}/x.json",
     "not found; write one with `python benchmark.py --json"),
    ("--model {graph} --data-dir {data} --compare {corrupt}", "is not readable JSON"),
    ("--model {graph} --data-dir {data} --compare {tmp}/three_classes.json",
     "is not a benchmark JSON"),
], ids=["corrupt model", "missing dataset", "dataset without test files", "missing compare file",
        "compare file not JSON", "compare file not a report"])
def test_bad_input_is_a_one_line_error(argv, expected, tmp_path, tiny_graph, noisy_test_dir,
                                       capsys):
    corrupt = tmp_path / "corrupt.pb"
    corrupt.write_bytes(b"\x00\xffthis is not a graph" * 10)
    (tmp_path / "three_classes.json").write_text(
        json.dumps({"overall_accuracy": 1.0, "per_class": [{"accuracy": 1.0}] * 3}))
    argv = argv.format(corrupt=corrupt, graph=tiny_graph, data=noisy_test_dir, tmp=tmp_path)
    assert benchmark.main(argv.split()) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert expected in captured.err


def test_calibration_is_reported_even_without_a_calibration_file(benchmark_run):
    stdout, report, _ = benchmark_run
    numbers = report["calibration"]
    assert numbers["temperature"] == 1.0 and numbers["reject_below"] is None
    assert 0.0 <= numbers["ece_before"] <= 1.0
    assert "Calibration: none" in stdout and "fmnist_app.calibrate" in stdout


def test_mirror_evaluates_the_mirrored_images(tmp_path, benchmark_run):
    _, report, _ = benchmark_run
    out = tmp_path / "mirrored.json"
    model = report["model"]["path"]
    data = report["dataset"]["path"]
    result = subprocess.run([sys.executable, "benchmark.py", "--model", model, "--data-dir",
                             data, "--mirror", "--json", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    mirrored = json.loads(out.read_text())
    images, labels = dataset.load_split("test", data)
    from fmnist_app.inference import FrozenModel
    expected = FrozenModel(model).predict(images[:, :, ::-1]).argmax(axis=1)
    assert np.asarray(mirrored["confusion_matrix"]).trace() == int((expected == labels).sum())
