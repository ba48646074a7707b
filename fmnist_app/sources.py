"""Frame sources behind one small interface: read() -> BGR uint8 frame, close().

A camera, a video file, an image file or folder, and a built-in demo scene for machines with
no camera. `open_source(spec, live=True)` makes the version the window wants (cameras are
retried, files loop at their own pace); `live=False` makes the one a batch run wants (every
frame once, as fast as possible, errors are final).

read() raises:
  FrameUnavailable -- no frame this time, but the source goes on (camera retrying, an
                      unreadable image skipped): show the message and call read() again;
  SourceEnded      -- the video or image list is over;
  SourceError      -- the source cannot work at all (file missing, no images in a folder).
"""

import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from fmnist_app import scenes

# Probing camera indices that do not exist is normal here; OpenCV would warn for each one.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

CAMERA_RETRY_SECONDS = 1.0
MAX_CAMERAS = 5
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
LIVE_IMAGE_FPS = 10
LIVE_SECONDS_PER_IMAGE = 2.0
DEMO_FPS = 30


class SourceError(RuntimeError):
    """The source cannot deliver frames; the message says why and what to do."""


class SourceEnded(SourceError):
    """A finite source (video, image list) has delivered its last frame."""


class FrameUnavailable(SourceError):
    """No frame right now; the source keeps trying, so read() may be called again."""


class SourceSpec(NamedTuple):
    """What to open: kind is camera, video, image or demo; value the index or path."""
    kind: str
    value: object = None

    @property
    def label(self):
        if self.kind == "camera":
            return f"Camera {self.value}"
        if self.kind == "demo":
            return "Demo source"
        return f"{self.kind.capitalize()}: {Path(self.value).name}"


class Pacer:
    """Sleeps so frames come at most `fps` a second (a file would otherwise play at CPU speed)."""

    def __init__(self, fps):
        self.interval = 1.0 / fps
        self._due = None

    def wait(self):
        now = time.monotonic()
        if self._due is None or now > self._due + self.interval:
            self._due = now  # fell behind (paused, slow model): restart instead of bursting
        elif now < self._due:
            time.sleep(self._due - now)
        self._due += self.interval


class FrameSource:
    name = "source"
    # What the last frame shows, when the source knows it changed (an image file's path):
    # the pipeline restarts its smoothing when this changes. None for a continuous stream.
    picture = None

    def read(self):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CameraSource(FrameSource):
    """A camera by index. With retry, a missing or unplugged camera is reopened once a second."""

    def __init__(self, index, retry=True):
        self.index, self.retry = int(index), retry
        self.name = f"camera {self.index}"
        self._capture = None
        self._next_attempt = 0.0
        if not self._open() and not retry:
            raise SourceError(self._missing_message())

    def _missing_message(self):
        hint = "retrying every second; pick another camera or the demo source" if self.retry \
            else "check it is plugged in and not used by another program, or pick another --camera"
        return f"{self.name} not available (missing, busy or unplugged); {hint}"

    def _open(self):
        self._next_attempt = time.monotonic() + CAMERA_RETRY_SECONDS
        capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            capture.release()
            return False
        # Keep the driver from queueing stale frames when inference is slower than the camera.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture
        return True

    def read(self):
        if self._capture is None and (time.monotonic() < self._next_attempt
                                      or not self._open()):
            raise FrameUnavailable(self._missing_message())
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self.close()
            message = f"{self.name} stopped sending frames (unplugged or taken by another program?)"
            if not self.retry:
                raise SourceError(message + "; check the camera and run again")
            raise FrameUnavailable(message + "; retrying every second")
        return frame

    def close(self):
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def list_cameras(indices=range(MAX_CAMERAS)):
    """The camera indices that open and deliver a frame."""
    found = []
    for index in indices:
        capture = cv2.VideoCapture(index)
        if capture.isOpened() and capture.read()[0]:
            found.append(index)
        capture.release()
    return found


class VideoSource(FrameSource):
    """A video file, optionally looping and paced at its own frame rate."""

    def __init__(self, path, loop=False, realtime=False):
        self.path = Path(path)
        self.name = f"video {self.path.name}"
        self.loop = loop
        if not self.path.is_file():
            raise SourceError(f"video {self.path} not found; check the --video path")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"cannot open video {self.path}: not a video OpenCV can decode; "
                              "convert it, e.g. `ffmpeg -i IN -c:v libx264 out.mp4`")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._pacer = Pacer(fps if 1 <= fps <= 240 else 30) if realtime else None

    def read(self):
        if self._capture is None:
            raise SourceEnded(f"{self.name} is closed")
        if self._pacer:
            self._pacer.wait()
        ok, frame = self._capture.read()
        if not ok and self.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if not ok:
            raise SourceEnded(f"end of {self.name}")
        return frame

    def close(self):
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def image_paths(path):
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if found:
            return found
        raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}; "
                          "point --image at an image file or a folder holding some")
    raise SourceError(f"image file or folder {path} not found; check the --image path")


