"""Fashion-MNIST online augmentation and the tf.data pipelines.

Images travel through the pipeline as float32 in 0..255 with shape (batch, 28, 28, 1);
scaling to 0..1 happens inside the model, so the frozen graph takes raw pixels too.
Reading the IDX files and the dataset facts live in fmnist_app.dataset (TensorFlow-free).
"""

import numpy as np

from fmnist_app.dataset import FOOTWEAR_CLASSES, IMAGE_SIZE
from fmnist_app.tf_quiet import tf

# --------------------------------------------------------------------------- augmentation
# Each function takes a batch (B, 28, 28, 1) float32 in 0..255 and changes each image
# independently with probability `prob`; the result keeps shape, dtype and range.

def _chosen(images, prob):
    """Per-image Bernoulli(prob) mask shaped (B, 1, 1, 1) for broadcasting."""
    batch = tf.shape(images)[0]
    return tf.reshape(tf.random.uniform([batch]) < prob, [-1, 1, 1, 1])


def add_noise(images, prob, stddev=12.0):
    """Gaussian noise (stddev in pixel units) on every pixel of the chosen images."""
    noisy = tf.clip_by_value(images + tf.random.normal(tf.shape(images), stddev=stddev), 0, 255)
    return tf.where(_chosen(images, prob), noisy, images)


def adjust_brightness(images, prob, max_delta=0.25):
    """Scale all pixels by 1 + u, u uniform in [-max_delta, max_delta]."""
    batch = tf.shape(images)[0]
    factor = 1.0 + tf.random.uniform([batch, 1, 1, 1], -max_delta, max_delta)
    return tf.where(_chosen(images, prob), tf.clip_by_value(images * factor, 0, 255), images)


def horizontal_flip(images, labels, prob, flip_footwear=False):
    """Mirror left-right. The dataset's footwear always faces left, so by default it is never
    flipped; `flip_footwear` flips it too, for a model that must read shoes facing either
    way (a shoe held up to a camera)."""
    chosen = _chosen(images, prob)
    if not flip_footwear:
        flippable = tf.reduce_all(
            tf.not_equal(tf.cast(labels, tf.int32)[:, None], FOOTWEAR_CLASSES), axis=1)
        chosen = tf.logical_and(chosen, tf.reshape(flippable, [-1, 1, 1, 1]))
    return tf.where(chosen, tf.reverse(images, axis=[2]), images)


