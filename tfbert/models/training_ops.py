"""Faster training kernels for transformers' BERT layers: the same math in fewer passes over memory.

A fine-tuning step of the default checkpoint spends most of its time outside the matrix multiplications
once these run in bfloat16 (benchmarks/training_step.py). Four of the element-wise costs are the
feed-forward activation, dropout, attention's softmax and layer normalisation; `use_training_ops(model)` replaces them in a
transformers model's layers, in every precision:
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
- `layer_norm_call`: Keras' LayerNormalization over the last axis, in float32 as Keras computes it under
  mixed precision (BERT's epsilon of 1e-12 keeps Keras off its fused kernel), with a gradient of one
  XLA-compiled loop (the input's, the scale's and the offset's) where TensorFlow's autodifferentiates
  the moments and the normalisation into a dozen passes over the [batch, length, hidden] tensor.
- `self_attention_call`: an encoder's self-attention (`TFBertSelfAttention.call`) that scales the
  queries rather than the scores (a tensor of `head_size` values a token and head rather than of
  `length`), adds the mask once (transformers adds 1e-9 too, which softmax ignores), and while training
  takes softmax and attention dropout together (`softmax_dropout`): the same forward ops, and a
  gradient of one XLA-compiled loop where TensorFlow's takes five passes over the
  [batch, heads, length, length] scores.
See benchmarks/README.md#where-a-training-steps-time-goes for what each saves.
Other activations (`gelu_new`, `relu`, ...) keep transformers' code; under bfloat16 they compute in
float32 between casts.
"""

import math
import types

import tensorflow as tf
import tf_keras
from transformers.models.bert.modeling_tf_bert import TFBertSelfAttention

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
        return self.while_training(inputs, training, tf.multiply, lambda inputs: inputs)

    def while_training(self, inputs, training, drop, otherwise):
        """`drop(inputs, self.mask(inputs))` when `training` (a bool, or a bool tensor), else
        `otherwise(inputs)`."""
        if tf.is_tensor(training):
            return tf.cond(training, lambda: drop(inputs, self.mask(inputs)), lambda: tf.identity(otherwise(inputs)))
        return drop(inputs, self.mask(inputs)) if training else otherwise(inputs)

    def mask(self, inputs):
        """A new mask for `inputs` (a tensor of their shape and dtype): 0 for a dropped unit, the inverse of
        the keep probability for a kept one."""
        size = tf.size(inputs)
        seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)  # a new mask every step
        words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32)
        draws = tf.reshape(tf.reshape(tf.bitcast(words, tf.int16), [-1])[:size], tf.shape(inputs))
        keep = draws >= self.dropped - 2 ** (RANDOM_BITS - 1)  # int16 draws are uniform on [-2**15, 2**15)
        scale = 2**RANDOM_BITS / (2**RANDOM_BITS - self.dropped)
        return tf.where(keep, tf.constant(scale, inputs.dtype), tf.constant(0, inputs.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@tf.function(jit_compile=True)
def _softmax_dropout_gradient(probs, keep, upstream):
    dropped = tf.cast(upstream, tf.float32) * tf.cast(keep, tf.float32)
    p = tf.cast(probs, tf.float32)
    return tf.cast(p * (dropped - tf.reduce_sum(dropped * p, axis=-1, keepdims=True)), probs.dtype)


def softmax_dropout(logits, keep):
    """`softmax(logits) * keep` over the last axis, with an XLA-compiled gradient (one loop, in float32
    whatever the dtype). Returns the logits' dtype.

    Args:
        logits: float tensor.
        keep: tensor of the logits' shape and dtype, a `Dropout.mask`.
    """

    @tf.custom_gradient
    def forward(logits):
        probs = tf.nn.softmax(logits)
        return probs * keep, lambda upstream: _softmax_dropout_gradient(probs, keep, upstream)

    return forward(logits)


@tf.function(jit_compile=True)
def _layer_norm_gradient(inputs, scale, upstream, epsilon):
    x, upstream = tf.cast(inputs, tf.float32), tf.cast(upstream, tf.float32)
    centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
    inverse = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True) + epsilon)
    normalised = centred * inverse
    outer = list(range(len(inputs.shape) - 1))
    scaled = upstream * scale
    gradient = inverse * (scaled - tf.reduce_mean(scaled, axis=-1, keepdims=True)
                          - normalised * tf.reduce_mean(scaled * normalised, axis=-1, keepdims=True))
    return tf.cast(gradient, inputs.dtype), tf.reduce_sum(upstream * normalised, outer), tf.reduce_sum(upstream, outer)