class ImageSource(FrameSource):
    """An image file or a folder of them. Live: each shown for a while, in a loop; else once."""

    def __init__(self, path, live=False):
        self.paths = image_paths(path)
        self.name = f"images {Path(path).name}" if len(self.paths) > 1 else \
            f"image {self.paths[0].name}"
        self.live = live
        self._pacer = Pacer(LIVE_IMAGE_FPS) if live else None
        self._started = time.monotonic()
        self._first = 0
        self._next_index = 0
        self._cached = (None, None)

    def _load(self, path):
        if self._cached[0] != path:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            self._cached = (path, frame)
        self.picture = path
        if self._cached[1] is None:
            fix = "skipping it" if len(self.paths) > 1 else "open another image"
            raise FrameUnavailable(f"cannot read image {path} (not an image or corrupt); {fix}")
        return self._cached[1]

    def step(self, delta):
        """Show the image `delta` places on (live folder mode: the arrow keys), and stay on
        it for a full LIVE_SECONDS_PER_IMAGE from now."""
        self._first = (self._index() + delta) % len(self.paths)
        self._started = time.monotonic()

    def _index(self):
        elapsed = time.monotonic() - self._started
        return (self._first + int(elapsed / LIVE_SECONDS_PER_IMAGE)) % len(self.paths)

    @property
    def position(self):
        """'3/12: name.png' for the image on show (folders), else its name."""
        if self.picture is None:
            return ""
        name = Path(self.picture).name
        if len(self.paths) == 1:
            return name
        return f"{self.paths.index(self.picture) + 1}/{len(self.paths)}: {name}"

    def read(self):
        if self.live:
            self._pacer.wait()
            return self._load(self.paths[self._index()])
        if self._next_index >= len(self.paths):
            raise SourceEnded(f"end of {self.name}")
        self._next_index += 1
        return self._load(self.paths[self._next_index - 1])


# --------------------------------------------------------------------------- the demo scene

def smoothstep(t):
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


class DemoSource(FrameSource):
    """Test-set garments, printed dark on light, passing the guide box like on a conveyor.

    Each garment rests in the box for a while, then the belt moves the next one in. The scene
    has uneven light and sensor noise, so it exercises the same preprocessing a camera does.
    Garments are drawn as the scene benchmark draws them (fmnist_app.scenes), a box-sized
    garment at a time, in the scenes' 640x480 frame.
    """

    width, height = scenes.WIDTH, scenes.HEIGHT
    seconds_per_garment, seconds_moving = 3.0, 0.8
    # White cloth printed in a tinted ink (per channel, B G R): its darkest parts 20-36% of it.
    inks = tuple(0.8 * np.float32(tint) for tint in
                 ((1.0, 1.0, 1.0), (0.85, 0.95, 1.0), (1.0, 0.9, 0.75), (0.8, 1.0, 0.9)))

    def __init__(self, images, live=False, seed=0):
        images = np.asarray(images)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or not len(images):
            raise SourceError(f"demo source needs 28x28 images, got shape {images.shape}")
        self.name = "demo source"
        self.order = np.random.default_rng(seed).permutation(len(images))
        self.images = images
        self.light = scenes.uneven_light(self.width, self.height)
        # Neighbours peek in at the frame's sides but stay clear of the default guide box.
        self.spacing = round(0.52 * self.width)
        self._pacer = Pacer(DEMO_FPS) if live else None
        self._frame_index = 0

    @classmethod
    def from_test_set(cls, live=False, seed=0):
        try:
            from fmnist_app.dataset import DatasetError, load_split
            images, _ = load_split("test")
        except (ImportError, DatasetError) as err:
            raise SourceError(f"demo source needs the Fashion-MNIST test set: {err}") from None
        return cls(images, live=live, seed=seed)

    def frame_at(self, seconds):
        cycle, phase = divmod(seconds / self.seconds_per_garment, 1.0)
        moving = (phase * self.seconds_per_garment - self.seconds_per_garment
                  + self.seconds_moving) / self.seconds_moving
        belt = (cycle + smoothstep(moving)) * self.spacing
        bob = 6 * np.sin(seconds * 1.3)                # the garment sways a little
        canvas = scenes.plain(scenes.grey(1.0))
        for position in range(int(cycle) - 1, int(cycle) + 3):
            # place_garment skips the garments wholly outside the frame.
            image = self.images[self.order[position % len(self.order)]]
            ink = self.inks[position % len(self.inks)]
            scenes.place_garment(canvas, image, scenes.grey(1.0), ink,
                                 offset=(position * self.spacing - belt, bob))
        return scenes.expose(canvas, self.light, noise_sigma=4.0)

    def read(self):
        if self._pacer:
            self._pacer.wait()
        seconds = self._frame_index / DEMO_FPS
        self._frame_index += 1
        return self.frame_at(seconds)


def open_source(spec, live=True):
    """Open a SourceSpec; live: retry cameras, loop files at their own pace (for the window)."""
    if spec.kind == "camera":
        return CameraSource(spec.value, retry=live)
    if spec.kind == "video":
        return VideoSource(spec.value, loop=live, realtime=live)
    if spec.kind == "image":
        return ImageSource(spec.value, live=live)
    if spec.kind == "demo":
        return DemoSource.from_test_set(live=live)
    raise SourceError(f"unknown source kind {spec.kind!r}; use camera, video, image or demo")
