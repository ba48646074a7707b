"""The worker thread: owns the source and the model, runs capture -> crop -> preprocess -> infer.

Shaped like the Qt for Python examples: the worker lives in its own QThread and is driven by
a QTimer in that thread's event loop, one frame per tick. The window talks to it only through
signals connected to the slots below (Qt queues them across threads, so a setting arrives
between two frames), and it talks back only through signals whose payloads carry everything
(a Delivery, a message). Latest frame wins: a Delivery is sent only when the window has taken
the previous one (`delivery_taken`); until then new frames replace each other, so a slow
GUI never builds a queue.
"""

import gc
import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QImage

from fmnist_app.inference import ModelError
from fmnist_app.live.pipeline import Pipeline, engine_note, load_classifier, rejection_note
from fmnist_app.live.snapshot import SnapshotError, save_snapshot
from fmnist_app.sources import FrameUnavailable, SourceError, list_cameras, open_source

IDLE_MS = 30                  # tick interval while paused or without a source
RETRY_MS = 200                # between attempts on a camera that is not there


@dataclass(frozen=True)
class Settings:
    mirror: bool
    box_fraction: float
    paused: bool = False


@dataclass(frozen=True)
class Delivery:
    """A result plus its pictures, already converted (and owned) for the GUI thread."""
    result: object
    frame_image: QImage
    input_image: QImage
    position: str = ""                  # which image of a folder is on show


def to_qimage(array):
    """A QImage holding its own copy of a uint8 BGR or gray array.

    Colour goes in as 32-bit BGRA, the layout Qt paints fastest (BGR888 scaled 3x slower).
    The QImage constructor only borrows the numpy buffer; without copy() the GUI thread
    could paint memory the worker has already reused.
    """
    if array.ndim == 2:
        array, image_format = np.ascontiguousarray(array), QImage.Format.Format_Grayscale8
    else:
        array, image_format = cv2.cvtColor(array, cv2.COLOR_BGR2BGRA), QImage.Format.Format_RGB32
    height, width = array.shape[:2]
    return QImage(array.data, width, height, array.strides[0], image_format).copy()


