"""Camera crop -> a 28x28 image that looks like Fashion-MNIST, plus the guide-box geometry.

Fashion-MNIST was made from product photos on a light background (Xiao et al. 2017, sec. 2):
trim edges close to the background colour, resize the longest edge to 28, centre on a 28x28
canvas, negate, 8-bit grayscale. A camera adds what a studio photo lacks: uneven light and
sensor noise. So the background is estimated from the ring of pixels just inside the guide
box (a smooth surface, fitted robustly so a hand or a sleeve at the edge does not bend it),
and each pixel becomes "how much darker than the background here", which is the negated
image with the lighting divided out.
"""

import functools
from typing import NamedTuple

import cv2
import numpy as np

from fmnist_app.dataset import IMAGE_SIZE as OUTPUT_SIZE

# The crop is first shrunk to this many pixels a side: fast, averages sensor noise away, and
# still 4x finer than the output so trimming loses less than a quarter of an output pixel.
WORK_SIZE = 112
BORDER_WIDTH = 4                 # ring (in WORK_SIZE pixels) taken to be background
MIN_DARKNESS = 0.06              # trim at 6% darker than the background (paper: 5%, no noise)
NOISE_SIGMAS = 4.0               # ... or 4 noise sigmas, whichever is larger
SHARPEN_SIGMA, SHARPEN_AMOUNT = 1.0, 0.5
MIN_BOX_FRACTION, MAX_BOX_FRACTION = 0.2, 1.0


class Box(NamedTuple):
    """A square in frame pixels: top-left corner and side."""
    x: int
    y: int
    side: int


def guide_box(frame_width, frame_height, fraction):
    """The centred square guide box whose side is `fraction` of the frame's shorter edge."""
    if not MIN_BOX_FRACTION <= fraction <= MAX_BOX_FRACTION:
        raise ValueError(f"guide box size {fraction} is outside "
                         f"{MIN_BOX_FRACTION}..{MAX_BOX_FRACTION} of the frame's shorter edge")
    side = max(1, round(fraction * min(frame_width, frame_height)))
    return Box((frame_width - side) // 2, (frame_height - side) // 2, side)


def crop_box(frame, box):
    return frame[box.y:box.y + box.side, box.x:box.x + box.side]


def to_grayscale(image):
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or channels not in (1, 3, 4) \
            or min(image.shape[:2]) < 8:
        raise ValueError(f"expected an 8-bit image at least 8x8 (gray, BGR or BGRA), got "
                         f"{image.dtype} {image.shape}; pass a camera frame crop")
    if channels == 1:
        return image.reshape(image.shape[:2])
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if channels == 4 else cv2.COLOR_BGR2GRAY)


def _surface_terms(xs, ys):
    """Quadratic surface basis: enough for a gradient plus vignetting, too stiff to fit a shirt."""
    return (np.ones_like(xs * ys), xs, ys, xs * xs, xs * ys, ys * ys)


@functools.lru_cache(maxsize=4)
def _fit_basis(size):
    """For a size x size image: the border-ring mask, the basis at the ring pixels (N, 6),
    and the basis over the whole image (6, size, size). Built once: every frame reuses it."""
    ring = np.ones((size, size), bool)
    ring[BORDER_WIDTH:-BORDER_WIDTH, BORDER_WIDTH:-BORDER_WIDTH] = False
    ys, xs = np.nonzero(ring)
    terms = np.stack(_surface_terms(xs / size - 0.5, ys / size - 0.5), axis=1)
    grid = np.arange(size, dtype=np.float32) / size - 0.5
    surfaces = np.stack(np.broadcast_arrays(*_surface_terms(grid[None, :], grid[:, None])))
    return ring, terms, surfaces.astype(np.float32)


