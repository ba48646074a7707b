"""Camera-like 640x480 frames of Fashion-MNIST garments under named conditions.

The scene benchmark (perf/live_accuracy.py), the tests and the calibration render the same
scenes: a garment (a dataset image turned into cloth: its silhouette, colour and shading)
held in the guide box in front of a background, lit unevenly and seen by a cheap camera
(blur, sensor noise, JPEG). Negative scenes hold no garment at all.

Each condition is a function (image28, rng) -> Scene; `frames(scene, count, rng)` adds the
per-frame camera noise and a little hand tremble, so several frames can be smoothed as the
demo does. No Qt, no TensorFlow.
"""

from dataclasses import dataclass, replace

import cv2
import numpy as np

from fmnist_app.outliers import rounded_rectangle
from fmnist_app.preprocess import DEFAULT_BOX_FRACTION, guide_box

WIDTH, HEIGHT = 640, 480
BOX_FRACTION = DEFAULT_BOX_FRACTION
BOX = guide_box(WIDTH, HEIGHT, BOX_FRACTION)
GARMENT_FRACTION = 0.75                  # garment side / box side when held "normally"
LIGHT_WALL = (0.78, 0.95)                # grey level range of a plain light background
SKIN_BGR = (0.42, 0.55, 0.78)


@dataclass
class Scene:
    reflectance: np.ndarray              # (H, W, 3) float32, 0..1, before lighting
    light: np.ndarray                    # (H, W, 1) float32, 0..255
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int | None          # None: no JPEG (ideal_camera)
    mirrored: bool = False


# --------------------------------------------------------------------------- materials

def luminance(bgr):
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def colour_with_luminance(rng, target, saturation=(0.4, 0.8)):
    """A random hue whose luminance is `target` (0..1), as a BGR reflectance triple."""
    hsv = np.uint8([[[rng.integers(0, 180), round(255 * rng.uniform(*saturation)), 255]]])
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0] / 255.0
    return np.clip(bgr * target / max(luminance(bgr), 1e-3), 0.02, 1.0).astype(np.float32)


def grey(value):
    return np.full(3, value, np.float32)


def plain(colour):
    return np.broadcast_to(np.asarray(colour, np.float32), (HEIGHT, WIDTH, 3)).copy()


