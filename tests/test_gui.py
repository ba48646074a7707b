"""The demo window under QT_QPA_PLATFORM=offscreen (pytest-qt), and the --no-gui run.

Each window plays a video written here and runs a tiny frozen graph exported here, so the
tests need neither a camera nor the trained model.
"""

import csv
import json
import os
import subprocess

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

import demo_program
from fmnist_app.dataset import CLASS_NAMES
from fmnist_app.gui.main_window import MainWindow
from fmnist_app.gui.worker import to_qimage
from fmnist_app.live.window_options import WindowOptions
from fmnist_app.sources import DemoSource, SourceSpec

# Read when pytest-qt creates the QApplication, at the first test: early enough here.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
WAIT_MS = 20000        # generous: a training job may be sharing the two cores


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from fmnist_app.export import export_frozen_graph
    from fmnist_app.models import create_model
    return export_frozen_graph(create_model("simple_model_1"),
                               tmp_path_factory.mktemp("model") / "frozen_inference_graph.pb")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two seconds of the demo scene (30 fps) as an MJPG video file."""
    from fmnist_app.dataset import load_split
    images, _ = load_split("test")
    demo = DemoSource(images[:10])
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for _ in range(60):
        writer.write(demo.read())
    writer.release()
    return path


@pytest.fixture
def open_window(qtbot, tiny_model, tmp_path):
    def start(spec, model=tiny_model):
        window = MainWindow(WindowOptions(spec, model, snapshot_dir=tmp_path / "snapshots"))
        qtbot.addWidget(window)        # closed at teardown, which stops the worker
        window.show()
        return window
    return start


def wait_for_results(qtbot, window, count):
    target = window.results_shown + count
    qtbot.waitUntil(lambda: window.results_shown >= target, timeout=WAIT_MS)


def test_window_classifies_a_video(qtbot, open_window, clip):
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 3)
    first_input = window.preview.image.copy()
    wait_for_results(qtbot, window, 10)
    assert window.statusBar().currentMessage() == "showing video clip.avi"
    assert window.preview.image.size().toTuple() == (28, 28)
    assert window.preview.pixmap().width() == window.preview.side
    assert window.preview.image != first_input            # the 28x28 preview follows the video
    names = [label.text() for label in window.bars.names[:3]]
    assert all(name in CLASS_NAMES for name in names) and len(set(names)) == 3
    values = [bar.value() for bar in window.bars.bars[:3]]
    assert values == sorted(values, reverse=True) and 0 < sum(values) <= 1002
    assert window.prediction.text() in (*CLASS_NAMES, "unsure")
    assert "fps" in window.stats.text() and "model" in window.stats.text()


def test_space_pauses_and_resumes(qtbot, open_window, clip):
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.worker.settings.paused, timeout=WAIT_MS)
    assert window.pause_button.isChecked()
    qtbot.wait(300)                                       # let a frame in flight land
    frozen = window.results_shown
    qtbot.wait(500)
    assert window.results_shown == frozen
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window.worker.settings.paused, timeout=WAIT_MS)
    wait_for_results(qtbot, window, 3)


def test_m_mirrors_the_picture_and_the_model_input(qtbot, open_window, clip):
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_Space)              # hold one frame to compare
    qtbot.wait(300)
    before = window.current.result
    assert not before.mirrored                            # files are not mirrored by default
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert window.mirror_box.isChecked()
    qtbot.waitUntil(lambda: window.current.result.mirrored, timeout=WAIT_MS)
    after = window.current.result
    np.testing.assert_array_equal(after.frame, before.frame[:, ::-1])
    assert not np.array_equal(after.model_input, before.model_input)


def test_s_saves_frame_crop_input_and_json(qtbot, open_window, clip, tmp_path):
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: window.last_snapshot is not None, timeout=WAIT_MS)
    record = json.loads(window.last_snapshot.read_text())
    assert record["prediction"] == window.prediction.text()
    assert record["source"] == "video clip.avi"
    assert [entry["class"] for entry in record["top3"]][0] in CLASS_NAMES
    folder = tmp_path / "snapshots"
    shapes = {name: cv2.imread(str(folder / file), cv2.IMREAD_UNCHANGED).shape
              for name, file in record["files"].items()}
    side = record["analysed_square"]["side"]          # the guide box plus its margin
    assert side > record["guide_box"]["side"]
    assert shapes == {"frame": (480, 640, 3), "crop": (side, side, 3), "input28": (28, 28)}
    assert "saved snapshot" in window.statusBar().currentMessage()


def test_closing_stops_the_worker_and_releases_the_source(qtbot, open_window, clip):
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 2)
    assert window.source_name == "video clip.avi"
    with qtbot.waitSignal(window.worker.finished, timeout=WAIT_MS):
        window.close()
    assert window.worker_thread.isFinished()
    assert window.worker._source is None                # the capture was released


def test_a_missing_video_shows_the_problem_and_the_window_stays_usable(qtbot, open_window,
                                                                       tmp_path):
    window = open_window(SourceSpec("video", tmp_path / "gone.mp4"))
    qtbot.waitUntil(lambda: "not found" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert "gone.mp4" in window.frame_view.notice
    qtbot.keyClick(window, Qt.Key.Key_S)                  # nothing to save: says so
    assert "nothing to save" in window.statusBar().currentMessage()


def test_no_camera_says_so_and_offers_the_demo_source(qtbot, open_window):
    window = open_window(SourceSpec("camera", 97))
    qtbot.waitUntil(lambda: "camera 97 not available" in window.statusBar().currentMessage(),
                    timeout=WAIT_MS)
    assert "Demo source" in window.frame_view.notice
    assert window.source_picker.itemText(0) == "Camera 97 (not found)"
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert "no camera found to switch to" in window.statusBar().currentMessage()
    qtbot.mouseClick(window.demo_button, Qt.MouseButton.LeftButton)
    wait_for_results(qtbot, window, 3)
    assert window.statusBar().currentMessage() == "showing demo source"
    assert window.source_picker.currentText() == "Demo source"
    assert not window.current.result.empty


def test_without_a_model_the_picture_still_runs(qtbot, open_window, clip, tmp_path):
    window = open_window(SourceSpec("video", clip), model=tmp_path / "none.pb")
    wait_for_results(qtbot, window, 2)
    assert window.model_line.text().startswith("no model")
    assert "none.pb not found" in window.model_line.text()
    assert window.prediction.text() == "no model"


def test_latest_result_wins_and_signals_do_not_pile_up(qtbot, open_window, clip):
    """While the window has not taken a Delivery, the worker sends no other: frames go on
    being processed, but nothing queues up behind a slow window."""
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 2)
    sent = []
    window.worker.result_ready.connect(sent.append, Qt.ConnectionType.DirectConnection)
    window.worker.result_ready.disconnect(window._show_delivery)
    qtbot.wait(1000)
    assert len(sent) == 1                          # one Delivery, then it waited
    window.worker.result_ready.connect(window._show_delivery)
    window._show_delivery(sent[0])                 # taken: the next one may come
    qtbot.waitUntil(lambda: len(sent) >= 2, timeout=WAIT_MS)
    assert sent[1].result.index > sent[0].result.index


def test_qimages_own_their_pixels():
    frame = np.full((4, 6, 3), 40, np.uint8)
    image = to_qimage(frame)
    frame[:] = 200                                 # the worker reuses or frees its buffers
    assert image.pixelColor(0, 0).red() == 40 and image.size().toTuple() == (6, 4)


def test_no_gui_writes_one_row_per_frame(clip, tiny_model, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    demo_program.main(["--no-gui", "--video", str(clip), "--model", str(tiny_model),
                       "--predictions", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60 and [int(row["frame"]) for row in rows] == list(range(60))
    assert all(row["top1_class"] in CLASS_NAMES for row in rows)
    probabilities = [[float(row[f"top{k}_probability"]) for k in (1, 2, 3)] for row in rows]
    assert all(p1 >= p2 >= p3 > 0 for p1, p2, p3 in probabilities)
    assert "wrote 60 rows" in capsys.readouterr().out


def test_no_display_gives_one_line_pointing_to_no_gui(monkeypatch):
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        demo_program.main(["--demo-source"])
    message = str(exit_info.value.code)
    assert "no display" in message and "--no-gui" in message and "\n" not in message


@pytest.mark.parametrize("argv, problem", [
    (["--box-size", "3"], "--box-size 3.0 is outside 0.2..1"),
    (["--no-gui"], "--no-gui needs --predictions"),
    (["--camera", "1", "--video", "x.mp4"], "not allowed with argument"),
])
def test_bad_arguments_are_one_line_errors(argv, problem, capsys):
    with pytest.raises(SystemExit):
        demo_program.main(argv)
    assert problem in capsys.readouterr().err


def test_window_and_no_gui_give_the_same_answer_for_the_same_frame(qtbot, open_window,
                                                                   tiny_model, tmp_path):
    """A still image: every frame is the same, so the window's averaged answer settles on
    exactly what --no-gui writes for that frame."""
    from fmnist_app import scenes
    from fmnist_app.dataset import load_split
    images, _ = load_split("test")
    picture = tmp_path / "scene.png"
    frame = scenes.render("light garment on dark", images[3], np.random.default_rng(0))[0]
    cv2.imwrite(str(picture), frame)
    out = tmp_path / "rows.csv"
    demo_program.main(["--no-gui", "--image", str(picture), "--model", str(tiny_model),
                       "--predictions", str(out)])
    row = next(csv.DictReader(out.open()))
    window = open_window(SourceSpec("image", picture))
    wait_for_results(qtbot, window, 1)
    shown = window.current.result
    assert shown.verdict == row["verdict"]
    assert [(name, f"{p:.4f}") for name, p in shown.top3] == [
        (row[f"top{k}_class"], row[f"top{k}_probability"]) for k in (1, 2, 3)]
    assert window.prediction.text() in (row["top1_class"], "unsure")


def test_a_remote_display_that_does_not_answer_is_one_line(monkeypatch):
    from fmnist_app.gui.app import display_problem
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", "localhost:17")            # port 6017: nothing listens
    assert display_problem() == "no X server answers on DISPLAY=localhost:17"


def test_smoothing_restarts_when_the_picture_changes(tiny_model, tmp_path):
    """A folder slideshow: the first frame of a new image is that image's own answer."""
    from fmnist_app.dataset import load_split
    from fmnist_app.live.pipeline import Pipeline, load_classifier
    from fmnist_app.sources import DemoSource
    images, _ = load_split("test")
    demo = DemoSource(images[:4])
    first, second = demo.frame_at(0.0), demo.frame_at(3.5)
    classifier = load_classifier(tiny_model)
    alone = Pipeline(classifier).process(second, 0.6, picture="b.png")
    pipeline = Pipeline(classifier)
    for _ in range(5):
        pipeline.process(first, 0.6, picture="a.png")
    after_switch = pipeline.process(second, 0.6, picture="b.png")
    np.testing.assert_allclose(after_switch.probabilities, alone.probabilities, rtol=1e-6)
    carried = Pipeline(classifier)
    for _ in range(5):
        carried.process(first, 0.6)
    assert not np.allclose(carried.process(second, 0.6).probabilities, alone.probabilities)


