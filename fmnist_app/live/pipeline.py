"""One frame's work: mirror -> guide-box crop -> 28x28 -> model -> FrameResult. No Qt here.

Shared by the window's worker thread, the --no-gui run and the benchmark, so all three
measure and classify exactly the same thing.
"""

import time
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from fmnist_app.calibration import CalibrationError, load_for, two_view_outputs
from fmnist_app.dataset import CLASS_NAMES, IMAGE_SIZE
from fmnist_app.preprocess import (
    NOTHING,
    REACHES_IN,
    Box,
    guide_box,
    prepare_frame,
)

SMOOTHING_FRAMES = 8

# What a frame shows, in the window's words.
GARMENT, NO_GARMENT, EMPTY, NOT_INSIDE, NO_MODEL, BAD_FRAME = (
    "garment", "no garment", "box empty", "not inside the box", "no model", "bad frame")


@dataclass(frozen=True)
class Classifier:
    """A loaded frozen graph, its calibration and the class names its outputs stand for."""
    model: object
    calibration: object
    class_names: tuple = CLASS_NAMES

    def assess(self, image28):
        """(calibrated probabilities, novelty score or None) of one 28x28 image, from it and
        its mirror in one batch: the dataset's shoes all face left, and a user holds theirs
        either way."""
        logits, features = two_view_outputs(self.model, image28[None])
        scores = self.calibration.novelty(features)
        return (self.calibration.probabilities(logits)[0],
                None if scores is None else float(scores[0]))

    def is_garment(self, probabilities, novelty=None):
        scores = None if novelty is None else [novelty]
        return not self.calibration.refused(probabilities, scores)[0]


def load_classifier(model_path, live=True):
    """Load the frozen graph and its calibration.json (imports TensorFlow, so call it off the
    GUI thread). live=False keeps the two views on the TensorFlow session instead of LiteRT
    (FrozenModel), for comparison. Raises fmnist_app.inference.ModelError with a one-line
    message."""
    from fmnist_app.tf_quiet import tf
    try:
        # The two views of a frame run as one batch of 2, which two threads finish sooner
        # than one; perf/demo_pipeline.py measures the per-frame time and checks that the
        # GUI thread still never blocks long.
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass    # TensorFlow already ran in this process (tests): its thread pools stay
    from fmnist_app.inference import FrozenModel, ModelError
    model = FrozenModel(model_path, live=live)
    try:
        return Classifier(model, load_for(model_path))
    except CalibrationError as err:
        raise ModelError(str(err)) from None


def rejection_note(calibration):
    """What to tell a user about how a model says "no garment": nothing when it is
    calibrated with the novelty score; otherwise what is missing and the command that fits it."""
    fit = "run python -m fmnist_app.calibrate on its folder"
    if calibration.reject_below is None and calibration.novelty_above is None:
        return f"not calibrated, so it never says \"no garment\": {fit}"
    if calibration.novelty_above is None:
        return f"\"no garment\" by confidence alone (no novelty score): {fit}"
    return ""


def engine_note(model):
    """Nothing when the two views run on LiteRT; otherwise that the slower TensorFlow session
    runs them, and why (FrozenModel.live_problem)."""
    if model.on_litert:
        return ""
    return "; ".join(part for part in ("runs on the slower TensorFlow session", model.live_problem)
                     if part)


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
    verdict: str                  # GARMENT, NO_GARMENT, EMPTY, NO_MODEL or BAD_FRAME
    top3: list                    # [(class, probability)] averaged over recent frames
    probabilities: np.ndarray | None  # all ten, averaged the same way; None if unclassified
    novelty: float | None         # novelty score averaged the same way (fmnist_app.novelty)
    mirrored: bool
    pipeline_ms: float            # crop + preprocess + inference
    inference_ms: float
    fps: float
    problem: str = ""             # why a bad frame was skipped

    @property
    def empty(self):
        return self.verdict == EMPTY

    @property
    def smoothed(self):
        """(class, probability) on top of the averaged probabilities, or None."""
        return self.top3[0] if self.top3 else None


class Pipeline:
    """Runs frames through preprocessing and the classifier, smoothing over recent frames.

    The window, --no-gui and the scene benchmark all call process(), so they give the same
    answers for the same frames. A frame that cannot be processed becomes a BAD_FRAME
    result with the reason; it never raises.
    """

    def __init__(self, classifier=None, smoothing_frames=SMOOTHING_FRAMES):
        self.classifier = classifier
        self._recent = deque(maxlen=smoothing_frames)
        self._frame_count = 0
        self._last_time = None
        self._fps = 0.0
        self._picture = None

    def reset(self):
        """Forget the smoothing history (the picture changed: new image, new source)."""
        self._recent.clear()
        self._last_time = None
        self._fps = 0.0

    def _tick_fps(self, now):
        if self._last_time is not None and now > self._last_time:
            rate = 1.0 / (now - self._last_time)
            self._fps = rate if self._fps == 0 else 0.9 * self._fps + 0.1 * rate
        self._last_time = now

    def _classify(self, model_input):
        """(verdict, top3, averaged probabilities, averaged novelty, inference ms) for a
        non-empty input."""
        if self.classifier is None:
            return NO_MODEL, [], None, None, 0.0
        started = time.perf_counter()
        self._recent.append(self.classifier.assess(model_input))
        inference_ms = 1000 * (time.perf_counter() - started)
        averaged = np.mean([probabilities for probabilities, _ in self._recent], axis=0)
        scores = [score for _, score in self._recent if score is not None]
        novelty = float(np.mean(scores)) if scores else None
        verdict = GARMENT if self.classifier.is_garment(averaged, novelty) else NO_GARMENT
        return (verdict, top_classes(averaged, self.classifier.class_names), averaged, novelty,
                inference_ms)

    def process(self, frame, box_fraction, mirror=False, picture=None):
        """One frame -> FrameResult. `picture` names what the frame shows when the source
        knows (an image file): when it changes, the average starts again, so one picture's
        answer never leaks into the next one's."""
        started = time.perf_counter()
        if picture != self._picture:
            self._recent.clear()
            self._picture = picture
        problem = ""
        try:
            if mirror:
                # Classify what the user sees: they turn a shoe to match the screen.
                frame = cv2.flip(frame, 1)
            box = guide_box(frame.shape[1], frame.shape[0], box_fraction)
            crop, model_input, outcome = prepare_frame(frame, box)
        except (ValueError, cv2.error, AttributeError, IndexError) as err:
            problem, outcome = f"frame skipped: {err}", None
            box, crop = Box(0, 0, 0), np.zeros((1, 1, 3), np.uint8)
            model_input = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        top3, averaged, novelty, inference_ms = [], None, None, 0.0
        if problem or outcome in (NOTHING, REACHES_IN):
            self._recent.clear()
            verdict = BAD_FRAME if problem else EMPTY if outcome == NOTHING else NOT_INSIDE
        else:
            verdict, top3, averaged, novelty, inference_ms = self._classify(model_input)
        now = time.perf_counter()
        self._tick_fps(now)
        self._frame_count += 1
        return FrameResult(self._frame_count - 1, frame, box, crop, model_input, verdict, top3,
                           averaged, novelty, mirror, 1000 * (now - started), inference_ms,
                           self._fps, problem)
