"""Training precision: the Keras mixed-precision policy the encoder is built under.

`training_precision("bfloat16")` builds the layers created inside it with tf_keras' `mixed_bfloat16`
policy: they compute in bfloat16 and keep float32 variables, which the optimizer updates (float32
master weights). bfloat16 has float32's exponent range, so no loss scaling is needed. Heads and losses
stay float32 (the task models cast their logits), as Keras' mixed-precision guide advises: a softmax or a cross-entropy
in bfloat16 loses precision for nothing.

One op stays float32 inside the bfloat16 encoder: the feed-forward activation (GELU), which
`activations_in_float32` wraps in casts. TensorFlow's bfloat16 `Erfc` took 231 ms a training step
against 63 ms in float32 with the casts, and the step ran 1.07x faster with them, on a 2-core Xeon
with AMX (benchmarks/training_step.py; benchmarks/README.md#where-a-training-steps-time-goes).

The variables stay float32, so what a run saves (Keras folders, Hugging Face layout, exports) is the
same whatever the training precision; an export's own precision is `export_saved_model(precision=...)`.
"""

import contextlib

import tensorflow as tf
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


def activations_in_float32(main_layer):
    """Computes the feed-forward activation of a bfloat16 TFBertMainLayer's layers in float32, between
    casts (see the module docstring); float32 layers are left as they are.

    Args:
        main_layer: transformers TFBertMainLayer, built or not.
    """
    for layer in main_layer.encoder.layer:
        intermediate = layer.intermediate
        if intermediate.compute_dtype == "float32":
            continue
        activation = intermediate.intermediate_act_fn
        intermediate.intermediate_act_fn = (
            lambda x, activation=activation: tf.cast(activation(tf.cast(x, tf.float32)), x.dtype))
