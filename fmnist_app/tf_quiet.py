"""The one way this project imports TensorFlow and Keras: `from fmnist_app.tf_quiet import tf`.

TF 2.21 prints its C++ start-up chatter (oneDNN notes, CUDA probes) through absl before
TF_CPP_MIN_LOG_LEVEL is read, so the variable alone cannot silence it, and it would bury a
one-line error. The import below runs with stderr pointed at /dev/null; Python exceptions
from the import still reach stderr, because the descriptor is restored before they surface.
Modules that must stay light (the GUI, the config check) import this inside functions.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_stderr():
    """Run the block with file descriptor 2 pointed at /dev/null (C++ logging included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import keras
        import tensorflow
    return tensorflow, keras


tf, keras = _import_quietly()