def test_a_snapshot_error_stays_until_the_next_key(qtbot, open_window, clip, tmp_path):
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the snapshot folder should be")
    window = open_window(SourceSpec("video", clip))
    window.options = WindowOptions(window.options.source, window.options.model_path,
                                   snapshot_dir=blocked)
    wait_for_results(qtbot, window, 3)
    window.save_snapshot()
    qtbot.waitUntil(lambda: "cannot save a snapshot" in window.statusBar().currentMessage(),
                    timeout=WAIT_MS)
    wait_for_results(qtbot, window, 10)                      # frames keep arriving ...
    assert "cannot save a snapshot" in window.statusBar().currentMessage()   # ... it stays
    qtbot.keyClick(window, Qt.Key.Key_M)
    wait_for_results(qtbot, window, 3)
    assert "cannot save a snapshot" not in window.statusBar().currentMessage()


def test_a_missing_video_replaces_starting_with_no_picture(qtbot, open_window, tmp_path):
    window = open_window(SourceSpec("video", tmp_path / "absent.mp4"))
    qtbot.waitUntil(lambda: window.prediction.text() == "no picture", timeout=WAIT_MS)


def test_a_still_image_is_classified_once_not_ten_times_a_second(qtbot, open_window, tmp_path):
    picture = tmp_path / "still.png"
    cv2.imwrite(str(picture), DemoSource(np.zeros((1, 28, 28), np.uint8)).frame_at(0.0))
    window = open_window(SourceSpec("image", picture))
    wait_for_results(qtbot, window, 1)
    qtbot.wait(1500)
    assert window.results_shown == 1


