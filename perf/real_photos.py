"""Does the live demo say "no garment" to real photographs of things that are not garments?

    .venv/bin/python perf/real_photos.py [--model PATH] [--json FILE] [--failures DIR]
                                         [--frames-dir DIR]

The scene benchmark's negatives (perf/live_accuracy.py) are drawn by our own renderer; these
are real photographs, from the sample images scikit-image ships (no download): every photo
of a real scene in skimage.data (a person, a man with a camera, a cat, a coffee cup, coins,
a clock, a brick wall, grass, gravel, a printed page, handwriting, a rocket, the moon, a
telescope field), each filling the 640x480 frame at three zooms and, closer in, five
placements; and the 100 faces of skimage.data.lfw_subset (Labeled Faces in the Wild), each
filling the frame as a face does held close to a webcam, at two zooms. Every frame goes
through the demo's own pipeline (three frames each, so smoothing is included). Prints the
share wrongly accepted as a garment per photo and overall, with what the rest showed. Nothing
here is used to fit any threshold: the photos only measure.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from live_accuracy import failure_tile, write_sheet

from fmnist_app import scenes
from fmnist_app.dataset import SHIPPED_GRAPH
from fmnist_app.inference import ModelError
from fmnist_app.live.pipeline import GARMENT, Pipeline, load_classifier
from fmnist_app.machine import cpu_model

# skimage.data's photographs of real scenes; its drawings, synthetic patterns and
# microscopy or medical images are left out.
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "clock", "brick", "grass",
          "gravel", "page", "text", "rocket", "moon", "hubble_deep_field")
# (zoom, horizontal, vertical offset as a share of the slack): the whole photo, then closer
# in at the centre and towards each side.
PLACEMENTS = ((1.0, 0, 0),
              *((zoom, dx, dy) for zoom in (1.5, 2.2)
                for dx, dy in ((0, 0), (-0.5, 0), (0.5, 0), (0, -0.5), (0, 0.5))))
FACE_ZOOMS = (1.0, 1.4)
FRAMES = 3


def as_bgr(picture):
    """A skimage sample (bool, gray, RGB or RGBA; uint8 or 0..1 floats) as BGR uint8."""
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        picture = np.clip(picture.astype(np.float64) * 255, 0, 255).round().astype(np.uint8)
    if picture.ndim == 2:
        return cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
    code = cv2.COLOR_RGBA2BGR if picture.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(picture, code)


def camera_frame(picture, zoom=1.0, dx=0.0, dy=0.0):
    """The 640x480 frame a camera would see of `picture` (BGR): scaled to cover the frame,
    times `zoom`, the window moved by (dx, dy) of the slack on each axis."""
    height, width = picture.shape[:2]
    scale = max(scenes.WIDTH / width, scenes.HEIGHT / height) * zoom
    size = (max(scenes.WIDTH, round(width * scale)), max(scenes.HEIGHT, round(height * scale)))
    big = cv2.resize(picture, size, interpolation=cv2.INTER_AREA if scale < 1 else
                     cv2.INTER_CUBIC)
    slack_x, slack_y = size[0] - scenes.WIDTH, size[1] - scenes.HEIGHT
    x0, y0 = round(slack_x / 2 * (1 + dx)), round(slack_y / 2 * (1 + dy))
    return np.ascontiguousarray(big[y0:y0 + scenes.HEIGHT, x0:x0 + scenes.WIDTH])


def photo_sets():
    """{name: [frames]}: each photo under every placement, and the LFW faces."""
    from skimage import data
    sets = {name: [camera_frame(as_bgr(getattr(data, name)()), *placement)
                   for placement in PLACEMENTS] for name in PHOTOS}
    faces = data.lfw_subset()[:100]                 # the first 100 are faces
    sets["faces (LFW)"] = [camera_frame(as_bgr(face), zoom) for face in faces
                           for zoom in FACE_ZOOMS]
    return sets


def measure(classifier, sets, failures=None):
    """Rows per photo set: frames, share accepted, and what the others showed; with
    `failures` (a list), the tiles of the accepted frames are appended to it."""
    rows = []
    for name, frames in sets.items():
        shown = {}
        for frame in frames:
            pipeline = Pipeline(classifier)
            for _ in range(FRAMES):
                result = pipeline.process(frame, scenes.BOX_FRACTION)
            verdict = "a class" if result.verdict == GARMENT else result.verdict
            shown[verdict] = shown.get(verdict, 0) + 1
            if failures is not None and result.verdict == GARMENT:
                failures.append(failure_tile(np.zeros((28, 28), np.uint8), result, name[:12]))
        rows.append({"photo": name, "frames": len(frames),
                     "accepted": shown.get("a class", 0) / len(frames),
                     "shown": {k: v / len(frames) for k, v in sorted(shown.items())}})
    return rows


def accepted_share(rows):
    """The share of all frames in `rows` that were accepted as a garment."""
    return sum(r["accepted"] * r["frames"] for r in rows) / sum(r["frames"] for r in rows)


def save_frames(sets, folder):
    """Every frame as FOLDER/<photo>_<number>.png, to open in the window (--image FOLDER)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frames in sets.items():
        stem = name.split(" ")[0]
        for number, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{stem}_{number:03d}.png"), frame)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_GRAPH)
    parser.add_argument("--json", type=Path, metavar="FILE")
    parser.add_argument("--failures", type=Path, metavar="DIR",
                        help="also write a contact sheet of the accepted frames into DIR")
    parser.add_argument("--frames-dir", type=Path, metavar="DIR",
                        help="also save every frame as a PNG in DIR (open them with "
                             "demo_program.py --image)")
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.model)
    except ModelError as err:
        sys.exit(f"error: {err}")
    started = time.perf_counter()
    failures = [] if args.failures else None
    sets = photo_sets()
    rows = measure(classifier, sets, failures)
    seconds = time.perf_counter() - started
    if args.frames_dir:
        save_frames(sets, args.frames_dir)
    frames = sum(r["frames"] for r in rows)
    accepted = accepted_share(rows)
    photo_share = accepted_share([r for r in rows if r["photo"] in PHOTOS])
    print(f"{'photo':18s} {'frames':>6s} {'accepted':>9s}   what the others showed")
    for r in rows:
        others = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["shown"].items() if k != "a class")
        print(f"{r['photo']:18s} {r['frames']:6d} {100 * r['accepted']:8.1f}%   {others}")
    print(f"\nwrongly accepted as a garment: {100 * accepted:.1f}% of {frames} frames "
          f"(photos {100 * photo_share:.1f}%, faces {100 * rows[-1]['accepted']:.1f}%); "
          f"{seconds:.0f} s on {cpu_model()}; model {args.model}")
    if failures:
        args.failures.mkdir(parents=True, exist_ok=True)
        write_sheet(failures, args.failures / "real_photos_accepted.png")
        print(f"wrote {args.failures / 'real_photos_accepted.png'} ({len(failures)} frames)")
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model), "cpu": cpu_model(), "seconds": round(seconds, 1),
            "rows": rows, "accepted": accepted, "photos_accepted": photo_share,
            "faces_accepted": rows[-1]["accepted"]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
