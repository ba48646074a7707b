"""Your own garments seen again: new camera views re-made from the crops you saved.

A fine-tune on a few hundred of your shots learns them as the demo saw them once: one
placement, one light, one threshold's trim. The next time you hold up the same sneaker the
demo sees it a little turned, in other light, through other sensor noise, and the
preprocessing trims and shades it differently. So each saved crop (the window keeps it next
to the 28x28 input) is turned, zoomed, relit, blurred, noised and JPEG-compressed a little,
and goes through the demo's own preprocessing again: EXTRA_CROP_VARIANTS such views per
image join your images in the fine-tune (fmnist_app/train.py, mix_in_extra). Views the
preprocessing refuses (box empty, something reaching in) are dropped, as the demo never
classifies them either. Only the images the fine-tune trains on are varied, never the ones
it holds out to measure on.
"""

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from fmnist_app.preprocess import FOUND, analyse_crop
from fmnist_app.scenes import uneven_light

THREADS = 2                      # OpenCV releases the GIL: as camera_views
MAX_TURN = 6.0                   # degrees either way
ZOOM = (1.0, 1.12)               # only in: a view never shows what lay outside the crop
MAX_SHIFT = 0.03                 # of the crop side
DARKEST = (0.6, 1.0)             # the far side of a light gradient, of the near side's level
LEVEL = (0.7, 1.2)               # overall exposure
TINT = 0.12                      # per-channel gain up to +-12%: another lamp's colour
BLUR_SIGMA = (0.0, 1.2)          # pixels of the crop
NOISE_SIGMA = (0.0, 5.0)         # 8-bit levels
JPEG_QUALITY = (55, 92)


def camera_variant(crop, rng):
    """One new view of a BGR uint8 crop, as a camera would give it another time."""
    height, width = crop.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-MAX_TURN, MAX_TURN),
                                     rng.uniform(*ZOOM))
    matrix[:, 2] += rng.uniform(-MAX_SHIFT, MAX_SHIFT, 2) * (width, height)
    view = cv2.warpAffine(crop.astype(np.float32), matrix, (width, height),
                          borderMode=cv2.BORDER_REPLICATE)
    light = uneven_light(width, height, 1.0, rng.uniform(*DARKEST), rng.uniform(0, 2 * np.pi),
                         rng.uniform(0.0, 0.3))
    gain = rng.uniform(*LEVEL) * (1 + rng.uniform(-TINT, TINT, 3)).astype(np.float32)
    view *= light[..., None] * gain
    sigma = rng.uniform(*BLUR_SIGMA)
    if sigma > 0.3:
        view = cv2.GaussianBlur(view, (0, 0), sigma)
    view += rng.normal(0, rng.uniform(*NOISE_SIGMA), view.shape).astype(np.float32)
    view = np.clip(view, 0, 255).round().astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", view,
                              [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*JPEG_QUALITY))])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def crop_views(crop, count, rng):
    """Up to `count` 28x28 model inputs from new views of `crop` (refused ones dropped)."""
    views = []
    for _ in range(count):
        image28, outcome = analyse_crop(camera_variant(crop, rng))
        if outcome == FOUND:
            views.append(image28)
    return views


def make_crop_views(crop_paths, labels, count, seed):
    """(views (N, 28, 28) uint8, labels (N,)): `count` new views of each crop file, seeded per
    crop; crops that are None (examples saved without one) or unreadable give none."""
    def views_of(number):
        path = crop_paths[number]
        crop = None if path is None else cv2.imread(str(path), cv2.IMREAD_COLOR)
        if crop is None or min(crop.shape[:2]) < 8:
            return []
        return crop_views(crop, count, np.random.default_rng([seed, number]))

    pool = ThreadPoolExecutor(THREADS)
    try:
        results = list(pool.map(views_of, range(len(crop_paths))))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    view_labels = np.concatenate([np.full(len(views), label, np.int64)
                                  for views, label in zip(results, labels)] or [[]])
    views = [view for per_crop in results for view in per_crop]
    return (np.stack(views) if views else np.zeros((0, 28, 28), np.uint8),
            view_labels.astype(np.int64))
