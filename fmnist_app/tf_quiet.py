"""The one way this project imports TensorFlow and Keras: `from fmnist_app.tf_quiet import tf`.

TF 2.21 prints its C++ start-up chatter (oneDNN notes, CUDA probes) through absl before
TF_CPP_MIN_LOG_LEVEL is read, so the variable alone cannot silence it, and it would bury a
one-line error. The import below runs with stderr pointed at /dev/null; Python exceptions
from the import still reach stderr, because the descriptor is restored before they surface.
Modules that must stay light (the GUI, the config check) import this inside functions.
"""

import os
import sys


class quiet_stderr:
    """Run the block with file descriptor 2 pointed at /dev/null (C++ logging included).

    A class, not a @contextmanager generator: with the generator, the test of Ctrl-C during
    the TensorFlow import (tests/test_faults.py) failed in 2 of 7 runs on EPYC-C (the
    one-line message lost after a minute's hang); with this class, 0 of 10, as with the
    try/finally it replaced. Why the generator differs is not pinned down."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        return False


def _import_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import keras
        import tensorflow
    return tensorflow, keras


tf, keras = _import_quietly()
