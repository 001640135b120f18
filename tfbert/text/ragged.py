"""Ragged-tensor steps the tokenizer composes, each linear in the number of values.

`RaggedTensor.value_rowids()` builds a [rows, longest row] mask on the way: one 1 MB word in a batch
of many short ones would ask for gigabytes. These helpers avoid it.
"""

import tensorflow as tf


def row_ids(ragged):
    """The row of each (outermost) value of a ragged tensor, in O(values + rows): each row start bumps a
    cumulative sum."""
    num_values = ragged.row_splits[-1]
    inner_splits = ragged.row_splits[1:-1]
    bumps = tf.math.unsorted_segment_sum(tf.ones_like(inner_splits), inner_splits, num_values + 1)
    return tf.cumsum(bumps[:num_values])


def position_in_row(ragged, rows):
    """The index of each value of a ragged tensor (ragged rank 1) within its row; `rows` from `row_ids`."""
    return tf.range(ragged.row_splits[-1], dtype=tf.int64) - tf.gather(ragged.row_starts(), rows)


def shift_right(flags):
    """flags[i - 1] at position i, False at position 0."""
    return tf.concat([[False], flags[:-1]], axis=0)


def truncate_rows(ragged, lengths):
    """Keeps the first `lengths[i]` values of row i of a ragged tensor [batch, (n)]."""
    rows = row_ids(ragged)
    keep = position_in_row(ragged, rows) < tf.gather(tf.cast(lengths, tf.int64), rows)
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(ragged.values, keep), tf.boolean_mask(rows, keep), nrows=ragged.nrows()
    )
