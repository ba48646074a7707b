"""How unlike the garments the model was trained on an image is: the novelty score.

A classifier's confidence is a poor judge of things it was never shown: a face or a coffee
cup filling the guide box comes out of the preprocessing as a textured block, and the model
calls it "Bag" at 97% (perf/real_photos.py). Its last hidden layer says more: the garments of
one class lie together there, and other things fall away from every class. The score is the
squared Mahalanobis distance of an image's features (the frozen graph's `features` output)
to the nearest class mean, under one covariance shared by the ten classes (Lee et al. 2018),
fitted on the run's training images. Its threshold is fitted like the confidence threshold,
on held-out garments seen through the camera path (fmnist_app.calibrate). TensorFlow-free.
"""

import numpy as np

# Added to the covariance's diagonal, relative to its mean variance, so that features which
# barely vary over the training images do not blow up the inverse.
RIDGE = 1e-3


def fit(features, labels, classes):
    """(class means (classes, width), shared precision matrix (width, width))."""
    features, labels = np.asarray(features, np.float64), np.asarray(labels)
    missing = [c for c in range(classes) if not np.any(labels == c)]
    if missing:
        raise ValueError(f"no training images of class(es) {missing} to fit the novelty "
                         "score on")
    means = np.stack([features[labels == c].mean(axis=0) for c in range(classes)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    covariance += RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    return means, np.linalg.inv(covariance)


def scores(features, means, precision):
    """Squared Mahalanobis distance of each row of `features` to the nearest class mean.

    Expanded as f'Pf - 2 f'P m + m'P m: three matrix products instead of one (N, classes,
    width, width) sum, which takes seconds on the 10,000 test images."""
    features = np.asarray(features, np.float64)
    projected = features @ precision
    distances = (np.einsum("nd,nd->n", projected, features)[:, None]
                 - 2 * projected @ means.T
                 + np.einsum("cd,cd->c", means @ precision, means)[None])
    return np.maximum(distances, 0).min(axis=1)
