"""Things that are not garments, drawn as the demo's preprocessing would show them (bright on
black, trimmed, centred, 28x28), for outlier exposure in training (Hendrycks et al. 2019):
the model learns to spread its probability over all classes for them, so its confidence
becomes a usable "is this a garment at all" score.

The shapes are generic on purpose (blobs, sticks radiating from a blob, polygons, boxy things,
textures, scraps of garments cut at an edge), not the hands and faces of the scene benchmark
(fmnist_app.scenes), so those stay unseen; its cushion is a boxy thing, so what the model
learns from boxes is measured there too (README, Live scenes). Seeded; numpy and OpenCV.
"""

import cv2
import numpy as np

from fmnist_app.preprocess import to_28

CANVAS = 112                    # drawn at this size, then trimmed and shrunk like a crop


def shading(rng):
    """Cloth-like shading: a flat level, a smooth ripple and fine grain, each random."""
    small = rng.normal(0, 1, (7, 7)).astype(np.float32)
    ripple = cv2.resize(small, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 1, (CANVAS, CANVAS)).astype(np.float32)
    return np.clip(rng.uniform(0.4, 0.9) + rng.uniform(0, 0.25) * ripple
                   + rng.uniform(0, 0.15) * grain, 0.05, 1.0)


def random_point(rng, margin=0.2):
    return tuple(int(v) for v in rng.uniform(margin * CANVAS, (1 - margin) * CANVAS, 2))


def blobs(rng):
    mask = np.zeros((CANVAS, CANVAS), np.uint8)
    for _ in range(rng.integers(1, 4)):
        axes = tuple(int(v) for v in rng.uniform(8, 40, 2))
        cv2.ellipse(mask, random_point(rng), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    return mask


def sticks(rng):
    """A blob with thick strokes radiating from it: hands, arms, plants, tools."""
    mask = np.zeros((CANVAS, CANVAS), np.uint8)
    centre = random_point(rng, 0.3)
    radius = int(rng.uniform(8, 25))
    cv2.circle(mask, centre, radius, 1, -1)
    base = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(1, 7)):
        angle = base + rng.uniform(-1.2, 1.2)
        length = rng.uniform(20, 70)
        end = (int(centre[0] + np.cos(angle) * length), int(centre[1] + np.sin(angle) * length))
        cv2.line(mask, centre, end, 1, int(rng.uniform(4, 20)))
    return mask


def polygon(rng):
    count = rng.integers(5, 10)
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(15, 50, count)
    centre = np.float32([CANVAS / 2, CANVAS / 2]) + rng.uniform(-10, 10, 2)
    points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    mask = np.zeros((CANVAS, CANVAS), np.uint8)
    cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    return mask


def rounded_rectangle(width, height, radius):
    """A filled rectangle with corners rounded to `radius`: (height + 1, width + 1) uint8 0/1."""
    mask = np.zeros((height + 1, width + 1), np.uint8)
    cv2.rectangle(mask, (radius, 0), (width - radius, height), 1, -1)
    cv2.rectangle(mask, (0, radius), (width, height - radius), 1, -1)
    for x in (radius, width - radius):
        for y in (radius, height - radius):
            cv2.circle(mask, (x, y), radius, 1, -1)
    return mask


def boxy(rng):
    """A box-like object, the commonest non-garment held up to a webcam (a book, a phone, a
    box, a cushion): a rectangle of any proportions with corners from sharp to round, turned,
    evenly lit, lit from one side, or darker towards its edge like something stuffed."""
    width, height = rng.uniform(40, 100), rng.uniform(40, 100)
    flat = rounded_rectangle(int(width), int(height), int(min(width, height) * rng.uniform(0, 0.3)))
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-30, 30), 1.0)
    matrix[:, 2] += ((CANVAS - width) / 2, (CANVAS - height) / 2)
    mask = cv2.warpAffine(flat, matrix, (CANVAS, CANVAS), flags=cv2.INTER_NEAREST)
    values = shading(rng)
    look = rng.integers(0, 3)
    if look == 1:                                   # lit from one side
        ys, xs = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32) / CANVAS - 0.5
        angle = rng.uniform(0, 2 * np.pi)
        values = values * (1 + rng.uniform(0.2, 0.5) * (np.cos(angle) * xs + np.sin(angle) * ys))
    elif look == 2:                                 # stuffed: darker towards the seam
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        values = values * (0.6 + 0.4 * np.clip(inside / (0.25 * min(width, height)), 0, 1))
    return mask, np.clip(values, 0.05, 1.0)


def texture(rng):
    """A pattern filling most of the view: a sofa or a rug seen up close."""
    ys, xs = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 20)
    wave = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    if rng.random() < 0.5:
        wave *= np.sin((xs * np.sin(angle) - ys * np.cos(angle)) * 2 * np.pi / period)
    mask = np.zeros((CANVAS, CANVAS), np.uint8)
    mask[4:-4, 4:-4] = 1
    return mask, np.clip(0.55 + rng.uniform(0.2, 0.45) * wave, 0.05, 1.0)


def fragment(rng, garments):
    """A scrap of a garment: a window over a third to a half of it, at one of its sides."""
    image = garments[rng.integers(len(garments))].astype(np.float32) / 255.0
    big = cv2.resize(image, (CANVAS, CANVAS), interpolation=cv2.INTER_LINEAR)
    side = int(CANVAS * rng.uniform(0.3, 0.5))
    corner = rng.integers(0, 4)
    top = 0 if corner in (0, 1) else CANVAS - side
    left = 0 if corner in (0, 2) else CANVAS - side
    top += int(rng.uniform(0, CANVAS - side)) if rng.random() < 0.5 else 0
    left += int(rng.uniform(0, CANVAS - side)) if rng.random() < 0.5 else 0
    top, left = min(top, CANVAS - side), min(left, CANVAS - side)
    window = big[top:top + side, left:left + side]
    return (window > 0.1).astype(np.uint8), window


def to_dataset_look(mask, values):
    """Trim to the shape, then the demo's own last step (preprocess.to_28)."""
    image = mask.astype(np.float32) * values
    ys, xs = np.nonzero(image > 0.05)
    if len(ys) == 0:
        return None
    return to_28(image[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def make_outliers(count, seed, garments):
    """`count` outlier images (count, 28, 28) uint8; `garments` (N, 28, 28) for the scraps."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        kind = rng.integers(0, 6)
        if kind == 0:
            mask, values = blobs(rng), shading(rng)
        elif kind == 1:
            mask, values = sticks(rng), shading(rng)
        elif kind == 2:
            mask, values = polygon(rng), shading(rng)
        elif kind == 3:
            mask, values = texture(rng)
        elif kind == 4:
            mask, values = boxy(rng)
        else:
            mask, values = fragment(rng, garments)
        image = to_dataset_look(mask, values)
        if image is not None:
            out.append(image)
    return np.stack(out)
