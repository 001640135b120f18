"""Training precision: the Keras mixed-precision policy the encoder is built under.

`training_precision("bfloat16")` builds the layers created inside it with tf_keras' `mixed_bfloat16`
policy: they compute in bfloat16 and keep float32 variables, which the optimizer updates (float32
master weights). bfloat16 has float32's exponent range, so no loss scaling is needed. Heads and losses
stay float32 (the task models cast their logits), as Keras' mixed-precision guide advises: a softmax or a cross-entropy
in bfloat16 loses precision for nothing.

One op stays float32 inside the bfloat16 encoder: the feed-forward activation (GELU), which
`tfbert.models.training_ops` computes in float32 between casts (TensorFlow's bfloat16 `Erfc` is slow).

The variables stay float32, so the weights a run saves (Keras folders, Hugging Face layout) are the
same whatever the training precision. A Keras folder keeps the policy in its config, so a bfloat16 model
loads back in bfloat16. An export computes in its own precision, `export_saved_model(precision=...)`,
whatever the model's policy (`float32_twin`).
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
    with policy_scope(TRAINING_PRECISIONS[precision]):
        yield


@contextlib.contextmanager
def policy_scope(policy):
    """Builds the Keras layers created inside with `policy` (a tf_keras policy name or Policy), as the
    global policy; the previous global policy comes back on exit."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)


def float32_twin(model):
    """`model` if it computes in float32; else a copy of it built in float32, with the same weights.

    An export computes in its own precision: under `mixed_bfloat16`, a layer reads its float32
    variables as bfloat16 and casts its inputs to bfloat16, which tfbert's inference graph, written
    for one dtype a tensor, does not expect. The copy comes from the model's config with every mixed
    policy made float32 (tf_keras has no public way to change a built layer's policy).

    Args:
        model: tf_keras.Model whose config round-trips (BertEncoder, BertClassifier). Anything else is
            returned as it is.
    """
    if not isinstance(model, tf_keras.Model) or not any(_is_mixed(layer.dtype_policy) for layer in model.submodules
                                                         if isinstance(layer, tf_keras.layers.Layer)):
        return model
    with policy_scope("float32"):
        twin = type(model).from_config(_float32_config(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin


def _is_mixed(policy):
    return policy.compute_dtype != policy.variable_dtype


def _float32_config(config):
    """A Keras config (nested dicts and lists) with every mixed-precision "dtype" made "float32"."""
    if isinstance(config, list):
        return [_float32_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    copy = {key: _float32_config(value) for key, value in config.items()}
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # a serialized Policy: {"class_name": "Policy", "config": {"name": ...}}
        dtype = dtype.get("config", {}).get("name")
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        copy["dtype"] = "float32"
    return copy
