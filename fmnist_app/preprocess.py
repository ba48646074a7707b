"""Camera crop -> a 28x28 image that looks like Fashion-MNIST, plus the guide-box geometry.

Fashion-MNIST was made from product photos on a light background (Xiao et al. 2017, sec. 2):
trim edges close to the background colour, resize the longest edge to 28, centre on a 28x28
canvas, negate, 8-bit grayscale. There the garment is always darker than its background, so
"negate" means "how much darker than the background". A camera in a room breaks that: a
white T-shirt against a dark sofa is lighter than its background, a red shirt on a green wall
is neither. So each colour channel's background is estimated from the ring of pixels just
inside the guide box (a smooth surface per channel, fitted robustly so a hand or a sleeve at
the edge does not bend it), each pixel's channels become relative differences from that
background (the lighting divided out), and a pixel's value is the size of that difference,
whichever way it goes. For a dark garment on a white background this is exactly "how much
darker", the dataset's negation; for the other cases it is the same idea, polarity-free.
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
MIN_CONTRAST = 0.06              # trim at 6% away from the background (paper: 5%, no noise)
DARK_FLOOR = 16.0                # background level below which dividing by it only adds noise
PATTERN_CLUSTERS = 3             # colours a patterned background may have, besides its mean
HELD_COLOUR_GAP = 30.0           # BGR levels from an intruder's colour that still count as it
LIGHT_GARMENT_FILL = 0.4         # silhouette level under a light garment's own shading
LUMINANCE_WEIGHTS = np.float32([0.114, 0.587, 0.299])       # B, G, R (ITU-R BT.601)
HUE_GAP = 0.03                   # share of B, G or R by which a hand's hue may differ
MAX_ARMS_SHARE = 0.12            # of the ring that what holds the garment may cross
MAX_RING_SHARE = 0.005           # of the ring an object may still cover after the hand is out
MIN_LARGEST_PIECE = 0.5          # share of the kept mask its largest piece must hold
MIN_GARMENT_SIDE = 0.25          # a "garment" under a quarter of the box is a speck or a scrap
NOISE_SIGMAS = 4.0               # ... or 4 noise sigmas, whichever is larger
SHARPEN_SIGMA, SHARPEN_AMOUNT = 1.0, 0.5
MIN_BOX_FRACTION, MAX_BOX_FRACTION = 0.2, 1.0
DEFAULT_BOX_FRACTION = 0.6       # the guide box the demo starts with
ANALYSIS_MARGIN = 0.12           # of the box side, on each side (see analysis_box)


# What analyse_crop found in the box.
FOUND, NOTHING, REACHES_IN = "found", "nothing", "reaches in"


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


def analysis_box(box, frame_width, frame_height):
    """The square actually analysed: the guide box plus a margin of ANALYSIS_MARGIN of its
    side where the frame allows. A garment that just touches the blue line, or pokes a
    little over it (held a bit large or off-centre), is then still seen whole inside the
    background ring, while an arm reaching in still crosses it. (At 0.08, 1.5-3.5% of the
    scene benchmark's off-centre, enlarged garments were "not inside": docs/EXPERIMENTS.md.)"""
    margin = min(round(ANALYSIS_MARGIN * box.side), box.x, box.y,
                 frame_width - box.x - box.side, frame_height - box.y - box.side)
    return Box(box.x - margin, box.y - margin, box.side + 2 * margin)


def crop_box(frame, box):
    return frame[box.y:box.y + box.side, box.x:box.x + box.side]


def to_colour(image):
    """An 8-bit gray, BGR or BGRA crop as (H, W, 3) BGR; anything else is a one-line error."""
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or channels not in (1, 3, 4) \
            or min(image.shape[:2]) < 8:
        raise ValueError(f"expected an 8-bit image at least 8x8 (gray, BGR or BGRA), got "
                         f"{image.dtype} {image.shape}; pass a camera frame crop")
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if channels == 4 else image


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


def row_medians(rows):
    """np.median(rows, axis=1) of a 2-D array, from one partition. A frame takes a dozen
    medians of a few thousand values each, where np.median's general machinery around the
    partition was a large part of their cost (python perf/demo_pipeline.py --profile 20)."""
    middle, odd = divmod(rows.shape[1], 2)
    if odd:
        return np.partition(rows, middle, axis=1)[:, middle]
    parted = np.partition(rows, (middle - 1, middle), axis=1)
    return (parted[:, middle - 1] + parted[:, middle]) / 2


def estimate_background(image):
    """Background level of each channel at every pixel, from robust quadratic fits to the
    border ring of an (H, W, C) image, all channels in one solve.

    Rounds of refitting drop ring pixels far from the surface in any channel (a hand, a
    sleeve, a shadow), judged by the median absolute deviation so the noise level sets the
    cut. Returns (background float32 (H, W, C), noise sigma per channel (C,)).
    """
    ring, terms, surfaces = _fit_basis(image.shape[0])
    values = image[ring].T.astype(np.float64)                   # (C, N): a row per channel
    kept = np.ones(values.shape[1], bool)
    for _ in range(3):
        # Normal equations of a 6-term fit: tiny, and unlike lstsq they never wake BLAS
        # threads, which stall for milliseconds on a machine busy training.
        fitted = terms[kept]
        coefficients = np.linalg.solve(fitted.T @ fitted, fitted.T @ values[:, kept].T)  # (6, C)
        deviations = np.abs(values - (terms @ coefficients).T)
        sigma = 1.4826 * row_medians(deviations[:, kept]) + 1e-3
        kept = np.all(deviations < 3 * sigma[:, None], axis=0)
    background = np.tensordot(surfaces, coefficients.astype(np.float32), axes=(0, 0))
    return background, sigma


def garment_mask(contrast, threshold):
    """(garment, intruders): boolean masks of pixels clearly unlike the background, split.

    Specks are opened away. A blob touching the crop border that does not reach the middle
    of the box (a finger, a sleeve, a shadow in a corner) is dropped; the user is asked to
    centre the garment, so whatever reaches the middle is kept, even if it fills the box;
    so is anything clear of the border that is not a speck next to the biggest blob.
    """
    mask = cv2.morphologyEx((contrast > threshold).astype(np.uint8), cv2.MORPH_OPEN,
                            np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask.astype(bool), np.zeros(mask.shape, bool)
    size = contrast.shape[0]
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    at_edge = (left == 0) | (top == 0) | (right == size) | (bottom == size)
    middle = np.zeros(count, bool)
    middle[np.unique(labels[size // 4:size - size // 4, size // 4:size - size // 4])] = True
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = middle | (~at_edge & (areas >= 0.02 * areas[1:].max()))
    keep[0] = False                                  # label 0 is the background
    # An object is mostly one piece; specks scattered over the box (sensor noise, a
    # patterned surface, JPEG blocks in the dark) are not, and are no garment at all.
    if keep.any() and areas[keep].max() < MIN_LARGEST_PIECE * areas[keep].sum():
        keep[:] = False
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


@functools.lru_cache(maxsize=4)
def _ring_sides(size):
    """For the ring pixels (in _fit_basis order): which side each lies on, 0..3 (top,
    bottom, left, right; corners go to top/bottom)."""
    ring, _, _ = _fit_basis(size)
    ys, xs = np.nonzero(ring)
    return np.select([ys < BORDER_WIDTH, ys >= size - BORDER_WIDTH, xs < BORDER_WIDTH],
                     [0, 1, 2], 3)


def background_colours(ring_values, sides):
    """The relative colours (K, 3) that count as background: the fitted surface itself (0),
    plus each k-means cluster of the ring that is a pattern's colour rather than an object's.

    A patterned sofa puts its few colours all around the ring; a hand, a sleeve or a shadow
    sits on one or two sides. So a cluster counts only if it holds at least 15% of the ring
    and at least 5% of every side.
    """
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    cv2.setRNGSeed(0)                      # same frame, same answer
    _, labels, centres = cv2.kmeans(ring_values.astype(np.float32), PATTERN_CLUSTERS, None,
                                    criteria, 1, cv2.KMEANS_PP_CENTERS)
    # counts[side, k]: how many of that side's pixels are in cluster k.
    counts = np.bincount(sides * PATTERN_CLUSTERS + labels.ravel(),
                         minlength=4 * PATTERN_CLUSTERS).reshape(4, PATTERN_CLUSTERS)
    overall = counts.sum(axis=0) / len(sides)
    shares = counts / counts.sum(axis=1, keepdims=True)
    pattern = (overall >= 0.15) & np.all(shares >= 0.05, axis=0)
    return np.concatenate([np.zeros((1, 3), np.float32), centres[pattern]])


# Steps (rows, columns) between the pixels compared: across, down, both diagonals and the
# four knight's moves between them, so that stripes at any angle run within 13.3 degrees of
# one of them (with the first four only, up to 22.5 degrees: a sandal on stripes 13 degrees
# off a diagonal was lost, tests/test_preprocess.py).
NOISE_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1), (1, 2), (1, -2), (2, 1), (2, -1))


def sensor_noise(relative):
    """Noise level of the relative image, from differences between nearby pixels of the top
    and bottom bands of the ring (MAD; RMS over channels). A smooth background barely
    changes them; a striped one does across its stripes but not along them, so of the
    NOISE_STEPS directions the quietest one counts."""
    # (C, 2, B, W): channels first, so each channel's differences are one row to take a
    # median of.
    bands = np.stack([relative[:BORDER_WIDTH], relative[-BORDER_WIDTH:]]).transpose(3, 0, 1, 2)
    width = relative.shape[1]
    levels = []
    for down, across in NOISE_STEPS:
        left, right = max(0, -across), width - max(0, across)
        step = (bands[:, :, down:, left + across:right + across]
                - bands[:, :, :BORDER_WIDTH - down, left:right])
        sigma = 1.4826 * row_medians(np.abs(step.reshape(len(step), -1))) / np.sqrt(2)
        levels.append(float(np.sqrt(np.mean(sigma * sigma))))
    return min(levels) + 1e-4


def contrast_image(colour):
    """(contrast, noise level, luminance difference) for a WORK_SIZE BGR float image: how
    far each pixel's colour is from the nearest background colour, relative to the local
    light level (root mean square over B, G, R), and the signed luminance difference."""
    background, _ = estimate_background(colour)
    # Dividing by the local level makes a difference mean the same in a bright corner and a
    # dim one, and per channel it also divides out a tinted light.
    relative = (colour - background) / np.maximum(background, DARK_FLOOR)
    ring, _, _ = _fit_basis(WORK_SIZE)
    centres = background_colours(relative[ring], _ring_sides(WORK_SIZE))
    # Squared distance to the nearest background colour, one colour at a time (few of them).
    nearest = np.einsum("hwc,hwc->hw", relative, relative)
    for centre in centres[1:]:
        away = relative - centre
        np.minimum(nearest, np.einsum("hwc,hwc->hw", away, away), out=nearest)
    contrast = np.sqrt(nearest / 3)
    # Whichever is larger: pixel noise (neighbour differences), or what the ring keeps of
    # its own structure after the background colours are taken out (JPEG banding in the
    # dark, a pattern with more colours than the clusters; median RMS = 0.888 sigma).
    noise = max(sensor_noise(relative), float(np.median(contrast[ring])) / 0.888)
    return contrast, noise, relative @ LUMINANCE_WEIGHTS


def has_garment_sized_piece(mask):
    """Whether, rim slivers opened away, one piece of `mask` spans MIN_GARMENT_SIDE of the box."""
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(opened)
    sides = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    return count > 1 and sides.max() >= MIN_GARMENT_SIDE * mask.shape[0]


def skin_pixels(colour):
    """Which pixels of a BGR image lie in the skin range of YCrCb (Chai and Ngan 1999: Cr
    133-173, Cb 77-127), which holds skin of every tone under white light."""
    ycrcb = cv2.cvtColor(np.clip(colour, 0, 255).astype(np.uint8), cv2.COLOR_BGR2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    return (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)


def is_skin(bgr):
    """Whether one BGR colour is skin-coloured (skin_pixels)."""
    return bool(skin_pixels(np.float32([[bgr]]))[0, 0])


def same_hue_other_light(colour, reference):
    """Pixels of `reference`'s colour under more or less light: the same shares of B, G and R
    (within HUE_GAP) at 0.6-1.6x its brightness. Uneven light makes a hand's fingers far
    brighter or darker than its wrist at the box edge; it does not change their hue."""
    total = colour.sum(axis=2) + 1e-3
    reference_total = float(reference.sum()) + 1e-3
    hue_gap = np.abs(colour / total[..., None] - reference / reference_total).max(axis=2)
    ratio = total / reference_total
    return (hue_gap < HUE_GAP) & (ratio > 0.6) & (ratio < 1.6)


def remove_held_parts(colour, mask, ring):
    """(mask without what reaches in, reaches_in).

    A hand holding the garment at the box edge merges with it into one blob. Where the
    blob crosses the ring of background pixels we see the intruder's colour (an arm, a
    hand); blob parts of that colour connected to the box edge are dropped. reaches_in is
    True when the object itself comes in from outside the box (an arm reaching in, a head
    on its shoulders, a garment too big or too far off-centre to be seen whole): when the
    dropped parts leave no garment-sized piece (a hand and arm may well be bigger than the
    sandal they hold), when they come in wider than two arms (shoulders under a
    head), or when what is left still crosses the ring (a garment held inside the box
    leaves the margin around it free)."""
    kept = mask
    samples = colour[ring & mask]
    if len(samples) >= 10:
        mean = np.median(samples, axis=0)
        spread = max(HELD_COLOUR_GAP, 1.5 * 1.4826 * float(np.median(np.abs(samples - mean))))
        similar = np.sqrt(np.sum((colour - mean) ** 2, axis=2)) < spread
        # A hand goes whole, however the light falls on it. Only a hand: a garment that
        # crosses the ring would go whole too (off-centre garments, perf/live_accuracy.py).
        if is_skin(mean):
            # ... and nothing that is not skin-coloured itself: a dark garment the hand
            # holds can be as close to a shaded hand in plain B, G, R distance.
            similar = (similar | same_hue_other_light(colour, mean)) & skin_pixels(colour)
        similar &= mask
        count, parts = cv2.connectedComponents(similar.astype(np.uint8))
        reaching = np.unique(parts[ring & similar])
        held = np.isin(parts, reaching[reaching > 0])
        # Grow it a little: the blurred rim between hand and cloth belongs to neither colour.
        held = (cv2.dilate(held.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & mask
        kept = mask & ~held
        # An arm is a fifth of a box side wide or less: it crosses a few percent of the ring,
        # two arms stay under MAX_ARMS_SHARE. Shoulders under a head span a whole side, a
        # quarter of the ring, however many parts the head cuts them in.
        wider_than_arms = np.count_nonzero(held & ring) > MAX_ARMS_SHARE * np.count_nonzero(ring)
        if wider_than_arms or not has_garment_sized_piece(kept):
            return mask, True
    return kept, np.count_nonzero(kept & ring) > MAX_RING_SHARE * np.count_nonzero(ring)


def fill_behind_hand(intensity, mask, held, blanked):
    """(intensity, mask) with the cloth behind the hand filled in.

    Where the fingers lie across the garment, the cloth behind them is missing and the
    model would see a bite out of it. What the hand covers within the garment's outline
    (the convex hull of what is left of it: a hand reaches in from outside, so the part it
    hides lies between garment parts) is filled from the cloth around it (inpainting), and
    so is the blanked rim between hand and cloth there."""
    if not held.any():      # the usual frame: no hand, and no hull to pay for
        return intensity, mask
    hull = cv2.convexHull(cv2.findNonZero(mask.astype(np.uint8)))
    outline = cv2.fillConvexPoly(np.zeros(mask.shape, np.uint8), hull, 1) > 0
    if not (outline & held).any():
        return intensity, mask
    behind = outline & (blanked | held)
    # Inpainting draws on every known pixel at the hole's edge; where that edge is the
    # garment's outline, the background beyond it would pull the fill to black. So the
    # background counts as the cloth's typical level while filling.
    result = intensity.astype(np.float32)
    source = result.copy()
    source[~(mask | behind)] = float(np.median(result[mask]))
    filled = cv2.inpaint(source, behind.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    # Inpainting carries the noise of the edge it starts from into the hole; smooth it there.
    result[behind] = cv2.GaussianBlur(filled, (0, 0), 2)[behind]
    return result, mask | behind


def garment_intensity(contrast, luminance_difference, colour, mask, noise):
    """The 28x28 image's values before trimming: "how much darker than the background" for
    a garment darker than it (the dataset's own negation); otherwise, where the background
    says nothing about the cloth's shading, the silhouette plus the cloth's darker parts
    relative to its own brightest (how a light garment looks in the dataset)."""
    if np.median(luminance_difference[mask]) < -MIN_CONTRAST:
        return np.clip(contrast - 2 * noise, 0, None)
    luminance = colour @ LUMINANCE_WEIGHTS
    brightest = max(float(np.percentile(luminance[mask], 95)), 1.0)
    shade = np.clip(1.0 - luminance / brightest, 0, None)
    shade /= max(float(np.percentile(shade[mask], 99)), 0.05)
    solid = np.clip(contrast / max(float(np.median(contrast[mask])), 1e-6), 0, 1)
    return solid * (LIGHT_GARMENT_FILL + (1 - LIGHT_GARMENT_FILL) * np.clip(shade, 0, 1))


def analyse_crop(crop):
    """A guide-box crop (BGR or gray uint8) -> (28x28 uint8 garment bright on black, outcome).

    outcome is FOUND, NOTHING (nothing stands out from the background, or only a scrap
    smaller than a quarter of the box) or REACHES_IN (the one object comes in across the box
    edge: see remove_held_parts); the image is all zeros unless FOUND.
    """
    blank = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), np.uint8)
    colour = cv2.resize(to_colour(crop), (WORK_SIZE, WORK_SIZE),
                        interpolation=cv2.INTER_AREA).astype(np.float32)
    contrast, noise, luminance_difference = contrast_image(colour)
    threshold = max(MIN_CONTRAST, NOISE_SIGMAS * noise)
    mask, intruders = garment_mask(contrast, threshold)
    held = np.zeros_like(mask)
    if mask.any():
        ring, _, _ = _fit_basis(WORK_SIZE)
        kept, reaches_in = remove_held_parts(colour, mask, ring)
        if reaches_in:
            return blank, REACHES_IN
        held = mask & ~kept
        mask, intruders = kept, intruders | held
    if not mask.any():
        return blank, NOTHING
    x, y, width, height = cv2.boundingRect(mask.astype(np.uint8))
    if max(width, height) < MIN_GARMENT_SIDE * WORK_SIZE:
        return blank, NOTHING
    intensity = garment_intensity(contrast, luminance_difference, colour, mask, noise)
    # Blank what was judged not garment, with its soft rim, in case it lies within the trim.
    blanked = cv2.dilate(intruders.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    intensity[blanked] = 0
    intensity, filled = fill_behind_hand(intensity, mask, held, blanked)
    if filled is not mask:
        x, y, width, height = cv2.boundingRect(filled.astype(np.uint8))
    return to_28(intensity[y:y + height, x:x + width]), FOUND


def to_28(trimmed):
    """A trimmed float image -> the dataset's look: longest side fitted to 28, centred,
    sharpened, stretched so its strongest pixels reach 255 (nearly every dataset image does)."""
    garment = sharpen(fit_to_canvas(trimmed))
    return np.clip(garment * (255.0 / max(garment.max(), 1e-6)), 0, 255).round().astype(np.uint8)


def prepare_frame(frame, box):
    """(crop, 28x28 model input, outcome) for a guide box in a frame: the analysed crop
    around the box (the box plus its margin) and what analyse_crop makes of it."""
    crop = crop_box(frame, analysis_box(box, frame.shape[1], frame.shape[0]))
    return (crop, *analyse_crop(crop))
