"""A batch through the exports' inference graph as independent streams of texts, one a core.

TensorFlow splits each op of a graph across its intra-op threads. Most of a BERT batch's ops are small
(a chunk's attention products, softmax and transposes, layer norms, the gathers between them), and on
2 cores splitting them costs more than running them whole, two at once (benchmarks/README.md
#streams-of-texts). `in_streams` computes a batch as `STREAMS` sub-batches whose ops do not depend on
one another, so that TensorFlow's executor runs the streams side by side, each op on one core: with
TF Serving's `--tensorflow_intra_op_parallelism=1 --tensorflow_inter_op_parallelism=2` (one intra-op
thread, two ops at once) the float32 export served 0.97x to 1.24x, and the bfloat16 one 1.11x to 1.49x,
the texts per second they served with TensorFlow's default threads at batch 32 (where one stream with
those settings served 0.55x to 0.78x of two). With the default threads the streams served 0.94x to 1.18x
of one stream.

The texts go to the streams in turns in length order, so the streams' tokens and attention grids are
about equal. In a batch of fewer texts than streams (batch 1), a stream of no texts runs its ops on empty
tensors: no batch-1 cost measured, where a tf.cond between one stream and several would have kept a copy of
the bfloat16 export's constant weights in each branch.
"""

import tensorflow as tf

# Streams a batch is computed in: the number of cores of the machines it was measured on (2).
STREAMS = 2


def in_streams(compute, input_ids, attention_mask, token_type_ids, streams=STREAMS):
    """`compute(input_ids, attention_mask, token_type_ids)` on `streams` sub-batches of the texts, side by side.

    Args:
        compute: callable of int [texts, seq] ids, mask and token types -> a tuple of [texts, ...] tensors
            (or None), each text's outputs depending on that text's inputs only.
        input_ids, attention_mask, token_type_ids: int [batch, seq].
        streams: int >= 1.

    Returns:
        `compute`'s outputs for the whole batch, in the batch's order.
    """
    inputs = (input_ids, attention_mask, token_type_ids)
    if streams == 1:
        return compute(*inputs)
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(attention_mask, 0), tf.int32), axis=1)
    order = tf.argsort(lengths, stable=True)
    parts = [order[stream::streams] for stream in range(streams)]  # in turns, in length order
    outputs = []
    for stream, part in enumerate(parts):
        with tf.name_scope(f"stream_{stream}"):  # each stream's ops under the same names (profile_serving.py's stages)
            outputs.append(compute(*(tf.gather(tensor, part) for tensor in inputs)))
    return tuple(None if each[0] is None else tf.dynamic_stitch(parts, list(each)) for each in zip(*outputs))
