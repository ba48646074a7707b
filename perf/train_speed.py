"""Training throughput of every registered model, float32 and mixed_bfloat16, as a share of
what this CPU does on dense math, measured in the same run.

    python perf/train_speed.py [--models fastnet resnet] [--batch 128] [--steps 30] [--xla]

First the limit: a 2048x2048 matmul in TensorFlow in each precision (GFLOP/s). Then, per
model: images/s for full training steps (forward, backward, Adam update) on random data,
the multiply-accumulates per image, the achieved GFLOP/s (3 x 2 x MACs per image for forward
and backward) and that as a share of the matmul limit in the same precision. Shares, not
absolute speeds, compare machines: the CPU is printed with them.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from fmnist_app.machine import cpu_model
from fmnist_app.models import MODELS, create_model
from fmnist_app.tf_quiet import keras, tf


def macs_per_image(model):
    """Multiply-accumulates of the conv and dense layers for one image."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c_out * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return total


def training_images_per_second(name, precision, batch, steps, xla=False):
    keras.mixed_precision.set_global_policy(precision)
    model = create_model(name)
    optimizer = keras.optimizers.Adam(1e-3)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, 28, 28, 1)), tf.float32)
    labels = tf.constant(np.arange(batch) % 10)

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(3):  # trace and warm up
        step().numpy()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    step().numpy()
    seconds = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    return model, (steps + 1) * batch / seconds


def matmul_gflops(dtype, size=2048, repeats=10):
    """What TensorFlow's dense maths reaches here: size^3 multiply-adds per matmul."""
    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def product(x):
        return tf.linalg.matmul(x, x)

    product(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        result = product(a)
    result.numpy()
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--xla", action="store_true",
                        help="compile each training step with XLA (jit_compile) instead")
    args = parser.parse_args()
    limits = {"float32": matmul_gflops(tf.float32),
              "mixed_bfloat16": matmul_gflops(tf.bfloat16)}
    print(f"CPU: {cpu_model()}; matmul limit {limits['float32']:.0f} GFLOP/s float32, "
          f"{limits['mixed_bfloat16']:.0f} bfloat16"
          + ("; training steps compiled with XLA" if args.xla else ""))
    print(f"{'model':18s} {'params':>10s} {'MMACs/img':>10s} {'precision':>15s} "
          f"{'img/s':>8s} {'GFLOP/s':>8s} {'of limit':>9s}")
    for name in args.models:
        for precision in args.precisions:
            model, rate = training_images_per_second(name, precision, args.batch, args.steps,
                                                     args.xla)
            macs = macs_per_image(model)
            achieved = 6 * macs * rate / 1e9
            print(f"{name:18s} {model.count_params():10,d} {macs / 1e6:10.1f} {precision:>15s} "
                  f"{rate:8.0f} {achieved:8.1f} {100 * achieved / limits[precision]:8.0f}%",
                  flush=True)


if __name__ == "__main__":
    main()