def pattern(rng, contrast):
    """A multiplicative pattern (H, W) around 1: stripes, checks or blotches (a sofa, a
    cushion, a rug), each a different scale and angle."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    kind = rng.integers(0, 3)
    if kind == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(10, 40)
        wave = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    elif kind == 1:
        period = rng.uniform(14, 50)
        wave = np.sign(np.sin(xs * np.pi / period) * np.sin(ys * np.pi / period))
    else:
        small = rng.normal(0, 1, (HEIGHT // 16, WIDTH // 16)).astype(np.float32)
        wave = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        wave /= max(np.abs(wave).max(), 1e-6)
    return 1.0 + contrast * wave


def textured(rng, base):
    return plain(base) * pattern(rng, rng.uniform(0.12, 0.3))[..., None]


def uneven_light(width, height, brightest=235.0, darkest=130.0, angle=0.5, vignette=0.35):
    """Brightness (H, W) float32: a linear gradient times a soft vignette.

    Smooth, so it is computed on a grid 8x coarser and enlarged (4x faster per scene).
    """
    ys, xs = np.mgrid[0:height // 8, 0:width // 8].astype(np.float32)
    xs, ys = xs / (width // 8) - 0.5, ys / (height // 8) - 0.5
    ramp = np.clip(0.5 + np.cos(angle) * xs + np.sin(angle) * ys, 0, 1)   # ~0..1 across
    darkness = darkest / brightest
    coarse = brightest * (darkness + (1 - darkness) * ramp) * (1.0 - vignette * (xs * xs + ys * ys))
    return cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def lighting(rng):
    """Uneven light (H, W, 1) with a random direction, depth, vignette and level."""
    angle, darkest = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 0.85)
    vignette, level = rng.uniform(0.1, 0.4), rng.uniform(190, 250)
    return uneven_light(WIDTH, HEIGHT, level, level * darkest, angle, vignette)[..., None]


def camera(rng, reflectance, mirrored=False):
    return Scene(reflectance, lighting(rng), rng.uniform(0.4, 1.4), rng.uniform(2, 7),
                 int(rng.integers(55, 92)), mirrored)


# --------------------------------------------------------------------------- objects

def place_garment(canvas, image28, colour, shading, scale=1.0, angle=0.0, offset=(0, 0)):
    """Composite the garment of `image28` onto `canvas` (in place); returns its mask.

    The dataset pixel p (0..1, bright = garment) gives the silhouette (alpha) and the shading:
    reflectance = colour * (1 - shading * p), as a print of the product photo would (shading:
    one number, or one per channel B, G, R for a tinted print).
    """
    side = GARMENT_FRACTION * BOX.side * scale
    centre_x = BOX.x + BOX.side / 2 + offset[0]
    centre_y = BOX.y + BOX.side / 2 + offset[1]
    matrix = cv2.getRotationMatrix2D((14.0, 14.0), angle, side / 28.0)
    matrix[:, 2] += (centre_x - 14.0, centre_y - 14.0)
    # Work only on the rectangle the garment can cover: whole-frame compositing cost 4x more.
    corners = matrix @ np.float64([[0, 0, 1], [28, 0, 1], [0, 28, 1], [28, 28, 1]]).T
    x0, y0 = np.maximum(np.floor(corners.min(axis=1)).astype(int), 0)
    x1 = min(int(np.ceil(corners[0].max())) + 1, WIDTH)
    y1 = min(int(np.ceil(corners[1].max())) + 1, HEIGHT)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    if x1 <= x0 or y1 <= y0:                         # wholly outside the frame
        return mask
    matrix[:, 2] -= (x0, y0)
    p = cv2.warpAffine(image28.astype(np.float32) / 255.0, matrix, (x1 - x0, y1 - y0),
                       flags=cv2.INTER_LINEAR, borderValue=0.0)
    alpha = np.clip(p / 0.12, 0, 1)[..., None]
    cloth = np.asarray(colour, np.float32) * (1 - shading * p[..., None])
    region = canvas[y0:y1, x0:x1]
    region[:] = alpha * cloth + (1 - alpha) * region
    mask[y0:y1, x0:x1] = alpha[..., 0] > 0.5
    return mask


def paint(canvas, mask, colour):
    canvas[mask] = colour


def hand_mask(palm, direction, rng, arm_length=400):
    """A hand (palm, four fingers, thumb) at `palm` whose fingers point along `direction`
    (radians), with its forearm running the other way, out of the box."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    size = rng.uniform(0.85, 1.15)
    dx, dy = np.cos(direction), np.sin(direction)
    px, py = palm
    arm_end = (int(px - dx * arm_length), int(py - dy * arm_length))
    cv2.line(mask, (int(px), int(py)), arm_end, 1, int(62 * size))
    cv2.ellipse(mask, (int(px), int(py)), (int(40 * size), int(34 * size)),
                np.degrees(direction), 0, 360, 1, -1)
    for spread in (-0.42, -0.14, 0.14, 0.42):
        side_x, side_y = -dy * spread * 60 * size, dx * spread * 60 * size
        start = (int(px + dx * 25 * size + side_x), int(py + dy * 25 * size + side_y))
        length = rng.uniform(45, 62) * size
        end = (int(start[0] + dx * length), int(start[1] + dy * length))
        cv2.line(mask, start, end, 1, int(15 * size))
    thumb_angle = direction + 1.1 * rng.choice((-1, 1))
    start = (int(px), int(py))
    end = (int(px + np.cos(thumb_angle) * 62 * size), int(py + np.sin(thumb_angle) * 62 * size))
    cv2.line(mask, start, end, 1, int(18 * size))
    return mask.astype(bool)


def skin(rng):
    return np.clip(np.asarray(SKIN_BGR, np.float32) * rng.uniform(0.6, 1.2), 0, 1)


