"""Scaled dot-product attention for the exports' inference graph, in chunks whose scores stay in cache.

BERT's attention scores are [batch, heads, seq, seq]: 400 MB in float32 for 32 texts of 512 tokens
with 12 heads. Computed in one piece, the scores go out to memory and come back four times (the
product that writes them, the mask, the softmax, the product that reads them), and TensorFlow's CPU
batch matrix product runs its many small products one after another. In chunks of `CHUNK_BYTES` of
scores, computed by a `tf.while_loop` two at a time, each chunk's scores stay in the CPU's cache from
the product that writes them to the one that reads them: the tiling of PyTorch's fused CPU attention,
in plain TensorFlow ops (a SavedModel that TF Serving loads as it is). On a 2-core AMD EPYC, attention
on 32 texts of 128, 256 and 512 tokens took 0.66x, 0.45x and 0.42x the time of one piece
(benchmarks/README.md#attention-in-chunks).

The exports' graph (`tfbert.models.inference`) chunks by texts in length order, each chunk as many
texts as its longest allows (`chunk_bounds`); `attend(..., chunked=True)` chunks one grid by (text,
head) pairs. A batch whose scores fit in one chunk (batch 1, short texts) runs in one piece:
`needs_chunks` says which, once per batch.

The query is scaled by 1/sqrt(head size) before the product (a pass over [seq, head size] rather
than over [seq, seq]), where `TFBertSelfAttention` scales the scores after it: equal within float32
noise.
"""

import math

import tensorflow as tf

# Scores per chunk: of 1, 4 and 16 MB, 4 MB did best or nearly at 32 texts of 128 to 512 tokens (AMD EPYC).
CHUNK_BYTES = 4 << 20
# Chunks in flight at once (the while loop's parallel_iterations).
PARALLEL_CHUNKS = 2


def needs_chunks(batch, seq, heads, dtype):
    """Bool scalar tensor: whether a [batch, heads, seq, seq] score tensor is larger than a chunk."""
    return tf.cast(batch, tf.int64) * _text_score_bytes(seq, heads, dtype) > CHUNK_BYTES


def texts_per_chunk(seq, heads, dtype):
    """int32 scalar tensor: how many texts of `seq` tokens keep their scores within CHUNK_BYTES (at least 1)."""
    return tf.cast(tf.maximum(tf.constant(1, tf.int64), CHUNK_BYTES // _text_score_bytes(seq, heads, dtype)), tf.int32)


def chunk_bounds(lengths, heads, dtype, most):
    """Where each chunk of texts in length order starts and ends: as many texts as keep their scores
    on one grid (count x heads x longest^2) within CHUNK_BYTES, at least one, at most `most`.

    Args:
        lengths: int32 [texts], ascending: the length of each text's grid.
        heads: int.
        dtype: the compute dtype.
        most: int32 scalar tensor.

    Returns:
        int32 [chunks + 1]: 0, then the end of each chunk (the last is `texts`); [0, 0] for no texts.
    """
    count = tf.size(lengths)
    cost, index = _text_score_bytes(lengths, heads, dtype), tf.range(count)

    def chunk(chunks, start, bounds):
        taken = index - start + 1  # texts in a chunk from `start` to each text; longest last, so a prefix fits
        fits = (index >= start) & (tf.cast(taken, tf.int64) * cost <= CHUNK_BYTES) & (taken <= most)
        end = tf.minimum(start + tf.maximum(1, tf.reduce_sum(tf.cast(fits, tf.int32))), count)
        return chunks + 1, end, bounds.write(chunks + 1, end)

    bounds = tf.TensorArray(tf.int32, size=1, dynamic_size=True, element_shape=[]).write(0, 0)
    _, _, bounds = tf.while_loop(lambda chunks, start, _: (chunks == 0) | (start < count), chunk,
                                 (tf.constant(0), tf.constant(0), bounds))
    return bounds.stack()


def _text_score_bytes(seq, heads, dtype):
    """int64 tensor: the bytes of one text's [heads, seq, seq] scores, for each element of `seq`."""
    return heads * tf.cast(seq, tf.int64) ** 2 * tf.dtypes.as_dtype(dtype).size


def attend(qkv, mask_bias, batch, seq, heads, head_size, dtype, chunked):
    """Scaled dot-product attention.

    Args:
        qkv: [batch, seq, 3 * heads * head_size]: query, key and value side by side, in `dtype`.
        mask_bias: float32 [batch, 1, 1, seq]: 0 at tokens, -10000 at padding.
        batch, seq: int32 scalar tensors.
        heads, head_size: int.
        dtype: the compute dtype.
        chunked: bool. Compute in chunks of CHUNK_BYTES of scores (see the module docstring).

    Returns:
        context [batch, seq, heads * head_size], in `dtype`.
    """
    qkv = tf.transpose(tf.reshape(qkv, [batch, seq, 3, heads, head_size]), [2, 0, 3, 1, 4])
    query, key, value = tf.unstack(qkv)  # each [batch, heads, seq, head_size]
    query = query * tf.constant(1 / math.sqrt(head_size), dtype)
    bias = tf.cast(mask_bias, dtype)
    if chunked:
        pairs = batch * heads
        query, key, value = (tf.reshape(part, [pairs, seq, head_size]) for part in (query, key, value))
        bias = tf.repeat(tf.reshape(bias, [batch, 1, seq]), heads, axis=0)  # [pairs, 1, seq]
        step = texts_per_chunk(seq, 1, dtype)  # pairs per chunk: a pair is one text's one head
        count = tf.maximum(1, (pairs + step - 1) // step)  # one (empty) chunk for an empty batch

        def chunk(index, contexts):
            part = slice(index * step, (index + 1) * step)
            return index + 1, contexts.write(index, _products(query[part], key[part], value[part], bias[part]))

        contexts = tf.TensorArray(dtype, size=count, infer_shape=False, element_shape=[None, None, head_size])
        _, contexts = tf.while_loop(lambda index, _: index < count, chunk, (tf.constant(0), contexts),
                                    parallel_iterations=PARALLEL_CHUNKS)
        context = tf.reshape(contexts.concat(), [batch, heads, seq, head_size])
    else:
        context = _products(query, key, value, bias)
    context = tf.transpose(context, [0, 2, 1, 3])
    return tf.reshape(context, [batch, seq, heads * head_size])


def _products(query, key, value, bias):
    """softmax(query key^T + bias) value, on [..., seq, head_size] (query already scaled)."""
    scores = tf.matmul(query, key, transpose_b=True) + bias
    return tf.matmul(tf.nn.softmax(scores, axis=-1), value)
