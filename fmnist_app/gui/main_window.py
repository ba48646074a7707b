"""The demo window: the picture with its guide box on the left, what the model sees and says
on the right, controls below. It only paints and forwards the user's choices to the worker.
"""

import csv
import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QMetaObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from fmnist_app.dataset import CLASS_NAMES, GRAPH_FILENAME, SHIPPED_MODEL_DIR
from fmnist_app.gui.widgets import FrameView, InputPreview, TopBars, big_font
from fmnist_app.gui.worker import PipelineWorker, Settings
from fmnist_app.live.collect import CollectError, counts, remove_example, save_example
from fmnist_app.live.headless import CSV_COLUMNS, csv_row
from fmnist_app.live.pipeline import (
    BAD_FRAME,
    GARMENT,
    NO_GARMENT,
    NO_MODEL,
    NOT_INSIDE,
    SMOOTHING_FRAMES,
)
from fmnist_app.live.window_options import mirror_for
from fmnist_app.sources import IMAGE_SUFFIXES, SourceSpec

KEYS_HELP = ("Space pause · S snapshot · M mirror · C next camera · A all classes · "
             "R record CSV · O open · ←/→ folder images · 0-9 save as that class · "
             "Backspace undo · Esc/Q quit")
FIRST_RUN_HINT = ("Tip: hold the garment flat in front of a plain background, fill most of the "
                  "blue box, and hold still for a moment.")
PANEL_WIDTH = 320
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
OPEN_FILTER = (f"Images and videos (*{' *'.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)});;"
               "All files (*)")
DEMO_SPEC = SourceSpec("demo")


def available_models(current):
    """The model given on the command line first, then every trained run's graph."""
    found = sorted(Path(SHIPPED_MODEL_DIR).parent.glob(f"*/{GRAPH_FILENAME}"))
    current = Path(current)
    return [current] + [p for p in found if p.resolve() != current.resolve()]


def model_label(path):
    return f"Model: {Path(path).parent.name}"


def prediction_text(result, threshold):
    """(large text, small text) for the prediction area."""
    if result.verdict == BAD_FRAME:
        return "bad frame", result.problem
    if result.empty:
        return "box empty", "hold a garment inside the blue box"
    if result.verdict == NOT_INSIDE:
        return "not inside", "hold the whole garment inside the blue box"
    if result.verdict == NO_MODEL:
        return "no model", "see the model line below"
    name, probability = result.smoothed
    if result.verdict == NO_GARMENT:
        return "no garment", (f"not like any of the ten classes (closest: {name} "
                              f"{probability:.0%})")
    if probability < threshold:
        return "unsure", f"maybe {name} ({probability:.0%})"
    return name, f"{probability:.0%}, mean of the last {SMOOTHING_FRAMES} frames"


def slider(low, high, value, on_change):
    control = QSlider(Qt.Orientation.Horizontal)
    control.setRange(low, high)
    control.setValue(value)
    control.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    control.valueChanged.connect(on_change)
    return control