class PipelineWorker(QObject):
    result_ready = Signal(object)       # a Delivery
    status = Signal(str, bool)          # message, is it a problem
    model_status = Signal(str, bool)
    cameras_found = Signal(list)        # camera indices that open
    source_opened = Signal(object, str)  # the SourceSpec now showing, its name
    snapshot_saved = Signal(object)     # the JSON path of a snapshot just written
    snapshot_failed = Signal(str)       # why a snapshot could not be written
    finished = Signal()

    def __init__(self, spec, model_path, settings):
        super().__init__()
        self.model_path = model_path
        self.settings = settings
        self._first_spec = spec
        self._pipeline = None
        self._source = None
        self._timer = None
        self._last_status = None
        self._last_frame, self._processed_with = None, None
        # The one thing both threads touch: set by the window when it has painted a
        # Delivery, cleared by the worker when it sends the next.
        self._window_ready = threading.Event()
        self._window_ready.set()

    def delivery_taken(self):
        """Called by the window (any thread) once it has shown a Delivery."""
        self._window_ready.set()

    # ---------------------------------------------------------------- slots
    @Slot()
    def start(self):
        """Load the model, look for cameras, open the first source, start ticking."""
        # Importing TensorFlow makes ~300k long-lived objects; each full garbage collection
        # walking them holds the GIL for up to ~200 ms, freezing the GUI thread. So no
        # collections while loading, and afterwards those objects are exempt from them.
        gc.disable()
        try:
            self._pipeline = Pipeline(self._load_classifier())
        finally:
            gc.enable()
            gc.freeze()
        self.cameras_found.emit(list_cameras())
        self._open(self._first_spec)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(0)

    @Slot()
    def stop(self):
        """Stop ticking and release the camera; the window then ends the thread."""
        if self._timer is not None:
            self._timer.stop()
        self._close_source()
        self.finished.emit()

    @Slot(object)
    def set_model(self, path):
        """Switch models live (the model picker); the picture keeps running meanwhile."""
        self.model_path = path
        gc.disable()
        try:
            classifier = self._load_classifier()
        finally:
            gc.enable()
        if classifier is not None:
            self._pipeline = Pipeline(classifier)

    @Slot(object)
    def set_source(self, spec):
        self._open(spec)
        if self._pipeline is not None:
            self._pipeline.reset()
        self._last_frame = None

    @Slot(bool)
    def set_mirror(self, on):
        self.settings = replace(self.settings, mirror=on)

    @Slot(float)
    def set_box_fraction(self, fraction):
        self.settings = replace(self.settings, box_fraction=fraction)

    @Slot(bool)
    def set_paused(self, paused):
        if self.settings.paused and not paused and self._pipeline is not None:
            self._pipeline.reset()           # the scene may have changed during the pause
        self.settings = replace(self.settings, paused=paused)

    @Slot(int)
    def step(self, delta):
        """Arrow keys in folder mode: move `delta` images on."""
        if hasattr(self._source, "step"):
            self._source.step(delta)

    @Slot(object, object, str)
    def save_snapshot(self, folder, result, prediction):
        """Here, between frames: PNG encoding on the GUI thread took up to 30 ms."""
        name = self._source.name if self._source is not None else ""
        try:
            path = save_snapshot(folder, result, prediction, name, self.model_path)
        except SnapshotError as err:
            self.snapshot_failed.emit(str(err))
            return
        self.snapshot_saved.emit(path)

    # ---------------------------------------------------------------- one frame per tick
    def _tick(self):
        settings = self.settings
        view = (settings.mirror, settings.box_fraction)
        # Paused: re-run the held frame only when the view changed (mirror, box size).
        if settings.paused and self._last_frame is not None and view != self._processed_with:
            frame = self._last_frame
        elif settings.paused or self._source is None:
            self._timer.setInterval(IDLE_MS)
            return
        else:
            frame = self._read()
            if frame is None:
                return
            if frame is self._last_frame and view == self._processed_with:
                return            # a still image again: its answer is already on screen
        self._timer.setInterval(0)
        self._last_frame, self._processed_with = frame, view
        result = self._pipeline.process(frame, settings.box_fraction, settings.mirror,
                                        getattr(self._source, "picture", None))
        if self._window_ready.is_set():
            self._window_ready.clear()
            self.result_ready.emit(Delivery(
                result, to_qimage(result.frame), to_qimage(result.model_input),
                getattr(self._source, "position", "")))

    def _load_classifier(self):
        self.model_status.emit(f"loading {self.model_path} ...", False)
        try:
            classifier = load_classifier(self.model_path)
        except ModelError as err:
            self.model_status.emit(f"no model, showing the picture only: {err}", True)
            return None
        notes = [note for note in (rejection_note(classifier.calibration),
                                   engine_note(classifier.model)) if note]
        self.model_status.emit(f"model: {self.model_path}"
                               + (f" ({'; '.join(notes)})" if notes else ""), False)
        return classifier

    def _open(self, spec):
        self._close_source()
        try:
            self._source = open_source(spec, live=True)
        except SourceError as err:
            self._say(str(err), problem=True)
            return
        self.source_opened.emit(spec, self._source.name)
        self._say(f"showing {self._source.name}", problem=False)

    def _read(self):
        """The next frame, or None after reporting why there is none."""
        try:
            frame = self._source.read()
        except FrameUnavailable as err:
            self._say(str(err), problem=True)
            self._timer.setInterval(RETRY_MS)
            return None
        except SourceError as err:
            self._say(str(err), problem=True)
            self._close_source()
            return None
        if self._last_status and self._last_status[1]:      # frames flow again after a problem
            self._say(f"showing {self._source.name}", problem=False)
        return frame

    def _say(self, message, problem):
        if (message, problem) != self._last_status:
            self._last_status = (message, problem)
            self.status.emit(message, problem)

    def _close_source(self):
        if self._source is not None:
            self._source.close()
            self._source = None
