"""May the frozen graph run in bfloat16 on this CPU? Speed and per-class table, both ways.

    python perf/reduced_precision.py [--model output_dir/final_model/frozen_inference_graph.pb]

The graph stays float32 on disk. TensorFlow's grappler pass
`auto_mixed_precision_onednn_bfloat16` can run its convolutions and matmuls in bfloat16 on
CPUs with bf16 units. The rule we hold it to: the per-class test accuracy must not move by
more than 0.05 points (less than one image of 1,000 per class), else benchmark.py and the
demo stay in float32. Prints throughput and latency both ways (benchmark.py's own timing),
the images whose answer changed and the verdict. (TF_SET_ONEDNN_FPMATH_MODE=BF16 was also
tried: no effect on these ops.)
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from fmnist_app.dataset import CLASS_NAMES, SHIPPED_GRAPH, load_split  # noqa: E402
from fmnist_app.evaluation import class_metrics, confusion_matrix, timed_predictions  # noqa: E402
from fmnist_app.inference import FrozenModel  # noqa: E402
from fmnist_app.machine import cpu_model  # noqa: E402

ALLOWED_CHANGE = 0.05       # percentage points per class


def run(model, images, labels):
    """Per-class accuracy (%), predictions and benchmark.py's own timing of one pass."""
    logits, _, timing = timed_predictions(model, images)
    predictions = logits.argmax(axis=1)
    _, per_class = class_metrics(confusion_matrix(labels, predictions))
    return np.array([100 * c["accuracy"] for c in per_class]), predictions, timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / SHIPPED_GRAPH))
    args = parser.parse_args()
    images, labels = load_split("test")
    before, plain, plain_timing = run(FrozenModel(args.model), images, labels)
    after, reduced, reduced_timing = run(FrozenModel(args.model, bfloat16=True), images, labels)
    plain_rate = plain_timing["images_per_second"]
    reduced_rate = reduced_timing["images_per_second"]
    print(f"CPU: {cpu_model()}; model {args.model}")
    print(f"{'class':22} {'float32':>8} {'bfloat16':>9}")
    for name, a, b in zip(CLASS_NAMES, before, after):
        print(f"{name:22} {a:8.1f} {b:9.1f}")
    print(f"{'overall':22} {100 * np.mean(plain == labels):8.2f} "
          f"{100 * np.mean(reduced == labels):9.2f}")
    print(f"throughput: float32 {plain_rate:.0f} img/s, bfloat16 {reduced_rate:.0f} img/s "
          f"({reduced_rate / plain_rate:.2f}x); {int(np.sum(plain != reduced))} of {len(labels)} "
          "answers changed")
    print(f"single-image latency: float32 {plain_timing['latency_ms_median']:.2f} ms, "
          f"bfloat16 {reduced_timing['latency_ms_median']:.2f} ms")
    largest = float(np.max(np.abs(after - before)))
    verdict = "allowed" if largest <= ALLOWED_CHANGE else "not allowed"
    print(f"largest per-class change {largest:.2f} points (limit {ALLOWED_CHANGE}): "
          f"bfloat16 inference {verdict}")


if __name__ == "__main__":
    main()
