"""Training precision: the Keras mixed-precision policy the encoder is built under.

`training_precision("bfloat16")` builds the layers created inside it with tf_keras' `mixed_bfloat16`
policy: they compute in bfloat16 and keep float32 variables, which the optimizer updates (float32
master weights). bfloat16 has float32's exponent range, so no loss scaling is needed. Heads and losses
stay float32 (the task models cast their logits), as Keras' mixed-precision guide advises: a softmax or a cross-entropy
in bfloat16 loses precision for nothing.

One op stays float32 inside the bfloat16 encoder: the feed-forward activation (GELU), which
`tfbert.models.training_ops` computes in float32 between casts (TensorFlow's bfloat16 `Erfc` is slow).

The variables stay float32, so what a run saves (Keras folders, Hugging Face layout, exports) is the
same whatever the training precision; an export's own precision is `export_saved_model(precision=...)`.
"""

import contextlib

import tf_keras

from tfbert.errors import check_choice

TRAINING_PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # precision: Keras policy


@contextlib.contextmanager
def training_precision(precision):
    """Builds the Keras layers created inside with the policy of `precision` ("float32" or "bfloat16").

    Args:
        precision: str. "float32", or "bfloat16": compute in bfloat16 with float32 variables.

    Example:
    >>> with training_precision("bfloat16"):  # doctest: +SKIP
    ...     bert = load_bert_model(checkpoint)
    """
    check_choice("precision", precision, tuple(TRAINING_PRECISIONS))
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(TRAINING_PRECISIONS[precision])
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)
