"""BERT's inference math in fewer, fusible ops, on transformers' own layers and variables, for exports.

transformers' `TFBertMainLayer` runs every `Dense` on [batch, seq, hidden] tensors, which tf_keras computes with
`tf.tensordot`: a Reshape, a MatMul and a Reshape around ten small shape ops, so Grappler's remapper cannot fuse the
MatMul with its BiasAdd (or GELU), and at batch 1 the executor's per-op cost outweighs the arithmetic. It also computes
every padding position of every layer.

`inference_outputs` is the same math (embeddings, self-attention with the additive -10000 mask,
GELU feed-forward, post-layer norms, tanh pooler), without dropout, reading the layers' variables:
- the hidden states live as a 2-D [tokens, hidden] matrix, so each dense layer is one MatMul + BiasAdd;
- query, key and value are one MatMul on their kernels side by side;
- only real tokens are computed: the rows of `attention_mask` are packed before the embeddings, and
  put on the [batch, seq] grid for the attention products only (`unpad=True`);
- a batch runs as independent streams of texts, one a core (`tfbert.models.streams`).
Real tokens' hidden states equal `TFBertMainLayer`'s within float32 noise; padding positions of
`last_hidden_state` are 0 (transformers computes values there that nothing should read).

With `weights=InferenceWeights(..., tf.bfloat16)` the matrix multiplications run in bfloat16 on bfloat16 copies of the
dense layers' kernels and biases, with float32 accumulation in oneDNN, and attention (scores, mask, softmax, context)
runs in bfloat16 too: PyTorch's autocast also rounds the scores to bfloat16, and a float32 softmax between them costs
two casts over every score (see benchmarks/profile_serving.py). The residual stream, layer norms (one fused op each, see
`_layer_norm`), embeddings and pooler stay float32, as autocast keeps them. Outputs are float32 either way.

`inference_graph(model)` routes the inference calls of every `TFBertMainLayer` in `model` through `inference_outputs`
while an export traces its signatures; training calls (dropout) and calls asking for attentions, hidden states, head
masks or embeddings keep transformers' own path.
"""

import contextlib

import tensorflow as tf
from transformers.activations_tf import get_tf_activation
from transformers.modeling_tf_outputs import TFBaseModelOutputWithPoolingAndCrossAttentions
from transformers.models.bert.modeling_tf_bert import TFBertMainLayer

from tfbert.models.attention import PARALLEL_CHUNKS, attend, chunk_bounds, needs_chunks
from tfbert.models.inference_weights import InferenceWeights
from tfbert.models.length_groups import LengthGroups
from tfbert.models.row_buckets import length_bucket, row_bucket
from tfbert.models.streams import STREAMS, in_streams

# What attention adds to the scores of padding positions, as TFBertMainLayer's extended attention mask does.
MASK_BIAS = -10000.0


def _dense(x, layer, weights, activation=None):
    """A tf_keras Dense on a 2-D matrix: MatMul + BiasAdd (+ activation), which the remapper fuses,
    in `weights.compute_dtype`."""
    with tf.name_scope(layer.name):
        return _matmul_bias(x, weights.get(layer.kernel), weights.get(layer.bias), weights.compute_dtype, activation)


def _matmul_bias(x, kernel, bias, dtype, activation=None):
    y = tf.nn.bias_add(tf.matmul(tf.cast(x, dtype), kernel), bias)
    return activation(y) if activation is not None else y


def _layer_norm(x, layer, fused):
    """tf_keras LayerNormalization over the last axis of a 2-D matrix.

    fused: as tf_keras' fused path writes it (rows as the channels of a FusedBatchNormV3, then scale and
    offset), which Grappler's oneDNN remapper fuses into one `_MklLayerNorm`; else as plain ops (five
    passes over the hidden states). The bfloat16 export fuses: on a 2-core Xeon with AMX it then served 1.55x to
    2.70x the float32 export at batch 32, where it had served 1.53x to 1.89x (benchmarks/README.md#on-a-cpu-with-amx).
    The float32 export does not: TensorFlow creates the fused op's oneDNN primitive at every call, which cost batch 1
    more than the fused kernel saved at batch 32 on CPUs without AMX, and a tf.cond between the two cost more at
    batch 1 than it saved (benchmarks/profile_serving.py --export, on exports of each kind)."""
    if fused:
        rows = tf.shape(x)[0]
        normalized, _, _ = tf.compat.v1.nn.fused_batch_norm(
            tf.reshape(x, [1, rows, x.shape[-1], 1]), tf.ones([rows], x.dtype), tf.zeros([rows], x.dtype),
            epsilon=layer.epsilon, data_format="NCHW")
        return tf.reshape(normalized, tf.shape(x)) * layer.gamma + layer.beta
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, layer.beta, layer.gamma, layer.epsilon)


