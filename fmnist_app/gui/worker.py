"""The worker thread: owns the source and the model, runs capture -> crop -> preprocess -> infer.

The GUI thread talks to it only through the small thread-safe methods at the top (each takes
a lock, sets a value, returns), and it talks back only through signals. Results go through a
one-slot mailbox: a new result replaces an unread one, and `result_ready` is emitted only
when the slot was empty, so a slow GUI never builds a queue (latest frame wins).
"""

import gc
import threading
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from fmnist_app.inference import ModelError
from fmnist_app.live.pipeline import Pipeline, load_classifier
from fmnist_app.live.snapshot import SnapshotError, save_snapshot
from fmnist_app.sources import FrameUnavailable, SourceError, list_cameras, open_source

IDLE_SECONDS = 0.03           # nap while paused or without a source
RETRY_NAP_SECONDS = 0.2       # between attempts on a camera that is not there


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
    result_ready = Signal()             # take the newest result with take_result()
    status = Signal(str, bool)          # message, is it a problem
    model_status = Signal(str, bool)
    cameras_found = Signal(list)        # camera indices that open
    source_opened = Signal(object)      # the SourceSpec now showing
    snapshot_saved = Signal(object)     # the JSON path of a snapshot just written
    snapshot_failed = Signal(str)       # why a snapshot could not be written
    finished = Signal()

    def __init__(self, spec, model_path, settings):
        super().__init__()
        self.model_path = model_path
        self._lock = threading.Lock()
        self._requested_spec = spec
        self._settings = settings
        self._stop_requested = False
        self._mailbox = None
        self._snapshot_request = None
        self._step_request = 0
        self._source = None
        self._source_name = ""
        self._last_status = None

    # ---------------------------------------------------------------- called from the GUI
    def request_source(self, spec):
        with self._lock:
            self._requested_spec = spec

    def request_step(self, delta):
        """Arrow keys in folder mode: move `delta` images on."""
        with self._lock:
            self._step_request += delta

    def update_settings(self, **changes):
        with self._lock:
            self._settings = replace(self._settings, **changes)

    def settings(self):
        with self._lock:
            return self._settings

    def request_snapshot(self, folder, result, prediction):
        """Save `result` (the one on screen) here, between frames: PNG encoding on the GUI
        thread took up to 30 ms, enough to stutter a busy machine."""
        with self._lock:
            self._snapshot_request = (folder, result, prediction)

    def stop(self):
        with self._lock:
            self._stop_requested = True

    def take_result(self):
        with self._lock:
            delivery, self._mailbox = self._mailbox, None
        return delivery

    @property
    def source_name(self):
        with self._lock:
            return self._source_name

    # ---------------------------------------------------------------- the worker thread
    @Slot()
    def run(self):
        try:
            # Importing TensorFlow makes ~300k long-lived objects; each full garbage collection
            # walking them holds the GIL for up to ~200 ms, freezing the GUI thread. So no
            # collections while loading, and afterwards those objects are exempt from them.
            gc.disable()
            try:
                pipeline = Pipeline(self._load_classifier())
            finally:
                gc.enable()
                gc.freeze()
            self.cameras_found.emit(list_cameras())
            self._loop(pipeline)
        finally:
            self._close_source()
            self.finished.emit()

    def _loop(self, pipeline):
        last_frame, processed_with, was_paused = None, None, False
        while True:
            with self._lock:
                if self._stop_requested:
                    return
                spec, self._requested_spec = self._requested_spec, None
                snapshot, self._snapshot_request = self._snapshot_request, None
                step, self._step_request = self._step_request, 0
                settings = self._settings
            if step and hasattr(self._source, "step"):
                self._source.step(step)
            if snapshot is not None:
                self._save_snapshot(*snapshot)
            if spec is not None:
                self._open(spec)
                pipeline.reset()
                last_frame = None
            if was_paused and not settings.paused:
                pipeline.reset()             # the scene may have changed during the pause
            was_paused = settings.paused
            view = (settings.mirror, settings.box_fraction)
            # Paused: re-run the held frame only when the view changed (mirror, box size).
            if settings.paused and last_frame is not None and view != processed_with:
                frame = last_frame
            elif settings.paused or self._source is None:
                time.sleep(IDLE_SECONDS)
                continue
            else:
                frame = self._read()
                if frame is None:
                    continue
                if frame is last_frame and view == processed_with:
                    continue        # a still image again: its answer is already on screen
            last_frame, processed_with = frame, view
            result = pipeline.process(frame, settings.box_fraction, settings.mirror,
                                      getattr(self._source, "picture", None))
            self._publish(Delivery(result, to_qimage(result.frame),
                                   to_qimage(result.model_input),
                                   getattr(self._source, "position", "")))

    def _load_classifier(self):
        self.model_status.emit(f"loading {self.model_path} ...", False)
        try:
            classifier = load_classifier(self.model_path)
        except ModelError as err:
            self.model_status.emit(f"no model, showing the picture only: {err}", True)
            return None
        self.model_status.emit(f"model: {self.model_path}", False)
        return classifier

    def _open(self, spec):
        self._close_source()
        try:
            self._source = open_source(spec, live=True)
        except SourceError as err:
            self._say(str(err), problem=True)
            return
        with self._lock:
            self._source_name = self._source.name
        self.source_opened.emit(spec)
        self._say(f"showing {self._source.name}", problem=False)

    def _read(self):
        """The next frame, or None after reporting why there is none."""
        try:
            frame = self._source.read()
        except FrameUnavailable as err:
            self._say(str(err), problem=True)
            time.sleep(RETRY_NAP_SECONDS)
            return None
        except SourceError as err:
            self._say(str(err), problem=True)
            self._close_source()
            return None
        if self._last_status and self._last_status[1]:      # frames flow again after a problem
            self._say(f"showing {self._source.name}", problem=False)
        return frame

    def _save_snapshot(self, folder, result, prediction):
        try:
            path = save_snapshot(folder, result, prediction, self.source_name, self.model_path)
        except SnapshotError as err:
            self.snapshot_failed.emit(str(err))
            return
        self.snapshot_saved.emit(path)

    def _publish(self, delivery):
        with self._lock:
            slot_was_empty = self._mailbox is None
            self._mailbox = delivery
        if slot_was_empty:
            self.result_ready.emit()

    def _say(self, message, problem):
        if (message, problem) != self._last_status:
            self._last_status = (message, problem)
            self.status.emit(message, problem)

    def _close_source(self):
        if self._source is not None:
            self._source.close()
            self._source = None
            with self._lock:
                self._source_name = ""