def rotate(images, prob, max_degrees):
    """Turn the chosen images by a uniform angle in [-max_degrees, max_degrees] about the
    centre (bilinear, black fill): a garment held up by hand is rarely perfectly upright."""
    batch = tf.shape(images)[0]
    angles = tf.random.uniform([batch], -max_degrees, max_degrees) * (np.pi / 180)
    angles = tf.where(tf.reshape(_chosen(images, prob), [-1]), angles, 0.0)
    cos, sin = tf.cos(angles), tf.sin(angles)
    centre = (IMAGE_SIZE - 1) / 2.0
    # Each row maps an output pixel (x, y) to the input pixel it samples from.
    transforms = tf.stack([cos, -sin, centre - centre * cos + centre * sin,
                           sin, cos, centre - centre * sin - centre * cos,
                           tf.zeros([batch]), tf.zeros([batch])], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[IMAGE_SIZE, IMAGE_SIZE],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def erase_patch(images, prob, area=(0.02, 0.25), aspect=(0.3, 3.3), fill="noise"):
    """Random Erasing (Zhong et al. 2017): a rectangle of random area and aspect ratio.

    `fill` is "noise" (uniform 0..255 pixels) or a constant pixel value.
    """
    batch = tf.shape(images)[0]
    size = float(IMAGE_SIZE)
    target = tf.random.uniform([batch], *area) * size * size
    # Sample the aspect ratio log-uniformly so tall and wide patches are equally likely.
    ratio = tf.exp(tf.random.uniform([batch], np.log(aspect[0]), np.log(aspect[1])))
    height = tf.clip_by_value(tf.round(tf.sqrt(target * ratio)), 1, size)
    width = tf.clip_by_value(tf.round(tf.sqrt(target / ratio)), 1, size)
    top = tf.floor(tf.random.uniform([batch]) * (size - height + 1))
    left = tf.floor(tf.random.uniform([batch]) * (size - width + 1))
    coords = tf.range(size)
    rows = (coords[None, :] >= top[:, None]) & (coords[None, :] < (top + height)[:, None])
    cols = (coords[None, :] >= left[:, None]) & (coords[None, :] < (left + width)[:, None])
    patch = (rows[:, :, None] & cols[:, None, :])[..., None]
    if fill == "noise":
        filler = tf.random.uniform(tf.shape(images), 0, 255)
    else:
        filler = tf.fill(tf.shape(images), tf.cast(fill, tf.float32))
    return tf.where(patch & _chosen(images, prob), filler, images)


def crop(images, prob, pad=4):
    """Pad with black to (28+2*pad)^2, then take a random 28x28 window."""
    batch = tf.shape(images)[0]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    # Unchosen images get the centre window, which is the original image.
    offset_y = tf.random.uniform([batch], 0, 2 * pad + 1, dtype=tf.int32)
    offset_x = tf.random.uniform([batch], 0, 2 * pad + 1, dtype=tf.int32)
    chosen = tf.random.uniform([batch]) < prob
    offset_y = tf.where(chosen, offset_y, pad)
    offset_x = tf.where(chosen, offset_x, pad)
    window = tf.range(IMAGE_SIZE)
    rows = offset_y[:, None] + window[None, :]
    cols = offset_x[:, None] + window[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def augment_batch(images, labels, prob, erase_fill="noise", flip_footwear=False,
                  rotate_degrees=0.0, shifts_only=False):
    """All augmentations, each independently with probability `prob` per image
    (rotation only when `rotate_degrees` > 0); with `shifts_only`, pad-and-crop alone: the
    cheapest of them, for runs of a few minutes where the others cost more throughput than
    they give back."""
    if shifts_only:
        return crop(images, prob)
    images = add_noise(images, prob)
    images = adjust_brightness(images, prob)
    images = horizontal_flip(images, labels, prob, flip_footwear)
    if rotate_degrees > 0:
        images = rotate(images, prob, rotate_degrees)
    images = erase_patch(images, prob, fill=erase_fill)
    images = crop(images, prob)
    return images


# --------------------------------------------------------------------------- pipelines

def _as_float_batch(images, labels):
    return tf.cast(images, tf.float32)[..., None], tf.cast(labels, tf.int32)


def train_dataset(images, labels, batch_size, augment_prob, seed, erase_fill="noise",
                  flip_footwear=False, rotate_degrees=0.0, mixed_in=(), shifts_only=False):
    """Endless shuffled, batched and augmented stream of (images, labels).

    `mixed_in`: (images, labels, fraction) sources drawn as that share of the examples, e.g.
    camera views of garments (fmnist_app/camera_views.py) or outliers labelled NUM_CLASSES
    (losses.with_outlier_exposure); the main images make up the rest.
    Augmentation is mapped after batching so every op runs vectorised over a whole
    batch, in parallel with training, with prefetching.
    """
    def endless(images, labels, seed):
        ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
        return ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()

    sources = [(endless(images, labels, seed), 1.0)]
    for number, (extra_images, extra_labels, fraction) in enumerate(mixed_in, start=1):
        if fraction > 0 and len(extra_labels):
            sources.append((endless(extra_images, extra_labels, seed + number), fraction))
    main_share = 1.0 - sum(fraction for _, fraction in sources[1:])
    ds = sources[0][0] if len(sources) == 1 else tf.data.Dataset.sample_from_datasets(
        [source for source, _ in sources], [main_share] + [f for _, f in sources[1:]], seed=seed)

    def to_training_batch(images, labels):
        images, labels = _as_float_batch(images, labels)
        if augment_prob > 0:
            images = augment_batch(images, labels, augment_prob, erase_fill, flip_footwear,
                                   rotate_degrees, shifts_only)
        return images, labels

    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(to_training_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # Without tf.data's autotuning model: when the trainer let go of the stream after its last
    # step, the stream's destructor waited 50-60 s for that model's thread (py-spy: in
    # RootDataset::Iterator's destructor) in about half the fine-tunes, whose whole run takes
    # two minutes. The pipeline is as fast without it (python perf/augment_speed.py).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def eval_dataset(images, labels, batch_size=500):
    """One ordered pass over (images, labels), no augmentation."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    return ds.map(_as_float_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
