"""Import TensorFlow without its C++ start-up chatter on stderr."""

import os
import sys


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA probes) sent to /dev/null.

    TF 2.21 prints those lines through absl before its log level is read, so
    TF_CPP_MIN_LOG_LEVEL alone cannot silence them, and they would bury a one-line error.
    Python exceptions from the import still reach stderr: the descriptor is restored first.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
