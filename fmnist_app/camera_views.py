"""Training garments as the demo sees them: rendered into a camera frame, then preprocessed.

The model is trained on Fashion-MNIST's clean product shots, but in the demo it is shown what
`preprocess.analyse_crop` makes of a webcam frame: the same garment, rebuilt from a blurred,
noisy, unevenly lit, JPEG-compressed view, trimmed along a threshold. A share of each training
batch drawn from these "camera views" closes that gap (CAMERA_FRACTION in the config).

Views are rendered from *training* images only (the scene benchmark renders test images), one
frame each under a random garment condition of `fmnist_app.scenes`, seeded per image so a bank
is the same whatever the thread order. Views the preprocessing refuses (box empty, something
reaching in) are dropped: the demo never classifies them either.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fmnist_app import scenes
from fmnist_app.preprocess import FOUND, prepare_frame

THREADS = 2              # OpenCV and numpy release the GIL: 1.4x on two cores


def camera_view(image28, rng, condition_p=None):
    """The 28x28 uint8 model input for one rendered frame of `image28`, or None when the
    preprocessing finds no garment in it. `condition_p`: the probability of each garment
    condition (scenes.GARMENT_CONDITIONS order); None: all alike."""
    condition = rng.choice(list(scenes.GARMENT_CONDITIONS), p=condition_p)
    _, view, outcome = prepare_frame(scenes.render(condition, image28, rng)[0], scenes.BOX)
    return view if outcome == FOUND else None


def make_camera_views(count, seed, images, labels, condition_weights=None):
    """(views (N, 28, 28) uint8, labels (N,)) for `count` training images drawn with `seed`;
    N <= count (refused views are dropped). `condition_weights`: how often each garment
    condition is drawn (scenes.GARMENT_CONDITIONS order); None or all equal: uniformly."""
    chosen = np.random.default_rng(seed).choice(len(images), min(count, len(images)),
                                                replace=False)
    # Equal weights draw as no weights do (numpy draws differently once given p), so the
    # banks made before weights existed come out the same for the same seed.
    condition_p = None
    if condition_weights is not None and len(set(condition_weights)) > 1:
        condition_p = np.asarray(condition_weights, np.float64) / sum(condition_weights)

    def view_of(index):
        return camera_view(images[index], np.random.default_rng([seed, int(index)]),
                           condition_p)

    pool = ThreadPoolExecutor(THREADS)
    try:
        results = list(pool.map(view_of, chosen))
    finally:
        # On Ctrl-C or an error, drop the views not started yet instead of rendering them all.
        pool.shutdown(wait=True, cancel_futures=True)
    kept = [i for i, view in enumerate(results) if view is not None]
    views = np.stack([results[i] for i in kept]) if kept else np.zeros((0, 28, 28), np.uint8)
    return views, labels[chosen[kept]]
