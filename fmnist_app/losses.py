"""The loss registry: LOSSES[name](config) returns fn(labels, logits) -> per-example loss.

`labels` are integer class ids, `logits` float32 (batch, 10).
"""

from fmnist_app.dataset import NUM_CLASSES
from fmnist_app.tf_quiet import tf


def _targets(labels, smoothing):
    one_hot = tf.one_hot(labels, NUM_CLASSES)
    return one_hot * (1.0 - smoothing) + smoothing / NUM_CLASSES


def cross_entropy(label_smoothing=0.0):
    def loss(labels, logits):
        return tf.nn.softmax_cross_entropy_with_logits(_targets(labels, label_smoothing), logits)
    return loss


def weighted_cross_entropy(class_weights, label_smoothing=0.0):
    """Cross-entropy with each example scaled by the weight of its true class."""
    weights = tf.constant(class_weights, tf.float32)
    plain = cross_entropy(label_smoothing)

    def loss(labels, logits):
        return plain(labels, logits) * tf.gather(weights, labels)
    return loss


def focal(gamma, alpha=1.0, label_smoothing=0.0):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p)^gamma per class term.

    With gamma=0 and alpha=1 it is exactly cross-entropy.
    """
    def loss(labels, logits):
        log_probs = tf.nn.log_softmax(logits)
        modulation = tf.pow(1.0 - tf.exp(log_probs), gamma)
        terms = -_targets(labels, label_smoothing) * modulation * log_probs
        return alpha * tf.reduce_sum(terms, axis=-1)
    return loss


LOSSES = {
    "ce": lambda c: cross_entropy(c.LABEL_SMOOTHING),
    "weighted_ce": lambda c: weighted_cross_entropy(c.CLASS_WEIGHTS, c.LABEL_SMOOTHING),
    "focal": lambda c: focal(c.FOCAL_GAMMA, c.FOCAL_ALPHA, c.LABEL_SMOOTHING),
}


def with_outlier_exposure(loss, weight):
    """Examples labelled NUM_CLASSES are not garments: their loss is the cross-entropy to the
    uniform distribution (Hendrycks et al. 2019), times `weight`; the rest keep `loss`."""
    def wrapped(labels, logits):
        outlier = labels >= NUM_CLASSES
        garment_loss = loss(tf.where(outlier, tf.zeros_like(labels), labels), logits)
        uniform_loss = -tf.reduce_mean(tf.nn.log_softmax(logits), axis=-1)
        return tf.where(outlier, weight * uniform_loss, garment_loss)
    return wrapped


def create_loss(config):
    if config.LOSS not in LOSSES:
        raise ValueError(f"unknown loss {config.LOSS!r}; known losses: {', '.join(LOSSES)}")
    loss = LOSSES[config.LOSS](config)
    if config.OUTLIER_FRACTION:
        loss = with_outlier_exposure(loss, config.OUTLIER_WEIGHT)
    return loss
