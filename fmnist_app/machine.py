"""What CPU this is: every timing the project records is named with it."""

import platform
from pathlib import Path


def cpu_model():
    """The CPU's model name as lscpu shows it (Linux), else what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