class MainWindow(QMainWindow):
    # The user's choices, queued to the worker's slots in its own thread.
    source_requested = Signal(object)
    mirror_changed = Signal(bool)
    box_changed = Signal(float)
    pause_changed = Signal(bool)
    step_requested = Signal(int)
    snapshot_requested = Signal(object, object, str)
    model_requested = Signal(object)

    def __init__(self, options):
        super().__init__()
        self.source_name = ""
        self.options = options
        self.threshold = options.threshold
        self.current = None              # the Delivery on screen
        self.results_shown = 0
        self.current_spec = options.source
        self.cameras = []
        self.last_snapshot = None
        self.sticky_message = ""         # an error that stays until the next user action
        self.hint_shown = True           # the first-run tip, until a garment is recognised
        self.recording = None            # (file, csv writer, start time) while R is on
        self.position = ""
        self.cameras_checked = False
        self.setWindowTitle("fmnist: live Fashion-MNIST classifier")
        self._build()
        self.frame_view.set_notice(FIRST_RUN_HINT)
        self._show_example_counts()
        # Keys go to the window itself: no child takes focus, so Space never presses a button.
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self._start_worker()

    # ---------------------------------------------------------------- layout
    def _build(self):
        self.frame_view = FrameView()
        self.preview = InputPreview()
        self.prediction = QLabel("starting ...")
        self.prediction.setFont(big_font())
        self.prediction_detail = QLabel("")
        self.bars = TopBars()
        self.stats = QLabel("")
        self.model_line = QLabel("")
        self.model_line.setWordWrap(True)

        self.source_picker = QComboBox()
        self.source_picker.activated.connect(
            lambda index: self.choose_source(self.source_picker.itemData(index)))
        self.demo_button = QPushButton("Demo source")
        self.demo_button.setToolTip("Test-set garments on a moving belt: no camera needed")
        self.demo_button.clicked.connect(lambda: self.choose_source(DEMO_SPEC))
        self.mirror_box = QCheckBox("Mirror (M)")
        self.mirror_box.setChecked(mirror_for(self.options.source, self.options.mirror_mode))
        self.mirror_box.toggled.connect(self.mirror_changed)
        self.box_label = QLabel()
        self.box_slider = slider(20, 100, round(100 * self.options.box_fraction),
                                 self._box_size_changed)
        self.threshold_label = QLabel()
        self.threshold_slider = slider(0, 100, round(100 * self.threshold),
                                       self._threshold_changed)
        self.pause_button = QPushButton("Pause (Space)")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.snapshot_button = QPushButton("Snapshot (S)")
        self.snapshot_button.clicked.connect(self.save_snapshot)
        self.record_button = QPushButton("Record CSV (R)")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Write every shown prediction to a CSV in the snapshot "
                                      "folder (the columns of --no-gui)")
        self.record_button.toggled.connect(self._record_toggled)
        self.open_button = QPushButton("Open… (O)")
        self.open_button.setToolTip("An image, a video or a folder of images; or drop one on "
                                    "the window")
        open_menu = QMenu(self.open_button)
        open_menu.addAction("Image or video…", self.open_file)
        open_menu.addAction("Folder of images…", self.open_folder)
        self.open_button.setMenu(open_menu)
        self.label_picker = QComboBox()
        for index, name in enumerate(CLASS_NAMES):
            self.label_picker.addItem(f"{index}  {name}", index)
        self.save_example_button = QPushButton("Save example")
        self.save_example_button.setToolTip(
            f"Save this frame as an example of the chosen class in {self.options.collect_dir}")
        self.save_example_button.clicked.connect(
            lambda: self.save_example(self.label_picker.currentData()))
        self.examples_line = QLabel("")
        self.examples_line.setWordWrap(True)
        self.examples_line.setStyleSheet("color: gray;")
        self.saved_examples = []         # for Backspace: the newest last
        self.model_picker = QComboBox()
        self.model_picker.setToolTip("Every output_dir/*/frozen_inference_graph.pb; switches live")
        for path in available_models(self.options.model_path):
            self.model_picker.addItem(model_label(path), path)
        self.model_picker.activated.connect(
            lambda index: self.model_requested.emit(self.model_picker.itemData(index)))
        self.all_classes_box = QCheckBox("All ten classes (A)")
        self.all_classes_box.toggled.connect(self._all_classes_toggled)
        for control in (self.source_picker, self.demo_button, self.mirror_box,
                        self.pause_button, self.snapshot_button, self.record_button,
                        self.open_button, self.all_classes_box, self.label_picker,
                        self.save_example_button, self.model_picker):
            control.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._box_size_changed(self.box_slider.value(), notify=False)
        self._threshold_changed(self.threshold_slider.value())

        side = QVBoxLayout()
        side.addWidget(QLabel("Model input, 28x28"))
        side.addWidget(self.preview)
        side.addSpacing(6)
        side.addWidget(self.prediction)
        side.addWidget(self.prediction_detail)
        side.addWidget(self.bars)
        side.addWidget(self.all_classes_box)
        side.addWidget(self.stats)
        side.addSpacing(8)
        side.addWidget(QLabel("Source"))
        sources = QHBoxLayout()
        sources.addWidget(self.source_picker, 1)
        sources.addWidget(self.open_button)
        sources.addWidget(self.demo_button)
        side.addLayout(sources)
        side.addWidget(self.mirror_box)
        for label, control in ((self.box_label, self.box_slider),
                               (self.threshold_label, self.threshold_slider)):
            side.addWidget(label)
            side.addWidget(control)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.snapshot_button)
        buttons.addWidget(self.record_button)
        side.addLayout(buttons)
        examples = QHBoxLayout()
        examples.addWidget(self.label_picker, 1)
        examples.addWidget(self.save_example_button)
        side.addLayout(examples)
        side.addWidget(self.examples_line)
        side.addWidget(self.model_picker)
        side.addWidget(self.model_line)
        side.addStretch(1)
        keys_help = QLabel(KEYS_HELP)
        keys_help.setWordWrap(True)
        side.addWidget(keys_help)
        panel = QWidget()
        panel.setLayout(side)
        # In a scroll area: on a small screen the panel scrolls instead of its widgets being
        # squeezed on top of each other (the 28x28 view used to cover the headline).
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(PANEL_WIDTH + scroll.verticalScrollBar().sizeHint().width())
        panel.setFixedWidth(PANEL_WIDTH)
        self.panel = panel

        central = QWidget()
        row = QHBoxLayout(central)
        row.addWidget(self.frame_view, 1)
        row.addWidget(scroll)
        self.setCentralWidget(central)
        self._rebuild_source_picker()

    # ---------------------------------------------------------------- worker
    def _start_worker(self):
        settings = Settings(self.mirror_box.isChecked(), self.box_slider.value() / 100)
        self.worker = PipelineWorker(self.options.source, self.options.model_path, settings)
        self.worker_thread = QThread(self)
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.start)
        self.source_requested.connect(self.worker.set_source)
        self.mirror_changed.connect(self.worker.set_mirror)
        self.box_changed.connect(self.worker.set_box_fraction)
        self.pause_changed.connect(self.worker.set_paused)
        self.step_requested.connect(self.worker.step)
        self.snapshot_requested.connect(self.worker.save_snapshot)
        self.model_requested.connect(self.worker.set_model)
        self.worker.result_ready.connect(self._show_delivery)
        self.worker.status.connect(self._show_status)
        self.worker.model_status.connect(self._show_model_status)
        self.worker.cameras_found.connect(self._cameras_found)
        self.worker.source_opened.connect(self._source_opened)
        self.worker.snapshot_saved.connect(self._snapshot_saved)
        self.worker.snapshot_failed.connect(self._snapshot_failed)
        self.worker_thread.start()

    def shutdown(self):
        """Stop = flag + wait: the worker leaves its loop and releases the camera."""
        if self.worker_thread.isRunning():
            # Waits for the frame in hand (or the model still loading) to finish first.
            QMetaObject.invokeMethod(self.worker, "stop",
                                     Qt.ConnectionType.BlockingQueuedConnection)
            self.worker_thread.quit()
            self.worker_thread.wait()

    def closeEvent(self, event):
        self.record_button.setChecked(False)
        self.shutdown()
        event.accept()

    # ---------------------------------------------------------------- worker -> screen
    # Slots for the worker's signals: Qt queues each call to this, the GUI, thread.
    @Slot(object)
    def _show_delivery(self, delivery):
        self.current = delivery
        self.results_shown += 1
        result = delivery.result
        self.frame_view.show_frame(delivery.frame_image, result.box)
        self.preview.show_input(delivery.input_image)
        self._show_bars()
        self._show_prediction()
        if delivery.position != self.position:
            self.position = delivery.position
            if self.position and not self.sticky_message:
                self.statusBar().showMessage(f"showing image {self.position}")
        if self.hint_shown and result.verdict == GARMENT:
            self.hint_shown = False
            self.frame_view.set_notice("")
        if self.recording:
            file, writer, started = self.recording
            writer.writerow(csv_row(result, time.monotonic() - started))
            file.flush()
        self.worker.delivery_taken()
        self.stats.setText(f"{result.fps:.1f} fps · model {result.inference_ms:.1f} ms · "
                           f"pipeline {result.pipeline_ms:.1f} ms")

    def _show_bars(self):
        result = self.current.result if self.current else None
        if result is None:
            return
        if self.all_classes_box.isChecked() and result.probabilities is not None:
            self.bars.show_top(list(zip(CLASS_NAMES, map(float, result.probabilities))))
        else:
            self.bars.show_top(result.top3)

    def _all_classes_toggled(self, on):
        self.bars.set_rows(len(CLASS_NAMES) if on else 3)
        self._show_bars()

    def _show_prediction(self):
        if self.current is None:
            return
        large, small = prediction_text(self.current.result, self.threshold)
        self.prediction.setText(large)
        self.prediction_detail.setText(small)

    @Slot(str, bool)
    def _show_status(self, message, problem):
        if not self.sticky_message:
            self.statusBar().showMessage(message)
        if problem and self.current is None:
            # Nothing has been shown yet: say why instead of "starting ...".
            self.prediction.setText("no picture")
            self.prediction_detail.setText("see the message on the left")
        notice = FIRST_RUN_HINT if self.hint_shown else ""
        if problem:
            notice = message
            if self.current_spec.kind == "camera":
                notice += "\nNo camera? Press 'Demo source' to try the app with test-set garments."
        self.frame_view.set_notice(notice)

    @Slot(str)
    def _snapshot_failed(self, message):
        """Stays in the status bar until the user does something, unlike frame news."""
        self.sticky_message = message
        self.statusBar().showMessage(message)
        self.statusBar().setStyleSheet("color: #d33;")

    def _user_acted(self):
        if self.sticky_message:
            self.sticky_message = ""
            self.statusBar().setStyleSheet("")
            name = self.source_name
            self.statusBar().showMessage(f"showing {name}" if name else "")

    @Slot(object)
    def _snapshot_saved(self, path):
        self.last_snapshot = path
        self.statusBar().showMessage(f"saved snapshot {path}")

    @Slot(str, bool)
    def _show_model_status(self, message, problem):
        self.model_line.setText(message)
        self.model_line.setStyleSheet("color: #d33;" if problem else "color: gray;")

    @Slot(list)
    def _cameras_found(self, cameras):
        self.cameras, self.cameras_checked = cameras, True
        self._rebuild_source_picker()

    @Slot(object, str)
    def _source_opened(self, spec, name):
        self.current_spec, self.source_name = spec, name
        self._rebuild_source_picker()

    def _rebuild_source_picker(self):
        specs = [SourceSpec("camera", index) for index in self.cameras]
        if self.options.source not in specs and self.options.source != DEMO_SPEC:
            specs.insert(0, self.options.source)
        specs.append(DEMO_SPEC)
        self.source_picker.blockSignals(True)
        self.source_picker.clear()
        for spec in specs:
            found = spec.kind != "camera" or spec.value in self.cameras \
                or not self.cameras_checked
            self.source_picker.addItem(spec.label + ("" if found else " (not found)"), spec)
        if self.current_spec in specs:
            self.source_picker.setCurrentIndex(specs.index(self.current_spec))
        self.source_picker.blockSignals(False)

    # ---------------------------------------------------------------- user -> worker
    def choose_source(self, spec):
        self._user_acted()
        self.current_spec = spec
        self.pause_button.setChecked(False)
        self.mirror_box.setChecked(mirror_for(spec, self.options.mirror_mode))
        self.source_requested.emit(spec)

    def cycle_camera(self):
        if not self.cameras:
            hint = "" if self.current_spec == DEMO_SPEC else "; try the demo source"
            self.statusBar().showMessage(f"no camera found to switch to{hint}")
            return
        current = self.current_spec.value if self.current_spec.kind == "camera" else None
        later = [index for index in self.cameras if current is None or index > current]
        self.choose_source(SourceSpec("camera", (later or self.cameras)[0]))

    def toggle_pause(self):
        self.pause_button.toggle()

    def _pause_toggled(self, paused):
        self.pause_button.setText("Resume (Space)" if paused else "Pause (Space)")
        self.pause_changed.emit(paused)
        if paused:
            self.statusBar().showMessage("paused: Space resumes, S saves this frame")
        elif self.source_name:
            self.statusBar().showMessage(f"showing {self.source_name}")

    def toggle_mirror(self):
        self.mirror_box.toggle()

    def _box_size_changed(self, percent, notify=True):
        self.box_label.setText(f"Guide box: {percent}% of the frame height")
        if notify:
            self.box_changed.emit(percent / 100)

    def _threshold_changed(self, percent):
        self.threshold = percent / 100
        self.threshold_label.setText(f"Unsure below: {percent}%")
        self._show_prediction()

    def save_snapshot(self):
        self._user_acted()
        if self.current is None:
            self.statusBar().showMessage("nothing to save yet: no frame has arrived")
            return
        self.snapshot_requested.emit(self.options.snapshot_dir, self.current.result,
                                     self.prediction.text())

    # ---------------------------------------------------------------- opening files
    def open_file(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open an image or a video", "", OPEN_FILTER)
        if path:
            self.open_path(Path(path))

    def open_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if path:
            self.open_path(Path(path))

    def open_path(self, path):
        """An image file or a folder of images -> image source; anything else -> video."""
        is_image = path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES
        self.choose_source(SourceSpec("image" if is_image else "video", path))

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        local = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if local:
            self.open_path(Path(local[0]))
            event.acceptProposedAction()

    # ---------------------------------------------------------------- your own examples
    def save_example(self, label):
        if self.current is None:
            self.statusBar().showMessage("nothing to save yet: no frame has arrived")
            return
        try:
            path = save_example(self.options.collect_dir, label, self.current.result,
                                self.source_name)
        except CollectError as err:
            self._snapshot_failed(str(err))
            return
        self.saved_examples.append(path)
        self.statusBar().showMessage(f"saved an example of {CLASS_NAMES[label]}: {path}")
        self._show_example_counts()

    def undo_example(self):
        if not self.saved_examples:
            self.statusBar().showMessage("no example saved in this session to undo")
            return
        path = self.saved_examples.pop()
        remove_example(path)
        self.statusBar().showMessage(f"removed {path}")
        self._show_example_counts()

    def _show_example_counts(self):
        numbers = counts(self.options.collect_dir)
        self.examples_line.setText("Examples: " + " · ".join(
            f"{i} {n}" for i, n in enumerate(numbers)) + f"  (in {self.options.collect_dir})")

    # ---------------------------------------------------------------- recording
    def _record_toggled(self, on):
        if on:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path(self.options.snapshot_dir) / f"predictions-{stamp}.csv"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                file = open(path, "w", newline="")  # noqa: SIM115 (open until R again)
            except OSError as err:
                self._snapshot_failed(f"cannot record to {path} ({err.strerror or err}); pick a"
                                      " writable folder with --snapshot-dir")
                self.record_button.setChecked(False)
                return
            writer = csv.writer(file)
            writer.writerow(CSV_COLUMNS)
            self.recording = (file, writer, time.monotonic())
            self.record_button.setText("Stop recording (R)")
            self.statusBar().showMessage(f"recording predictions to {path}")
        elif self.recording:
            file = self.recording[0]
            self.recording = None
            file.close()
            self.record_button.setText("Record CSV (R)")
            self.statusBar().showMessage(f"saved {file.name}")

    def keyPressEvent(self, event):
        self._user_acted()
        actions = {Qt.Key.Key_Space: self.toggle_pause, Qt.Key.Key_S: self.save_snapshot,
                   Qt.Key.Key_M: self.toggle_mirror, Qt.Key.Key_C: self.cycle_camera,
                   Qt.Key.Key_A: self.all_classes_box.toggle,
                   Qt.Key.Key_R: self.record_button.toggle, Qt.Key.Key_O: self.open_file,
                   Qt.Key.Key_Left: lambda: self.step_requested.emit(-1),
                   Qt.Key.Key_Right: lambda: self.step_requested.emit(1),
                   Qt.Key.Key_Escape: self.close, Qt.Key.Key_Q: self.close}
        digits = {getattr(Qt.Key, f"Key_{i}"): i for i in range(len(CLASS_NAMES))}
        if event.key() in digits:
            self.save_example(digits[event.key()])
            return
        if event.key() == Qt.Key.Key_Backspace:
            self.undo_example()
            return
        action = actions.get(event.key())
        if action is None:
            super().keyPressEvent(event)
        else:
            action()
