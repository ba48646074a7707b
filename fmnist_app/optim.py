"""Optimizers, learning-rate schedules and the weight moving average, each a registry the
config's OPTIMIZER / LR_SCHEDULE values are checked against."""

import contextlib

from fmnist_app.tf_quiet import keras, tf


def cosine(config, peak):
    """Linear warm-up from peak/100 over WARMUP_STEPS, then cosine decay to 0 at STEPS."""
    warmup = min(config.WARMUP_STEPS, config.STEPS - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100 if warmup else peak,
        decay_steps=config.STEPS - warmup, alpha=0.0,
        warmup_target=peak if warmup else None, warmup_steps=warmup)


def exponential(config, peak):
    """Multiply the rate by DECAY_RATE every DECAY_STEPS steps."""
    return keras.optimizers.schedules.ExponentialDecay(
        peak, config.DECAY_STEPS, config.DECAY_RATE, staircase=True)


SCHEDULES = {"cosine": cosine, "exponential": exponential}
OPTIMIZERS = {
    "adam": lambda config, schedule: keras.optimizers.Adam(schedule),
    "adamw": lambda config, schedule: keras.optimizers.AdamW(
        schedule, weight_decay=config.WEIGHT_DECAY),
    # Nesterov momentum, airbench's choice for short runs; Keras decouples the decay here too.
    "sgd": lambda config, schedule: keras.optimizers.SGD(
        schedule, momentum=0.9, nesterov=True, weight_decay=config.WEIGHT_DECAY or None),
}


def learning_rate_schedule(config, lr_scale=1):
    """The configured schedule; `lr_scale` multiplies the rate (one factor per replica)."""
    return SCHEDULES[config.LR_SCHEDULE](config, config.LEARNING_RATE * lr_scale)


def make_optimizer(config, lr_scale=1):
    return OPTIMIZERS[config.OPTIMIZER](config, learning_rate_schedule(config, lr_scale))


class WeightAverage:
    """Exponential moving average of all model weights (trainable and batch-norm stats).

    The effective decay ramps up as min(decay, (1 + n) / (10 + n)) so short runs work too.
    """

    def __init__(self, model, decay):
        self.model, self.decay = model, decay
        self.shadow = [tf.Variable(w, trainable=False) for w in model.weights]

    def update(self, step):
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for avg, w in zip(self.shadow, self.model.weights):
            avg.assign(decay * avg + (1.0 - decay) * tf.cast(w, avg.dtype))

    @contextlib.contextmanager
    def applied(self):
        """Temporarily load the averaged weights into the model."""
        saved = [w.numpy() for w in self.model.weights]
        for w, avg in zip(self.model.weights, self.shadow):
            w.assign(avg)
        try:
            yield
        finally:
            for w, value in zip(self.model.weights, saved):
                w.assign(value)
