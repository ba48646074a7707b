"""Frame sources: files made here, a camera index that does not exist, and the demo scene."""

import time

import cv2
import numpy as np
import pytest

from fmnist_app.preprocess import guide_box, prepare_frame
from fmnist_app.sources import (
    CameraSource,
    DemoSource,
    FrameUnavailable,
    ImageSource,
    Pacer,
    SourceEnded,
    SourceError,
    SourceSpec,
    VideoSource,
    list_cameras,
    open_source,
)

MISSING_CAMERA = 97          # an index no test machine has


def shirt_like_images(count):
    """Little 28x28 garments (a body and two sleeves) so no dataset is needed here."""
    images = np.zeros((count, 28, 28), np.uint8)
    for i, image in enumerate(images):
        cv2.rectangle(image, (8, 4 + i % 3), (19, 27), 200, -1)
        cv2.rectangle(image, (2, 4), (25, 10), 255, -1)
    return images


def write_video(path, frames, fps=30):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def clip(tmp_path):
    demo = DemoSource(shirt_like_images(3))
    return write_video(tmp_path / "clip.avi", [demo.read() for _ in range(12)])


def test_video_source_reads_every_frame_then_ends(clip):
    with VideoSource(clip) as video:
        frames = [video.read() for _ in range(12)]
        with pytest.raises(SourceEnded, match="end of video clip.avi"):
            video.read()
    assert all(frame.shape == (480, 640, 3) and frame.dtype == np.uint8 for frame in frames)


def test_looping_video_starts_again(clip):
    with VideoSource(clip, loop=True) as video:
        first = video.read()
        for _ in range(11):
            video.read()
        again = video.read()
    assert np.abs(first.astype(int) - again).mean() < 2


def test_missing_or_broken_video_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not found; check the --video path"):
        VideoSource(tmp_path / "nothing.mp4")
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot open video .*broken.avi"):
        VideoSource(broken)


def test_image_folder_skips_unreadable_files_and_ends(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((60, 80, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "c.png"), np.full((50, 50), 90, np.uint8))     # grayscale
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    images = ImageSource(tmp_path)
    assert images.read().shape == (60, 80, 3)
    with pytest.raises(FrameUnavailable, match="cannot read image .*b.png"):
        images.read()
    assert images.read().shape == (50, 50, 3)
    with pytest.raises(SourceEnded):
        images.read()


def test_image_paths_that_hold_no_images_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        ImageSource(tmp_path)
    with pytest.raises(SourceError, match="not found; check the --image path"):
        ImageSource(tmp_path / "missing.png")


def test_live_image_source_repeats_the_picture_at_a_steady_pace(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), np.full((40, 40, 3), 123, np.uint8))
    images = ImageSource(tmp_path / "one.png", live=True)
    started = time.monotonic()
    frames = [images.read() for _ in range(4)]
    assert time.monotonic() - started >= 0.25          # 10 frames a second
    assert all(frame[0, 0, 0] == 123 for frame in frames)


def test_pacer_holds_the_rate():
    pacer = Pacer(50)
    started = time.monotonic()
    for _ in range(6):
        pacer.wait()
    assert 0.09 <= time.monotonic() - started < 0.5


def test_a_missing_camera_is_reported_and_retried_without_raising_at_open():
    camera = CameraSource(MISSING_CAMERA, retry=True)
    for _ in range(2):        # the second read comes before the retry is due: no reopen
        with pytest.raises(FrameUnavailable, match=f"camera {MISSING_CAMERA} not available.*"
                                                   "retrying"):
            camera.read()
    camera.close()


def test_a_missing_camera_without_retry_fails_in_one_line():
    with pytest.raises(SourceError, match="pick another --camera") as error:
        CameraSource(MISSING_CAMERA, retry=False)
    assert "\n" not in str(error.value)


class FlakyCamera:
    """Stands in for cv2.VideoCapture: gives two frames, is 'unplugged', then comes back."""
    reads = 0

    def __init__(self, index):
        self.open = True

    def isOpened(self):
        return self.open

    def set(self, prop, value):
        return True

    def read(self):
        FlakyCamera.reads += 1
        if FlakyCamera.reads == 3:
            return False, None
        return True, np.zeros((480, 640, 3), np.uint8)

    def release(self):
        self.open = False


def test_an_unplugged_camera_reports_it_and_comes_back(monkeypatch):
    monkeypatch.setattr("fmnist_app.sources.cv2.VideoCapture", FlakyCamera)
    monkeypatch.setattr("fmnist_app.sources.CAMERA_RETRY_SECONDS", 0.05)
    camera = CameraSource(0)
    assert camera.read().shape == (480, 640, 3)
    assert camera.read().shape == (480, 640, 3)
    with pytest.raises(FrameUnavailable, match="camera 0 stopped sending frames.*retrying"):
        camera.read()
    time.sleep(0.06)
    assert camera.read().shape == (480, 640, 3)      # reopened
    camera.close()


def test_list_cameras_leaves_out_cameras_that_do_not_open():
    assert list_cameras([MISSING_CAMERA, MISSING_CAMERA + 1]) == []


def test_demo_scene_moves_garments_through_the_guide_box():
    images = shirt_like_images(5)
    demo = DemoSource(images)
    box = guide_box(640, 480, 0.6)
    resting, moving, next_one = demo.frame_at(1.0), demo.frame_at(2.8), demo.frame_at(4.0)
    assert resting.shape == (480, 640, 3) and resting.dtype == np.uint8
    assert np.abs(resting.astype(int) - moving).mean() > 5
    # Resting in the box, the garment comes out of preprocessing as the drawing: it spans
    # rows 4..27 and columns 2..25, so trimmed and scaled it fills the 28x28 canvas.
    first, second = (prepare_frame(frame, box)[1] for frame in (resting, next_one))
    expected = [cv2.resize(images[int(i)][4:28, 2:26], (28, 28)) for i in demo.order[:2]]
    assert np.corrcoef(first.ravel(), expected[0].ravel())[0, 1] > 0.8
    assert np.corrcoef(second.ravel(), expected[1].ravel())[0, 1] > 0.8


def test_open_source_builds_each_kind_and_refuses_unknown_ones(clip):
    with open_source(SourceSpec("video", clip), live=False) as video:
        assert isinstance(video, VideoSource) and not video.loop
    with open_source(SourceSpec("camera", MISSING_CAMERA), live=True) as camera:
        assert isinstance(camera, CameraSource)
    with pytest.raises(SourceError, match="unknown source kind 'webcam'"):
        open_source(SourceSpec("webcam"))
    assert SourceSpec("video", clip).label == "Video: clip.avi"
    assert SourceSpec("camera", 2).label == "Camera 2"