def test_all_ten_classes_and_recording_a_csv(qtbot, open_window, clip, tmp_path):
    window = open_window(SourceSpec("video", clip))
    wait_for_results(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_A)
    wait_for_results(qtbot, window, 2)
    assert [label.text() for label in window.bars.names] == list(CLASS_NAMES)
    assert all(bar.isVisibleTo(window) for bar in window.bars.bars)
    qtbot.keyClick(window, Qt.Key.Key_R)
    wait_for_results(qtbot, window, 5)
    qtbot.keyClick(window, Qt.Key.Key_R)
    [recorded] = (tmp_path / "snapshots").glob("predictions-*.csv")
    rows = list(csv.DictReader(recorded.open()))
    assert len(rows) >= 5 and tuple(rows[0]) == demo_program_columns()
    assert all(row["top1_class"] in CLASS_NAMES for row in rows)


def demo_program_columns():
    from fmnist_app.live.headless import CSV_COLUMNS
    return CSV_COLUMNS


def test_opening_a_folder_steps_through_it_with_the_arrow_keys(qtbot, open_window, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    demo = DemoSource(np.zeros((1, 28, 28), np.uint8))
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(folder / name), demo.frame_at(0.0))
    window = open_window(SourceSpec("demo"))
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.position.startswith("1/3"), timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.position == "2/3: b.png", timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: window.position == "3/3: c.png", timeout=WAIT_MS)
    assert window.statusBar().currentMessage() == "showing image 3/3: c.png"