def estimate_background(gray):
    """Light level at every pixel, from a robust quadratic fit to the border ring.

    Rounds of refitting drop ring pixels far from the surface (a hand, a sleeve, a shadow),
    judged by the median absolute deviation so the noise level sets the cut.
    Returns (background float32 like `gray`, noise sigma of the kept ring pixels).
    """
    ring, terms, surfaces = _fit_basis(gray.shape[0])
    values = gray[ring].astype(np.float64)
    kept = np.ones(len(values), bool)
    for _ in range(3):
        # Normal equations of a 6-term fit: tiny, and unlike lstsq they never wake BLAS
        # threads, which stall for milliseconds on a machine busy training.
        fitted = terms[kept]
        coefficients = np.linalg.solve(fitted.T @ fitted, fitted.T @ values[kept])
        residuals = values - (terms * coefficients).sum(axis=1)
        sigma = 1.4826 * np.median(np.abs(residuals[kept])) + 1e-3
        kept = np.abs(residuals) < 3 * sigma
    background = np.tensordot(coefficients.astype(np.float32), surfaces, axes=1)
    return background, float(sigma)


def garment_mask(darkness, threshold):
    """(garment, intruders): boolean masks of clearly darker pixels, split in two.

    Specks are opened away. A blob touching the crop border that does not reach the middle
    of the box (a finger, a sleeve, a shadow in a corner) is dropped; the user is asked to
    centre the garment, so whatever reaches the middle is kept, even if it fills the box;
    so is anything clear of the border that is not a speck next to the biggest blob.
    """
    mask = cv2.morphologyEx((darkness > threshold).astype(np.uint8), cv2.MORPH_OPEN,
                            np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask.astype(bool), np.zeros(mask.shape, bool)
    size = darkness.shape[0]
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    at_edge = (left == 0) | (top == 0) | (right == size) | (bottom == size)
    middle = np.zeros(count, bool)
    middle[np.unique(labels[size // 4:size - size // 4, size // 4:size - size // 4])] = True
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = middle | (~at_edge & (areas >= 0.02 * areas[1:].max()))
    keep[0] = False                                  # label 0 is the background
    return keep[labels], ~keep[labels] & (labels > 0)


def fit_to_canvas(image, size=OUTPUT_SIZE):
    """Resize the longest edge to `size` and centre the result on a black size x size canvas."""
    height, width = image.shape
    scale = size / max(height, width)
    new_width = min(size, max(1, round(width * scale)))
    new_height = min(size, max(1, round(height * scale)))
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size), image.dtype)
    # An odd margin puts its spare pixel above / left, as in 98% of the dataset's images.
    top, left = (size - new_height + 1) // 2, (size - new_width + 1) // 2
    canvas[top:top + new_height, left:left + new_width] = resized
    return canvas


def sharpen(image):
    """Gaussian unsharp mask (sigma 1), the dataset's own step after resizing: it restores
    edges the resize softened (mean error to the dataset images drops by about a quarter)."""
    blurred = cv2.GaussianBlur(image, (0, 0), SHARPEN_SIGMA)
    return np.clip(cv2.addWeighted(image, 1 + SHARPEN_AMOUNT, blurred, -SHARPEN_AMOUNT, 0), 0, None)


def to_fashion_mnist(crop):
    """A guide-box crop (BGR or gray uint8) -> 28x28 uint8, garment bright on black.

    All zeros when nothing in the crop stands out from the background.
    """
    gray = cv2.resize(to_grayscale(crop), (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_AREA)
    background, sigma = estimate_background(gray)
    # Dividing by the local light level makes "darker than here" mean the same in a bright
    # corner and a dim one; this is the negation, with the lighting taken out.
    darkness = 1.0 - gray.astype(np.float32) / np.maximum(background, 1.0)
    noise = sigma / max(float(np.median(background)), 1.0)
    mask, intruders = garment_mask(darkness, max(MIN_DARKNESS, NOISE_SIGMAS * noise))
    if not mask.any():
        return np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), np.uint8)
    # Blank what was judged not garment, with its soft rim, in case it lies within the trim.
    darkness[cv2.dilate(intruders.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0] = 0
    x, y, width, height = cv2.boundingRect(mask.astype(np.uint8))
    # Lift the noise floor off so the background comes out black like the dataset's, then
    # stretch so the darkest garment pixels reach 255 (nearly every dataset image does).
    garment = np.clip(darkness[y:y + height, x:x + width] - 2 * noise, 0, None)
    garment = sharpen(fit_to_canvas(garment))
    return np.clip(garment * (255.0 / max(garment.max(), 1e-6)), 0, 255).round().astype(np.uint8)


def prepare_frame(frame, box):
    """The guide-box crop of a frame and its 28x28 model input."""
    crop = crop_box(frame, box)
    return crop, to_fashion_mnist(crop)