def face_mask(canvas, rng):
    """A head and shoulders as a webcam sees its user: skin oval, hair, eyes, mouth, neck."""
    centre = (int(BOX.x + BOX.side / 2 + rng.uniform(-20, 20)),
              int(BOX.y + BOX.side / 2 + rng.uniform(-20, 20)))
    width, height = int(rng.uniform(60, 85)), int(rng.uniform(80, 105))
    tone, hair = skin(rng), grey(rng.uniform(0.05, 0.35))
    shirt = colour_with_luminance(rng, rng.uniform(0.1, 0.7))
    body = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(body, (centre[0], centre[1] + height + 140), (230, 150), 0, 0, 360, 1, -1)
    paint(canvas, body.astype(bool), shirt)
    neck = np.zeros_like(body)
    cv2.rectangle(neck, (centre[0] - width // 2, centre[1]),
                  (centre[0] + width // 2, centre[1] + height + 20), 1, -1)
    paint(canvas, neck.astype(bool), tone * 0.85)
    head = np.zeros_like(body)
    cv2.ellipse(head, centre, (width, height), 0, 0, 360, 1, -1)
    paint(canvas, head.astype(bool), tone)
    top = np.zeros_like(body)
    cv2.ellipse(top, (centre[0], centre[1] - height // 3), (width + 6, int(height * 0.75)),
                0, 180, 360, 1, -1)
    paint(canvas, top.astype(bool), hair)
    features = np.zeros_like(body)
    for side in (-1, 1):
        cv2.ellipse(features, (centre[0] + side * width // 2 - side * 8, centre[1] - 5),
                    (11, 6), 0, 0, 360, 1, -1)
    cv2.ellipse(features, (centre[0], centre[1] + height // 2), (width // 3, 7), 0, 0, 360, 1, -1)
    paint(canvas, features.astype(bool), tone * 0.35)


# --------------------------------------------------------------------------- conditions

def dark_cloth(rng):
    """A garment darker than a light background: grey or coloured, mid to dark."""
    if rng.random() < 0.5:
        return grey(rng.uniform(0.85, 1.0)), rng.uniform(0.6, 0.85)
    return colour_with_luminance(rng, rng.uniform(0.2, 0.55)), rng.uniform(0.2, 0.45)


def plain_light(image28, rng):
    canvas = plain(grey(rng.uniform(*LIGHT_WALL)))
    colour, shading = dark_cloth(rng)
    place_garment(canvas, image28, colour, shading, rng.uniform(0.9, 1.05),
                  rng.uniform(-3, 3), rng.uniform(-8, 8, 2))
    return camera(rng, canvas)


def light_on_dark(image28, rng):
    canvas = plain(colour_with_luminance(rng, rng.uniform(0.06, 0.2), (0.0, 0.5)))
    colour = colour_with_luminance(rng, rng.uniform(0.75, 0.95), (0.0, 0.2))
    place_garment(canvas, image28, colour, rng.uniform(0.15, 0.35),
                  rng.uniform(0.9, 1.05), rng.uniform(-3, 3), rng.uniform(-8, 8, 2))
    return camera(rng, canvas)


def textured_background(image28, rng):
    base = colour_with_luminance(rng, rng.uniform(0.55, 0.85), (0.0, 0.5))
    canvas = textured(rng, base)
    colour, shading = dark_cloth(rng)
    place_garment(canvas, image28, colour * 0.7, shading, rng.uniform(0.9, 1.05),
                  rng.uniform(-3, 3), rng.uniform(-8, 8, 2))
    return camera(rng, canvas)


def colour_on_colour(image28, rng):
    level = rng.uniform(0.3, 0.6)
    background = colour_with_luminance(rng, level, (0.5, 0.9))
    garment = colour_with_luminance(rng, level * rng.uniform(0.92, 1.08), (0.5, 0.9))
    # Hues far enough apart to be seen as different colours at all (> 45 degrees).
    while np.abs(background - garment).max() < 0.25:
        garment = colour_with_luminance(rng, level * rng.uniform(0.92, 1.08), (0.5, 0.9))
    canvas = plain(background)
    place_garment(canvas, image28, garment, rng.uniform(0.15, 0.3),
                  rng.uniform(0.9, 1.05), rng.uniform(-3, 3), rng.uniform(-8, 8, 2))
    return camera(rng, canvas)


def low_contrast(image28, rng):
    level = rng.uniform(0.6, 0.9)
    canvas = plain(grey(level))
    place_garment(canvas, image28, grey(level * rng.uniform(0.72, 0.85)),
                  rng.uniform(0.1, 0.2), rng.uniform(0.9, 1.05), rng.uniform(-3, 3),
                  rng.uniform(-8, 8, 2))
    return camera(rng, canvas)


def placement(image28, rng):
    """Off-centre by up to 12% of the box, turned up to 15 degrees, 0.6-1.3x the usual size."""
    canvas = plain(grey(rng.uniform(*LIGHT_WALL)))
    colour, shading = dark_cloth(rng)
    place_garment(canvas, image28, colour, shading, rng.uniform(0.6, 1.3),
                  rng.uniform(-15, 15), rng.uniform(-0.12, 0.12, 2) * BOX.side)
    return camera(rng, canvas)


def hand_at_edge(image28, rng):
    """Held by one hand whose fingers overlap the garment's side, arm out of the box."""
    canvas = plain(grey(rng.uniform(*LIGHT_WALL)))
    colour, shading = dark_cloth(rng)
    garment = place_garment(canvas, image28, colour, shading, rng.uniform(0.9, 1.0),
                            rng.uniform(-3, 3), rng.uniform(-6, 6, 2))
    ys, xs = np.nonzero(garment)
    side = rng.integers(0, 3)                       # left, right or bottom edge
    if side == 0:
        palm, direction = (xs.min() - 45, rng.uniform(ys.min() + 20, ys.max() - 20)), 0.0
    elif side == 1:
        palm, direction = (xs.max() + 45, rng.uniform(ys.min() + 20, ys.max() - 20)), np.pi
    else:
        palm, direction = (rng.uniform(xs.min() + 20, xs.max() - 20), ys.max() + 45), -np.pi / 2
    paint(canvas, hand_mask(palm, direction + rng.uniform(-0.3, 0.3), rng), skin(rng))
    return camera(rng, canvas)


def mirrored(image28, rng):
    """Everything (footwear included) facing the other way: the camera frame is mirrored."""
    scene = plain_light(image28, rng)
    scene.mirrored = True
    return scene


def background(rng):
    """A plain light, plain dark or patterned background for the negative scenes."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return plain(grey(rng.uniform(0.7, 0.95)))
    if kind == 1:
        return plain(colour_with_luminance(rng, rng.uniform(0.06, 0.25), (0.0, 0.5)))
    return textured(rng, colour_with_luminance(rng, rng.uniform(0.5, 0.85), (0.0, 0.5)))


def empty_box(image28, rng):
    return camera(rng, background(rng))


def hand_only(image28, rng):
    canvas = background(rng)
    palm = (BOX.x + BOX.side / 2 + rng.uniform(-40, 40), BOX.y + BOX.side / 2 + rng.uniform(0, 60))
    paint(canvas, hand_mask(palm, -np.pi / 2 + rng.uniform(-0.6, 0.6), rng), skin(rng))
    return camera(rng, canvas)


def texture_only(image28, rng):
    """A patterned surface (a sofa, a cushion up close) filling the box."""
    canvas = textured(rng, colour_with_luminance(rng, rng.uniform(0.3, 0.8), (0.0, 0.7)))
    canvas *= pattern(rng, rng.uniform(0.1, 0.25))[..., None]
    return camera(rng, np.clip(canvas, 0, 1))


def face_like(image28, rng):
    canvas = background(rng)
    face_mask(canvas, rng)
    return camera(rng, canvas)


def cushion_mask(rng):
    """A cushion held up in the box: a rounded square (0.55-0.8 of the box, a little taller or
    wider), turned up to 15 degrees; also how far each pixel lies from its edge, in pixels."""
    side = BOX.side * rng.uniform(0.55, 0.8)
    width, height = int(side), int(side * rng.uniform(0.8, 1.2))
    flat = rounded_rectangle(width, height, int(side * rng.uniform(0.1, 0.25)))
    inside = cv2.distanceTransform(flat, cv2.DIST_L2, 5)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-15, 15), 1.0)
    matrix[:, 2] += (BOX.x + (BOX.side - width) / 2 + rng.uniform(-15, 15),
                     BOX.y + (BOX.side - height) / 2 + rng.uniform(-15, 15))
    mask = cv2.warpAffine(flat.astype(np.float32), matrix, (WIDTH, HEIGHT)) > 0.5
    return mask, cv2.warpAffine(inside, matrix, (WIDTH, HEIGHT)), side


def cushion(image28, rng):
    """Not a garment, though a square one looks like a bag: plain or patterned cloth, puffed
    (darker towards its seam), in front of a plain or patterned background."""
    canvas = background(rng)
    mask, inside, side = cushion_mask(rng)
    puff = 0.7 + 0.3 * np.clip(inside / (0.25 * side), 0, 1)
    cloth = colour_with_luminance(rng, rng.uniform(0.15, 0.8), (0.0, 0.8)) * puff[..., None]
    if rng.random() < 0.6:
        cloth = cloth * pattern(rng, rng.uniform(0.15, 0.35))[..., None]
    canvas[mask] = np.clip(cloth[mask], 0, 1)
    return camera(rng, canvas)


GARMENT_CONDITIONS = {
    "plain light background": plain_light,
    "light garment on dark": light_on_dark,
    "textured background": textured_background,
    "colour on colour": colour_on_colour,
    "low contrast": low_contrast,
    "off-centre, rotated, scaled": placement,
    "hand at the box edge": hand_at_edge,
    "mirrored (shoes face right)": mirrored,
}
NEGATIVE_CONDITIONS = {
    "empty box": empty_box,
    "hand only": hand_only,
    "texture only": texture_only,
    "face-like shape": face_like,
    "cushion": cushion,
}
CONDITIONS = {**GARMENT_CONDITIONS, **NEGATIVE_CONDITIONS}


# --------------------------------------------------------------------------- the camera

def fill_sensor_noise(out, sigma):
    """Fill the (H, W, 3) float32 array `out` with Gaussian noise of `sigma` in every channel.
    cv2.randn takes a mean and a sigma per channel: given one number, it fills the first
    channel (blue) alone, as every scene had until commit f2b50ac."""
    cv2.randn(out, (0.0,) * 3, (sigma,) * 3)


def expose(reflectance, light, noise_sigma, rng=None):
    """A plain camera frame (BGR uint8): `reflectance` (H, W, 3) lit by `light` (H, W), with
    Gaussian sensor noise (drawn from `rng`, else from OpenCV's generator: ~10x faster)."""
    frame = reflectance * light[..., None]
    if rng is None:
        noise = np.empty(frame.shape, np.float32)
        fill_sensor_noise(noise, noise_sigma)
    else:
        noise = rng.normal(0.0, noise_sigma, frame.shape).astype(np.float32)
    return cv2.convertScaleAbs(cv2.add(frame, noise))           # round and clip to uint8


def frames(scene, count, rng):
    """`count` BGR uint8 frames of `scene`: each with its own sensor noise and a tremble of
    up to 3 pixels, blurred and JPEG-compressed like a webcam's (a scene made by
    ideal_camera skips the blur, noise and JPEG and keeps the tremble)."""
    lit = (scene.reflectance * scene.light).astype(np.float32)
    if scene.blur_sigma > 0:
        lit = cv2.GaussianBlur(lit, (0, 0), scene.blur_sigma)
    # OpenCV's generator is ~10x faster than numpy's here; seeding it from `rng` keeps runs
    # repeatable.
    cv2.setRNGSeed(int(rng.integers(2**31)))
    noise = np.empty(lit.shape, np.float32)
    out = []
    for _ in range(count):
        shift = np.float32([[1, 0, rng.uniform(-3, 3)], [0, 1, rng.uniform(-3, 3)]])
        frame = cv2.warpAffine(lit, shift, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        if scene.noise_sigma > 0:
            fill_sensor_noise(noise, scene.noise_sigma)
            frame = cv2.add(frame, noise)
        frame = cv2.convertScaleAbs(frame)                       # round and clip to uint8
        if scene.mirrored:
            frame = cv2.flip(frame, 1)
        if scene.jpeg_quality is not None:
            _, encoded = cv2.imencode(".jpg", frame,
                                      [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
            frame = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        out.append(frame)
    return out


def ideal_camera(scene):
    """The same scene seen by a perfect camera: no blur, no sensor noise, no JPEG (the light
    stays uneven). Drawn from the same random numbers, so a benchmark run with it measures
    what the camera's artefacts cost, scene for scene."""
    return replace(scene, blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=None)


def render(condition, image28, rng, count=1, camera=None):
    """`count` frames of `image28` (ignored by negative conditions) under `condition`;
    `camera` (e.g. ideal_camera) may change the scene before it is filmed."""
    scene = CONDITIONS[condition](image28, rng)
    return frames(camera(scene) if camera else scene, count, rng)
