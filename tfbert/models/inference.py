"""BERT's inference math in fewer, fusible ops, on transformers' own layers and variables, for exports.

transformers' `TFBertMainLayer` runs every `Dense` on [batch, seq, hidden] tensors, which tf_keras
computes with `tf.tensordot`: a Reshape, a MatMul and a Reshape around ten small shape ops, so
Grappler's remapper cannot fuse the MatMul with its BiasAdd (or GELU), and at batch 1 the executor's
per-op cost outweighs the arithmetic. It also computes every padding position of every layer.

`inference_outputs` is the same math (embeddings, self-attention with the additive -10000 mask,
GELU feed-forward, post-layer norms, tanh pooler), without dropout, reading the layers' variables:
- the hidden states live as a 2-D [tokens, hidden] matrix, so each dense layer is one MatMul + BiasAdd;
- only real tokens are computed: the rows of `attention_mask` are packed before the embeddings, and
  scattered into [batch, seq, heads, head_size] for attention only (`unpad=True`).
Real tokens' hidden states equal `TFBertMainLayer`'s within float32 noise; padding positions of
`last_hidden_state` are 0 (transformers computes values there that nothing should read).

With `weights=InferenceWeights(..., tf.bfloat16)` the matrix multiplications run in bfloat16 on
bfloat16 copies of the dense layers' kernels and biases, with float32 accumulation in oneDNN; the
residual stream, layer norms, softmax, embeddings and pooler stay float32, as PyTorch's autocast
keeps them. Outputs are float32 either way.

`inference_graph(model)` routes the inference calls of every `TFBertMainLayer` in `model` through
`inference_outputs` while an export traces its signatures; training calls (dropout) and calls asking
for attentions, hidden states, head masks or embeddings keep transformers' own path.
"""

import contextlib
import math
import types

import tensorflow as tf
from transformers.activations_tf import get_tf_activation
from transformers.modeling_tf_outputs import TFBaseModelOutputWithPoolingAndCrossAttentions
from transformers.models.bert.modeling_tf_bert import TFBertMainLayer


PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16}


class InferenceWeights(tf.Module):
    """The encoder layers' dense kernels and biases in a compute dtype: the variables themselves for
    float32, else copies (saved with the export that holds this module, beside the float32 variables
    that training and the reusable `__call__` use).

    Args:
        main_layers: list of built transformers TFBertMainLayer.
        dtype: tf.DType. tf.float32 or tf.bfloat16.
    """

    def __init__(self, main_layers, dtype=tf.float32):
        super().__init__(name=f"inference_weights_{dtype.name}")
        self.compute_dtype = dtype
        sources = [variable for main_layer in main_layers for layer in main_layer.encoder.layer
                   for dense in _dense_layers(layer) for variable in (dense.kernel, dense.bias)]
        if dtype == tf.float32:
            self.copies = []
        else:
            with tf.init_scope():
                self.copies = [tf.Variable(tf.cast(variable, dtype), trainable=False, name=variable.name.split(":")[0])
                               for variable in sources]
        # The lookup from each float32 variable to its copy is untracked: only the copies are saved.
        self._lookup = types.SimpleNamespace(
            table=dict(zip((variable.ref() for variable in sources), self.copies)))

    def get(self, variable):
        """The variable to compute with in place of `variable`."""
        return self._lookup.table.get(variable.ref(), variable)


def _dense_layers(layer):
    """The Dense layers of a TFBertLayer that run on its hidden states."""
    attention = layer.attention.self_attention
    return (attention.query, attention.key, attention.value, layer.attention.dense_output.dense,
            layer.intermediate.dense, layer.bert_output.dense)


def _dense(x, layer, weights, activation=None):
    """A tf_keras Dense on a 2-D matrix: MatMul + BiasAdd (+ activation), which the remapper fuses,
    in `weights.compute_dtype`."""
    with tf.name_scope(layer.name):
        x = tf.cast(x, weights.compute_dtype)
        y = tf.nn.bias_add(tf.matmul(x, weights.get(layer.kernel)), weights.get(layer.bias))
        return activation(y) if activation is not None else y


