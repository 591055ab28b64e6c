"""The Keras scorer with the options benchmarked against it (not used by slapp itself):
XLA compilation (``jit``) and oneDNN bfloat16 matrix arithmetic (``bfloat16``, process-wide:
CPUs with AVX-512 BF16 / AMX). Measured in ``bench/predict_speed.py`` and
``bench/bf16_folds.py``; neither became a default."""

from __future__ import annotations



def option_scorer(model, *, jit: bool = False, bfloat16: bool = False):
    """:class:`slapp.models.inference.Scorer` of ``model``, traced with XLA and/or run in
    bfloat16."""
    import tensorflow as tf

    from slapp.models.inference import Scorer

    if bfloat16:
        tf.config.optimizer.set_experimental_options(
            {"auto_mixed_precision_onednn_bfloat16": True})
    scorer = Scorer(model)
    if jit:
        scorer._fn = tf.function(lambda x: model(x, training=False), jit_compile=True,
                                 input_signature=[tf.TensorSpec(scorer.shape, tf.float32)])
    return scorer



