"""What CPU this is: every timing the project records is named with it."""

import platform
from pathlib import Path

# Either set of units runs bfloat16 matmuls natively; without them TensorFlow emulates
# bfloat16 and mixed_bfloat16 training runs about ten times slower than float32 (fastnet:
# 17 against 179 img/s on a Zen 2 EPYC, perf/train_speed.py).
BFLOAT16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpuinfo():
    """The first processor's fields from /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def has_native_bfloat16(fields=None):
    """Whether the CPU (or the given cpuinfo fields) lists bfloat16 units."""
    fields = cpuinfo() if fields is None else fields
    return bool(BFLOAT16_FLAGS & set(fields.get("flags", "").split()))


def cpu_model(fields=None):
    """The CPU as lscpu names it, with family and model, which tell apart machines that share
    a model name ("AMD EPYC" has been Zen 2 and Zen 4), and whether it has bfloat16 units."""
    fields = cpuinfo() if fields is None else fields
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine() or "unknown CPU"
    family, model = fields.get("cpu family", "?"), fields.get("model", "?")
    units = "bf16" if has_native_bfloat16(fields) else "no bf16"
    return f"{name} (family {family}, model {model}, {units})"
