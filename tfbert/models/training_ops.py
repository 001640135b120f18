"""Faster training kernels for transformers' BERT layers: the same math in fewer passes over memory.

A fine-tuning step of the default checkpoint spends most of its time outside the matrix multiplications
once these run in bfloat16 (benchmarks/training_step.py). Two of the element-wise costs are the
feed-forward activation and dropout; `use_training_ops(model)` replaces both in a transformers model's
layers, in every precision:
- `gelu`: exact GELU, `x * Phi(x)`, computed in float32 whatever the input dtype (TensorFlow's bfloat16
  `Erfc` kernel is slow), with a hand-written gradient `dy * (Phi(x) + x * phi(x))` compiled by XLA
  into one loop. transformers' TensorFlow GELU autodifferentiates into about ten element-wise ops,
  each a pass over the [batch, length, intermediate_size] tensor. The forward pass stays plain
  TensorFlow ops, so predictions and exports never run XLA (an export's function library keeps the
  gradient, for training through a loaded export). XLA compiles the gradient once per input shape.
- `Dropout`: Keras' inverted dropout drawing 16 random bits a unit (two a `uint32` of TensorFlow's
  stateless Philox) instead of a uniform float of the compute dtype, and applying a mask of the compute
  dtype, one multiplication each way. A unit is dropped with probability `round(rate * 65536) / 65536`,
  within 1/131072 of `rate`, and kept units are scaled by the inverse of the exact keep probability,
  so the expected output equals the input.
See benchmarks/README.md#where-a-training-steps-time-goes for what each saves.
Other activations (`gelu_new`, `relu`, ...) keep transformers' code; under bfloat16 they compute in
float32 between casts.
"""

import tensorflow as tf
import tf_keras

from tfbert.errors import check_dropout

SQRT_HALF = 0.7071067811865476
INVERSE_SQRT_TWO_PI = 0.3989422804014327
RANDOM_BITS = 16


@tf.function(jit_compile=True)
def _gelu_gradient(inputs, upstream):
    x = tf.cast(inputs, tf.float32)
    derivative = 0.5 * tf.math.erfc(x * -SQRT_HALF) + x * tf.exp(-0.5 * tf.square(x)) * INVERSE_SQRT_TWO_PI
    return tf.cast(tf.cast(upstream, tf.float32) * derivative, inputs.dtype)


@tf.custom_gradient
def gelu(inputs):
    """Exact GELU, `0.5 * x * erfc(-x / sqrt(2))` (transformers' "gelu"), in float32 between casts, with
    an XLA-compiled gradient. Returns the input's dtype."""
    x = tf.cast(inputs, tf.float32)
    outputs = tf.cast(x * (0.5 * tf.math.erfc(x * -SQRT_HALF)), inputs.dtype)
    return outputs, lambda upstream: _gelu_gradient(inputs, upstream)


@tf_keras.saving.register_keras_serializable(package="tfbert")
class Dropout(tf_keras.layers.Layer):
    """Inverted dropout from 16-bit random draws (see the module docstring); inference passes inputs through.

    Args:
        rate: float in [0, 1). The fraction of units to drop while training.
        **kwargs: Keras layer arguments (name, dtype).
    """

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_dropout("rate", rate)
        self.dropped = round(rate * 2**RANDOM_BITS)  # draws (out of 2**16) that drop a unit

    def call(self, inputs, training=None):
        if not self.dropped:
            return inputs
        if tf.is_tensor(training):
            return tf.cond(training, lambda: self._drop(inputs), lambda: tf.identity(inputs))
        return self._drop(inputs) if training else inputs

    def _drop(self, inputs):
        size = tf.size(inputs)
        seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)  # a new mask every step
        words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32)
        draws = tf.reshape(tf.reshape(tf.bitcast(words, tf.int16), [-1])[:size], tf.shape(inputs))
        keep = draws >= self.dropped - 2 ** (RANDOM_BITS - 1)  # int16 draws are uniform on [-2**15, 2**15)
        scale = 2**RANDOM_BITS / (2**RANDOM_BITS - self.dropped)
        mask = tf.where(keep, tf.constant(scale, inputs.dtype), tf.constant(0, inputs.dtype))
        return inputs * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


def use_training_ops(model):
    """Gives a transformers TensorFlow BERT model's layers `gelu` (when `hidden_act` is "gelu") and
    `Dropout`, before or after it is built; see the module docstring.

    Args:
        model: a transformers TensorFlow BERT model or TFBertMainLayer.
    """
    for layer in list(model.submodules):
        if hasattr(layer, "intermediate_act_fn"):
            _use_activation(layer, model.config.hidden_act)
        for name, value in list(vars(layer).items()):
            if type(value) is tf_keras.layers.Dropout:
                setattr(layer, name, Dropout(value.rate, name=value.name, dtype=value.dtype_policy))


def _use_activation(intermediate, hidden_act):
    if hidden_act == "gelu":
        intermediate.intermediate_act_fn = gelu
    elif intermediate.compute_dtype != "float32":
        activation = intermediate.intermediate_act_fn
        intermediate.intermediate_act_fn = (
            lambda x, activation=activation: tf.cast(activation(tf.cast(x, tf.float32)), x.dtype))
