"""One frame's work: mirror -> guide-box crop -> 28x28 -> model -> FrameResult. No Qt here.

Shared by the window's worker thread, the --no-gui run and the benchmark, so all three
measure and classify exactly the same thing.
"""

import time
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from fmnist_app.preprocess import Box, guide_box, prepare_frame

SMOOTHING_FRAMES = 8


@dataclass(frozen=True)
class Classifier:
    """A loaded frozen graph and the class names its outputs stand for."""
    model: object
    class_names: tuple

    def probabilities(self, image28):
        return self.model.logits_and_probabilities(image28[None])[1][0]


def load_classifier(model_path):
    """Load the frozen graph (imports TensorFlow, so call it off the GUI thread).

    Raises fmnist_app.inference.ModelError with a one-line message when it cannot.
    """
    from fmnist_app.tf_quiet import tf
    try:
        # One image at a time runs faster on one thread (2.8 vs 3.5 ms here), and the other
        # core stays free for the GUI thread.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass    # TensorFlow already ran in this process (tests): its thread pools stay
    from fmnist_app.dataset import CLASS_NAMES
    from fmnist_app.inference import FrozenModel
    return Classifier(FrozenModel(model_path), CLASS_NAMES)


def top_classes(probabilities, class_names, count=3):
    """[(class name, probability)] for the `count` most likely classes, best first."""
    best = np.argsort(probabilities)[::-1][:count]
    return [(class_names[i], float(probabilities[i])) for i in best]


@dataclass
class FrameResult:
    index: int
    frame: np.ndarray             # BGR, as shown (mirrored when mirror is on)
    box: Box
    crop: np.ndarray
    model_input: np.ndarray       # the 28x28 uint8 image the model received
    empty: bool                   # nothing stood out from the background in the box
    top3: list                    # this frame's [(class, probability)]; [] if not classified
    smoothed: tuple | None        # (class, probability) averaged over recent frames
    mirrored: bool
    pipeline_ms: float            # crop + preprocess + inference
    inference_ms: float
    fps: float


class Pipeline:
    """Runs frames through preprocessing and the classifier, smoothing over recent frames."""

    def __init__(self, classifier=None, smoothing_frames=SMOOTHING_FRAMES):
        self.classifier = classifier
        self._recent = deque(maxlen=smoothing_frames)
        self._frame_count = 0
        self._last_time = None
        self._fps = 0.0

    def reset(self):
        """Forget the smoothing history (a new source shows something else)."""
        self._recent.clear()
        self._last_time = None
        self._fps = 0.0

    def _tick_fps(self, now):
        if self._last_time is not None and now > self._last_time:
            rate = 1.0 / (now - self._last_time)
            self._fps = rate if self._fps == 0 else 0.9 * self._fps + 0.1 * rate
        self._last_time = now

    def process(self, frame, box_fraction, mirror=False):
        started = time.perf_counter()
        if mirror:
            # Classify what the user sees: they turn a shoe to match the screen, not the lens.
            frame = cv2.flip(frame, 1)
        box = guide_box(frame.shape[1], frame.shape[0], box_fraction)
        crop, model_input = prepare_frame(frame, box)
        empty = not model_input.any()
        top3, smoothed, inference_ms = [], None, 0.0
        if empty:
            self._recent.clear()
        elif self.classifier is not None:
            inference_started = time.perf_counter()
            probabilities = self.classifier.probabilities(model_input)
            inference_ms = 1000 * (time.perf_counter() - inference_started)
            self._recent.append(probabilities)
            names = self.classifier.class_names
            top3 = top_classes(probabilities, names)
            smoothed = top_classes(np.mean(self._recent, axis=0), names, 1)[0]
        now = time.perf_counter()
        self._tick_fps(now)
        self._frame_count += 1
        return FrameResult(self._frame_count - 1, frame, box, crop, model_input, empty, top3,
                           smoothed, mirror, 1000 * (now - started), inference_ms, self._fps)