class _Rows:
    """Where the computed rows sit in the [batch, seq] grid: all positions, or the real tokens only;
    and, for real tokens only, the texts in length order, for attention in chunks (`_attention`).

    Args:
        attention_mask: int [batch, seq].
        unpad: bool. Compute the real tokens only.
        bucketed: bool. With unpad, compute `row_bucket(tokens)` rows: the real tokens, then copies of grid position
            0 that no output reads; and run each chunk of attention on a grid of `length_bucket` positions.
    """

    def __init__(self, attention_mask, unpad, bucketed=False):
        shape = tf.shape(attention_mask)
        self.batch, self.seq = shape[0], shape[1]
        self.unpad = unpad
        if not unpad:
            return
        real = tf.not_equal(attention_mask, 0)
        flat_real = tf.reshape(real, [-1])
        real_flat = tf.where(flat_real)[:, 0]  # [tokens]: flat grid position of each real token
        self.tokens = tf.shape(real_flat, out_type=tf.int64)[0]
        self.rows = row_bucket(self.tokens) if bucketed else self.tokens
        self.flat = tf.concat([real_flat, tf.zeros([self.rows - self.tokens], tf.int64)], 0)
        # [batch * seq]: the row of each grid position, `rows` (a zero row) at padding.
        self.slots = tf.where(flat_real, tf.cumsum(tf.cast(flat_real, tf.int64)) - 1, self.rows)
        # Length groups: a row's length is up to its last real token (masks need not be left-aligned).
        extents = tf.reduce_max(tf.where(real, tf.range(1, self.seq + 1)[None, :], 0), axis=1)
        plan = LengthGroups(extents)
        self.grouped, self.group_size = plan.pays, plan.size
        self.order = plan.order  # the texts, shortest first
        self.ends_at = plan.ends_at  # [batch + 1]: 0, then their lengths
        # [batch, width]: the row of each grid position, `rows` at padding; bucketed, widened to a length bucket.
        self.length, self.grid_slots = (length_bucket if bucketed else tf.identity), tf.reshape(self.slots, shape)
        if bucketed:
            widen = [[0, 0], [0, self.length(self.seq) - self.seq]]
            self.grid_slots = tf.pad(self.grid_slots, widen, constant_values=self.rows)

    def chunk_plan(self, heads, dtype, heavy):
        """When `heavy`, the chunks of attention over the texts in length order (`_attention`), once a batch:
        bounds (`attention.chunk_bounds`; at most a length group's size when groups pay), each chunk's grid
        length, the texts' slots and `dtype` mask bias in length order, and each row's place in the chunks' grids."""
        def plan():
            grids = self.length(self.ends_at[1:])  # each text's grid length, in length order (heavy: texts >= 1)
            bounds = chunk_bounds(grids, heads, dtype, tf.where(self.grouped, self.group_size, self.batch))
            starts, lengths, texts = bounds[:-1], tf.gather(grids, bounds[1:] - 1), tf.range(self.batch)
            chunk = tf.searchsorted(bounds[1:], texts, side="right")  # of each text in length order
            offsets = tf.cumsum((bounds[1:] - starts) * lengths, exclusive=True)
            firsts = tf.gather(offsets, chunk) + (texts - tf.gather(starts, chunk)) * tf.gather(lengths, chunk)
            firsts = tf.cast(tf.gather(firsts, tf.math.invert_permutation(self.order)), tf.int64)  # by text
            seq, slots = tf.cast(self.seq, tf.int64), tf.gather(self.grid_slots, self.order)
            return (bounds, lengths, slots, tf.cast(tf.where(slots < self.tokens, 0.0, MASK_BIAS), dtype),
                    tf.gather(firsts, self.flat // seq) + self.flat % seq)
        unused = ([2], tf.int32), ([1], tf.int32), ([0, 0], tf.int64), ([0, 0], dtype), ([0], tf.int64)  # not heavy
        return tf.cond(heavy, plan, lambda: tuple(tf.cast(tf.zeros(shape), kind) for shape, kind in unused))

    def take(self, grid):
        """[batch, seq, ...] -> [rows, ...]."""
        flat = tf.reshape(grid, tf.concat([[-1], tf.shape(grid)[2:]], 0))
        return tf.gather(flat, self.flat) if self.unpad else flat

    def positions(self):
        """[rows]: the position id (index in its sequence) of each row."""
        if self.unpad:
            return self.flat % tf.cast(self.seq, tf.int64)
        return tf.tile(tf.range(self.seq), [self.batch])

    def grid(self, rows, slots=None):
        """[rows, width] -> [batch * seq, width] (or the shape of `slots`), zeros at padding: a Gather of the rows
        with a zero row appended, which took a third of ScatterNd's time in benchmarks/profile_serving.py."""
        if not self.unpad:
            return rows
        return tf.gather(self.with_zero_row(rows), self.slots if slots is None else slots)

    def with_zero_row(self, rows):
        """[rows, width] -> [rows + 1, width]: the row that padding positions gather."""
        return tf.concat([rows, tf.zeros([1, tf.shape(rows)[1]], rows.dtype)], 0)


def _attention(x, attention, mask_bias, rows, weights, heavy, plan):
    """One TFBertSelfAttention on rows x [tokens, hidden] -> context [tokens, heads * head_size], compute dtype.

    Query, key and value are one MatMul on their kernels side by side. Attention runs on the [batch, seq] grid in one
    piece, or, when `heavy` (its scores outgrow attention.CHUNK_BYTES, or its texts' lengths differ enough that length
    groups pay, `LengthGroups.pays`), in chunks: a `tf.while_loop` over the texts in length order, chunk by chunk of
    `plan` (`rows.chunk_plan`), each on its own grid as long as its longest text. So the scores of a chunk stay in cache
    (`tfbert.models.attention`), and short texts do not pay for the longest one's padding. The loop body only slices
    what `plan` computed once a batch. One loop a layer: TensorFlow's executor visits every op of the branch not taken,
    and four loops a layer (one a length group) made batch 1 slower than this one
    (benchmarks/README.md#attention-in-chunks)."""
    heads, head_size, dtype = attention.num_attention_heads, attention.attention_head_size, weights.compute_dtype
    with tf.name_scope("query_key_value"):
        qkv = _matmul_bias(x, *weights.qkv(attention), dtype)
    width = heads * head_size

    def one_grid(chunked=False):
        context = attend(rows.grid(qkv), mask_bias, rows.batch, rows.seq, heads, head_size, dtype, chunked)
        return rows.take(context)

    def in_chunks():
        bounds, lengths, slots, bias, positions = plan
        padded, count = rows.with_zero_row(qkv), tf.size(bounds) - 1

        def chunk(index, contexts):
            start, end, length = bounds[index], bounds[index + 1], lengths[index]  # its texts, its grid's length
            context = attend(tf.gather(padded, slots[start:end, :length]), bias[start:end, None, None, :length],
                             end - start, length, heads, head_size, dtype, chunked=False)
            return index + 1, contexts.write(index, tf.reshape(context, [-1, width]))

        contexts = tf.TensorArray(dtype, size=count, infer_shape=False, element_shape=[None, width])
        _, contexts = tf.while_loop(lambda index, _: index < count, chunk, (tf.constant(0), contexts),
                                    parallel_iterations=PARALLEL_CHUNKS)
        return tf.gather(contexts.concat(), positions)  # the extra rows of a bucket read text 0's first cell

    return tf.cond(heavy, in_chunks if rows.unpad else lambda: one_grid(chunked=True), one_grid)


def inference_outputs(main_layer, input_ids, attention_mask, token_type_ids, unpad=True, weights=None,
                      bucketed=None, streams=STREAMS):
    """transformers' `TFBertMainLayer` in inference mode (no dropout), in fewer, fusible ops.

    Args:
        main_layer: transformers TFBertMainLayer (`model.bert` of any TF BERT model), built.
        input_ids, attention_mask, token_type_ids: int [batch, seq].
        unpad: bool. Compute real tokens only (attention_mask 1); padding positions come out 0.
            Defaults to True.
        weights: InferenceWeights. The dense layers' weights in their compute dtype. Defaults to the
            layer's own float32 variables.
        bucketed: bool. With unpad, compute a bucket size of rows (`row_bucket`). Defaults to True
            for bfloat16 weights, False for float32.
        streams: int. Compute the batch as this many independent streams of texts (`tfbert.models.streams`).

    Returns:
        (last_hidden_state float32 [batch, seq, hidden], pooled_output [batch, hidden] or None when
        the layer has no pooler).
    """
    config = main_layer.config
    embeddings, layers = main_layer.embeddings, main_layer.encoder.layer
    weights = weights if weights is not None else InferenceWeights([main_layer], stored_qkv=False)
    if streams > 1:
        return in_streams(lambda *inputs: inference_outputs(main_layer, *inputs, unpad, weights, bucketed, streams=1),
                          input_ids, attention_mask, token_type_ids, streams)
    dtype = tf.float32
    fused_norms = weights.compute_dtype != tf.float32  # see _layer_norm
    rows = _Rows(attention_mask, unpad, fused_norms if bucketed is None else bucketed)  # see row_bucket

    with tf.name_scope("embeddings"):
        hidden = (tf.gather(embeddings.weight, rows.take(input_ids))
                  + tf.gather(embeddings.position_embeddings, rows.positions())
                  + tf.gather(embeddings.token_type_embeddings, rows.take(token_type_ids)))
        hidden = _layer_norm(hidden, embeddings.LayerNorm, fused_norms)

    mask_bias = (1.0 - tf.cast(attention_mask, dtype)[:, None, None, :]) * MASK_BIAS
    # Whether every layer's attention runs in chunks for this batch, and which (see _attention); the most heads decide.
    heads, compute = max(layer.attention.self_attention.num_attention_heads for layer in layers), weights.compute_dtype
    heavy, plan = needs_chunks(rows.batch, rows.seq, heads, compute), None
    if unpad:
        heavy = tf.logical_or(rows.grouped, heavy)
        plan = rows.chunk_plan(heads, compute, heavy)
    activation = get_tf_activation(config.hidden_act) if isinstance(config.hidden_act, str) else config.hidden_act
    # Name scopes as transformers' layers have, so that profiles attribute the time (benchmarks/profile_serving.py).
    for index, layer in enumerate(layers):
        with tf.name_scope(f"encoder/layer_._{index}"):
            attention = layer.attention
            with tf.name_scope("attention/self"):
                context = _attention(hidden, attention.self_attention, mask_bias, rows, weights, heavy, plan)
            output = attention.dense_output
            with tf.name_scope("attention/output"):
                hidden = _layer_norm(tf.cast(_dense(context, output.dense, weights), dtype) + hidden, output.LayerNorm,
                                     fused_norms)
            with tf.name_scope("intermediate"):
                intermediate = _dense(hidden, layer.intermediate.dense, weights, activation)
            output = layer.bert_output
            with tf.name_scope("output"):
                hidden = _layer_norm(tf.cast(_dense(intermediate, output.dense, weights), dtype) + hidden,
                                     output.LayerNorm, fused_norms)

    sequence_output = tf.reshape(rows.grid(hidden), [rows.batch, rows.seq, hidden.shape[-1]])
    pooled_output = None
    if main_layer.pooler is not None:
        pooler = main_layer.pooler.dense
        with tf.name_scope("pooler"):
            pooled_output = tf.tanh(tf.nn.bias_add(tf.matmul(sequence_output[:, 0], pooler.kernel), pooler.bias))
    return sequence_output, pooled_output


_PLAIN_INFERENCE = {"position_ids": None, "head_mask": None, "inputs_embeds": None, "encoder_hidden_states": None,
                    "encoder_attention_mask": None, "past_key_values": None, "output_attentions": False,
                    "output_hidden_states": False}


# InferenceWeights that override inference_graph's while a trace runs inside `computing_with`.
_OVERRIDES = []


@contextlib.contextmanager
def computing_with(weights):
    """Within the block, inference calls routed by `inference_graph` compute with `weights`.

    For one graph of an export that computes with other weights than the rest: an encoder's
    signatures with bfloat16 copies, its reusable `__call__` with the variables it is trained on.
    TensorFlow retraces functions while it saves them, so the choice must hold at every trace.
    """
    _OVERRIDES.append(weights)
    try:
        yield
    finally:
        _OVERRIDES.pop()


def _inference_call(main_layer, original_call, unpad, weights):
    def call(input_ids=None, attention_mask=None, token_type_ids=None, training=False, return_dict=None, **kwargs):
        plain = all(kwargs.get(name, value) in (value, None) for name, value in _PLAIN_INFERENCE.items())
        if training or not plain or input_ids is None or attention_mask is None or token_type_ids is None:
            return original_call(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                 training=training, return_dict=return_dict, **kwargs)
        sequence_output, pooled_output = inference_outputs(main_layer, input_ids, attention_mask, token_type_ids, unpad,
                                                           _OVERRIDES[-1] if _OVERRIDES else weights)
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