def layer_norm(inputs, scale, offset, epsilon):
    """Layer normalisation over the last axis, in float32 whatever the inputs' dtype, with an
    XLA-compiled gradient. Returns the inputs' dtype.

    Args:
        inputs: float tensor.
        scale, offset: float32 tensors of the last axis' size (gamma and beta).
        epsilon: float. Added to the variance.
    """

    @tf.custom_gradient
    def forward(inputs, scale, offset):
        x = tf.cast(inputs, tf.float32)
        centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
        inverse = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True) + epsilon)
        outputs = tf.cast(centred * inverse * scale + offset, inputs.dtype)
        return outputs, lambda upstream: _layer_norm_gradient(inputs, scale, upstream, epsilon)

    return forward(inputs, scale, offset)


def layer_norm_call(self, inputs):
    """`tf_keras.layers.LayerNormalization.call` as `layer_norm`, for float32 weights over the last axis
    with a scale and an offset; else Keras' own."""
    inputs = tf.cast(inputs, self.compute_dtype)
    if self.axis != [inputs.shape.rank - 1] or not (self.scale and self.center) or self.dtype != "float32":
        return tf_keras.layers.LayerNormalization.call(self, inputs)
    return layer_norm(inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta), self.epsilon)


def self_attention_call(self, hidden_states, attention_mask, head_mask, encoder_hidden_states,
                        encoder_attention_mask, past_key_value, output_attentions, training=False):
    """`TFBertSelfAttention.call` in fewer passes (see the module docstring), for an encoder's
    self-attention whose dropout is tfbert's `Dropout`; else transformers' own."""
    if (self.is_decoder or encoder_hidden_states is not None or past_key_value is not None or head_mask is not None
            or not isinstance(self.dropout, Dropout)):
        return TFBertSelfAttention.call(self, hidden_states, attention_mask, head_mask, encoder_hidden_states,
                                        encoder_attention_mask, past_key_value, output_attentions, training)
    batch_size = tf.shape(hidden_states)[0]
    query, key, value = (self.transpose_for_scores(dense(inputs=hidden_states), batch_size)
                         for dense in (self.query, self.key, self.value))
    query = query * tf.cast(1 / math.sqrt(self.attention_head_size), query.dtype)
    logits = tf.matmul(query, key, transpose_b=True)
    if attention_mask is not None:
        logits = logits + tf.cast(attention_mask, logits.dtype)
    if self.dropout.dropped:
        probs = self.dropout.while_training(logits, training, softmax_dropout, tf.nn.softmax)
    else:
        probs = tf.nn.softmax(logits)
    outputs = tf.transpose(tf.matmul(probs, value), perm=[0, 2, 1, 3])
    outputs = tf.reshape(outputs, (batch_size, -1, self.all_head_size))
    return (outputs, probs) if output_attentions else (outputs,)


def use_training_ops(model):
    """Gives a transformers TensorFlow BERT model's layers `gelu` (when `hidden_act` is "gelu"),
    `Dropout`, `layer_norm_call` and `self_attention_call`, before or after it is built; see the module
    docstring.

    Args:
        model: a transformers TensorFlow BERT model or TFBertMainLayer.
    """
    for layer in list(model.submodules):
        if hasattr(layer, "intermediate_act_fn"):
            _use_activation(layer, model.config.hidden_act)
        if isinstance(layer, TFBertSelfAttention):
            layer.call = types.MethodType(self_attention_call, layer)
        if type(layer) is tf_keras.layers.LayerNormalization:
            layer.call = types.MethodType(layer_norm_call, layer)
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
