"""May the frozen graph run in bfloat16 on this CPU? Speed and per-class table, both ways.

    python perf/reduced_precision.py [--model output_dir/final_model/frozen_inference_graph.pb]

The graph stays float32 on disk. TensorFlow's grappler pass
`auto_mixed_precision_onednn_bfloat16` can run its convolutions and matmuls in bfloat16 on
CPUs with bf16 units. The rule we hold it to: the per-class test accuracy must not move by
more than 0.05 points (less than one image of 1,000 per class), else benchmark.py and the
demo stay in float32. Prints throughput both ways, the images whose answer changed and the
verdict. (TF_SET_ONEDNN_FPMATH_MODE=BF16 was also tried: no effect on these ops.)
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from fmnist_app.dataset import CLASS_NAMES, SHIPPED_GRAPH, load_split  # noqa: E402
from fmnist_app.inference import FrozenModel  # noqa: E402
from fmnist_app.machine import cpu_model  # noqa: E402
from fmnist_app.tf_quiet import tf  # noqa: E402

ALLOWED_CHANGE = 0.05       # percentage points per class


def timed(model, images):
    model.predict(images[:1000])                         # trace and warm up
    start = time.perf_counter()
    probabilities = model.predict(images)
    return probabilities.argmax(axis=1), len(images) / (time.perf_counter() - start)


def per_class(predictions, labels):
    return np.array([100 * np.mean(predictions[labels == c] == c) for c in range(len(CLASS_NAMES))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / SHIPPED_GRAPH))
    args = parser.parse_args()
    images, labels = load_split("test")
    plain, plain_rate = timed(FrozenModel(args.model), images)
    # Grappler reads its options when a function is first run, so a model loaded after
    # this line is rewritten and the one above is not.
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    reduced, reduced_rate = timed(FrozenModel(args.model), images)
    before, after = per_class(plain, labels), per_class(reduced, labels)
    print(f"CPU: {cpu_model()}; model {args.model}")
    print(f"{'class':22} {'float32':>8} {'bfloat16':>9}")
    for name, a, b in zip(CLASS_NAMES, before, after):
        print(f"{name:22} {a:8.1f} {b:9.1f}")
    print(f"{'overall':22} {100 * np.mean(plain == labels):8.2f} "
          f"{100 * np.mean(reduced == labels):9.2f}")
    print(f"throughput: float32 {plain_rate:.0f} img/s, bfloat16 {reduced_rate:.0f} img/s "
          f"({reduced_rate / plain_rate:.2f}x); {int(np.sum(plain != reduced))} of {len(labels)} "
          "answers changed")
    largest = float(np.max(np.abs(after - before)))
    verdict = "allowed" if largest <= ALLOWED_CHANGE else "not allowed"
    print(f"largest per-class change {largest:.2f} points (limit {ALLOWED_CHANGE}): "
          f"bfloat16 inference {verdict}")


if __name__ == "__main__":
    main()