def test_the_first_run_tip_shows_until_a_garment_is_recognised(qtbot, open_window, clip):
    window = open_window(SourceSpec("video", clip))
    assert "plain background" in window.frame_view.notice


def test_the_model_picker_switches_models_live(qtbot, open_window, clip, tiny_model, tmp_path):
    from fmnist_app.export import export_frozen_graph
    from fmnist_app.gui.main_window import available_models
    from fmnist_app.models import create_model
    other = export_frozen_graph(create_model("fastnet_small"),
                                tmp_path / "other" / "frozen_inference_graph.pb")
    window = open_window(SourceSpec("video", clip))
    assert available_models(tiny_model)[0] == tiny_model
    wait_for_results(qtbot, window, 2)
    window.model_requested.emit(other)
    qtbot.waitUntil(lambda: window.model_line.text().startswith(f"model: {other} ("),
                    timeout=WAIT_MS)
    # A fresh export has no calibration.json: the line says so and how to make one.
    assert "never says" in window.model_line.text() and "fmnist_app.calibrate" in \
        window.model_line.text()
    assert "session" not in window.model_line.text()       # it runs on LiteRT, as it should
    wait_for_results(qtbot, window, 2)


def test_at_its_minimum_size_nothing_in_the_panel_overlaps(qtbot, open_window, clip):
    window = open_window(SourceSpec("video", clip))
    window.resize(window.minimumSizeHint())
    wait_for_results(qtbot, window, 2)
    preview = window.preview.geometry()
    headline = window.prediction.geometry()
    assert headline.top() >= preview.bottom()          # the 28x28 view never covers it
    assert headline.height() >= window.prediction.sizeHint().height()


def test_wording_fits_the_situation(qtbot, open_window, tmp_path):
    from fmnist_app.sources import FrameUnavailable, ImageSource
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(FrameUnavailable, match="open another image"):
        ImageSource(broken).read()
    window = open_window(SourceSpec("demo"))
    assert "(not found)" not in window.source_picker.itemText(0)    # before any camera check
    qtbot.waitUntil(lambda: window.cameras_checked, timeout=WAIT_MS)
    window.cycle_camera()
    assert window.statusBar().currentMessage() == "no camera found to switch to"


def test_dropping_a_folder_opens_it(qtbot, open_window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent
    folder = tmp_path / "pictures"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), DemoSource(np.zeros((1, 28, 28), np.uint8)).frame_at(0))
    window = open_window(SourceSpec("demo"))
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(folder))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data,
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
    assert window.current_spec == SourceSpec("image", folder)
    qtbot.waitUntil(lambda: window.source_name == "image a.png", timeout=WAIT_MS)


def test_snapshots_folder_is_ignored_by_git():
    from conftest import ROOT
    result = subprocess.run(["git", "check-ignore", "snapshots/x.png", "my_garments/x.png"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == ["snapshots/x.png", "my_garments/x.png"]


def test_the_open_menu_offers_files_and_folders(qtbot, open_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    folder = tmp_path / "pictures"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), DemoSource(np.zeros((1, 28, 28), np.uint8)).frame_at(0))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(folder))
    window = open_window(SourceSpec("demo"))
    names = [action.text() for action in window.open_button.menu().actions()]
    assert names == ["Image or video…", "Folder of images…"]
    window.open_button.menu().actions()[1].trigger()
    assert window.current_spec == SourceSpec("image", folder)
