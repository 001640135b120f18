"""How many rows an export's inference graph computes for a batch's real tokens, and how long the grids
its attention runs on are (`tfbert.models.inference`).

The graph computes real tokens only, one row each; a bfloat16 export rounds their count, and the
length of each chunk of attention, up to a bucket size, so that the kernels oneDNN compiles for each
matrix shape are reused by later batches.
"""

import tensorflow as tf


def _buckets(multiple, exact, steps_per_octave, largest):
    """Sizes: multiples of `multiple` up to `exact`, then `steps_per_octave` evenly spaced sizes in each
    octave (so at most 1/`steps_per_octave` more than needed), up to `largest`."""
    sizes = list(range(0, exact + 1, multiple))
    while sizes[-1] < largest:
        sizes.append(sizes[-1] + (1 << (sizes[-1].bit_length() - 1)) // steps_per_octave)
    return sizes


ROW_BUCKETS = _buckets(multiple=1, exact=64, steps_per_octave=16, largest=1 << 24)  # rows computed
LENGTH_BUCKETS = _buckets(multiple=8, exact=64, steps_per_octave=8, largest=1 << 16)  # attention grids


def row_bucket(count):
    """The rows to compute for `count` real tokens (int64 scalar tensor): the smallest of ROW_BUCKETS
    at or above it (`count` itself past the largest).

    Why: oneDNN compiles a kernel for each shape a MatMul meets (a primitive, cached by shape), and
    the real tokens of a batch of 32 are a new count almost every batch. Rounded up to 16 sizes an
    octave, the counts a server meets are few, and their kernels stay cached. On 20 new batches of 32
    first sentences, a bfloat16 export with exact counts compiled 64 dense-layer kernels (154 ms), the
    bucketed one none and served 1.12x as many texts a second (benchmarks/README.md#row-buckets,
    2-core Xeon with AMX). Up to 64 tokens (single texts) every count is its own size: the cache holds
    them all. The float32 export does not round: its MatMuls (a plain-layout GEMM) took 0.6 ms a batch
    to create there, and buckets served 0.98x as many texts a second."""
    return _bucket(count, ROW_BUCKETS)


def length_bucket(length):
    """The length of the grid a chunk of attention runs on, for texts of at most `length` tokens (int32
    tensor, each element): the smallest of LENGTH_BUCKETS at or above it (`length` itself past the largest).

    Why: each chunk of attention is two batched matrix products and a softmax on [texts, heads, length,
    ...], whose oneDNN kernels are compiled for their shapes, as the dense layers' are (`row_bucket`),
    and a chunk of long texts holds few texts, each a length of its own. Rounded up to multiples of 8,
    then 8 sizes an octave, the lengths up to 512 are 32, and their kernels stay cached. On new
    batches of 32 long descriptions, a bfloat16 export served 1.12x the texts a second of the same
    export with exact lengths, and as many on batches it had seen (2-core Xeon with AMX,
    benchmarks/README.md#attention-in-chunks). The extra positions are padding, masked out."""
    return _bucket(length, LENGTH_BUCKETS)


def _bucket(value, buckets):
    """Each element of `value` rounded up to the smallest of `buckets` at or above it (itself past the largest)."""
    flat = tf.reshape(value, [-1])
    index = tf.searchsorted(tf.constant(buckets, value.dtype), flat, side="left")
    rounded = tf.gather(tf.constant(buckets + [0], value.dtype), index)  # past the largest: flat's own value
    return tf.reshape(tf.where(index < len(buckets), rounded, flat), tf.shape(value))