def _layer_norm(x, layer):
    """tf_keras LayerNormalization over the last axis of a 2-D matrix."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, layer.beta, layer.gamma, layer.epsilon)


def _attention(x, attention, mask_bias, positions, shape, weights):
    """One TFBertSelfAttention on rows x [tokens, hidden]: -> context [tokens, heads * head_size], in
    the compute dtype; the softmax in float32."""
    heads, head_size = attention.num_attention_heads, attention.attention_head_size
    batch, seq = shape[0], shape[1]

    def to_heads(rows):  # [tokens, heads * head_size] -> [batch, heads, seq, head_size]
        padded = tf.scatter_nd(positions, rows, [batch, seq, heads * head_size]) if positions is not None else rows
        return tf.transpose(tf.reshape(padded, [batch, seq, heads, head_size]), [0, 2, 1, 3])

    query = to_heads(_dense(x, attention.query, weights))
    key = to_heads(_dense(x, attention.key, weights))
    value = to_heads(_dense(x, attention.value, weights))
    scores = tf.cast(tf.matmul(query, key, transpose_b=True), tf.float32) / math.sqrt(head_size)
    probabilities = tf.cast(tf.nn.softmax(scores + mask_bias, axis=-1), weights.compute_dtype)
    context = tf.transpose(tf.matmul(probabilities, value), [0, 2, 1, 3])
    context = tf.reshape(context, [batch, seq, heads * head_size])
    if positions is not None:
        return tf.gather_nd(context, positions)
    return tf.reshape(context, [-1, heads * head_size])


def inference_outputs(main_layer, input_ids, attention_mask, token_type_ids, unpad=True, weights=None):
    """transformers' `TFBertMainLayer` in inference mode (no dropout), in fewer, fusible ops.

    Args:
        main_layer: transformers TFBertMainLayer (`model.bert` of any TF BERT model), built.
        input_ids, attention_mask, token_type_ids: int [batch, seq].
        unpad: bool. Compute real tokens only (attention_mask 1); padding positions come out 0.
            Defaults to True.
        weights: InferenceWeights. The dense layers' weights in their compute dtype. Defaults to the
            layer's own float32 variables.

    Returns:
        (last_hidden_state float32 [batch, seq, hidden], pooled_output [batch, hidden] or None when
        the layer has no pooler).
    """
    config = main_layer.config
    embeddings, layers = main_layer.embeddings, main_layer.encoder.layer
    weights = weights if weights is not None else InferenceWeights([main_layer])
    shape = tf.shape(input_ids)
    batch, seq = shape[0], shape[1]
    dtype = tf.float32
    positions = tf.where(tf.not_equal(attention_mask, 0)) if unpad else None

    def rows(tensor):  # [batch, seq] -> the rows computed: packed real tokens, or all of them
        return tf.gather_nd(tensor, positions) if unpad else tf.reshape(tensor, [-1])

    position_ids = positions[:, 1] if unpad else tf.tile(tf.range(seq), [batch])
    with tf.name_scope("embeddings"):
        hidden = (tf.gather(embeddings.weight, rows(input_ids))
                  + tf.gather(embeddings.position_embeddings, position_ids)
                  + tf.gather(embeddings.token_type_embeddings, rows(token_type_ids)))
        hidden = _layer_norm(hidden, embeddings.LayerNorm)

    mask = tf.cast(attention_mask, dtype)[:, None, None, :]
    mask_bias = (tf.constant(1.0, dtype) - mask) * tf.constant(-10000.0, dtype)
    activation = get_tf_activation(config.hidden_act) if isinstance(config.hidden_act, str) else config.hidden_act
    # Name scopes as transformers' layers have, so that profiles attribute the time (benchmarks/profile_serving.py).
    for index, layer in enumerate(layers):
        with tf.name_scope(f"encoder/layer_._{index}"):
            attention = layer.attention
            with tf.name_scope("attention/self"):
                context = _attention(hidden, attention.self_attention, mask_bias, positions, shape, weights)
            output = attention.dense_output
            with tf.name_scope("attention/output"):
                hidden = _layer_norm(tf.cast(_dense(context, output.dense, weights), dtype) + hidden, output.LayerNorm)
            with tf.name_scope("intermediate"):
                intermediate = _dense(hidden, layer.intermediate.dense, weights, activation)
            output = layer.bert_output
            with tf.name_scope("output"):
                hidden = _layer_norm(tf.cast(_dense(intermediate, output.dense, weights), dtype) + hidden,
                                     output.LayerNorm)

    width = hidden.shape[-1]
    if unpad:
        sequence_output = tf.scatter_nd(positions, hidden, tf.stack([tf.cast(batch, tf.int64), tf.cast(seq, tf.int64), width]))
    else:
        sequence_output = tf.reshape(hidden, [batch, seq, width])
    pooled_output = None
    if main_layer.pooler is not None:
        pooler = main_layer.pooler.dense
        with tf.name_scope("pooler"):
            pooled_output = tf.tanh(tf.nn.bias_add(tf.matmul(sequence_output[:, 0], pooler.kernel), pooler.bias))
    return sequence_output, pooled_output


_PLAIN_INFERENCE = {"position_ids": None, "head_mask": None, "inputs_embeds": None, "encoder_hidden_states": None,
                    "encoder_attention_mask": None, "past_key_values": None, "output_attentions": False,
                    "output_hidden_states": False}


def _inference_call(main_layer, original_call, unpad, weights):
    def call(input_ids=None, attention_mask=None, token_type_ids=None, training=False, return_dict=None, **kwargs):
        plain = all(kwargs.get(name, value) in (value, None) for name, value in _PLAIN_INFERENCE.items())
        if training or not plain or input_ids is None or attention_mask is None or token_type_ids is None:
            return original_call(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                 training=training, return_dict=return_dict, **kwargs)
        sequence_output, pooled_output = inference_outputs(main_layer, input_ids, attention_mask, token_type_ids, unpad,
                                                           weights)
        if return_dict is False:
            return (sequence_output, pooled_output)
        return TFBaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=sequence_output,
                                                              pooler_output=pooled_output)
    return call


def main_layers(model):
    """The transformers TFBertMainLayers inside a tf_keras model or layer (itself, if it is one)."""
    if isinstance(model, TFBertMainLayer):
        return [model]
    return [module for module in model.submodules if isinstance(module, TFBertMainLayer)]


@contextlib.contextmanager
def inference_graph(model, unpad=True, weights=None):
    """Within the block, inference calls of every `TFBertMainLayer` in `model` run `inference_outputs`.

    Args:
        model: a tf_keras model or layer holding transformers TF BERT models (an encoder, classifier,
            task model), or a TFBertMainLayer.
        unpad: bool. As `inference_outputs`. Defaults to True.
        weights: InferenceWeights of `main_layers(model)`. Defaults to their float32 variables.

    Yields:
        The list of TFBertMainLayers routed.
    """
    layers = main_layers(model)
    for layer in layers:
        # An instance attribute shadows the class's `call`; Keras' `__call__` calls `self.call`.
        layer.call = _inference_call(layer, layer.call, unpad, weights)
    try:
        yield layers
    finally:
        for layer in layers:
            del layer.call
