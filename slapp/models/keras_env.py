"""Import Keras (TensorFlow backend) once, quietly.

TensorFlow prints several lines of C++ start-up chatter on stderr (oneDNN, absl) that mean
nothing to our users; they are swallowed here. If the import fails, what it printed is
shown with the error.
"""

from __future__ import annotations

import os
import sys
import tempfile

_keras = None


def import_keras():
    """Return the ``keras`` module, importing TensorFlow without its start-up chatter."""
    global _keras
    if _keras is not None:
        return _keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            tf.constant(0.0) + 1.0  # first op: more one-off chatter
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    _keras = keras
    return keras
