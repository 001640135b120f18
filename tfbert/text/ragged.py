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
    return from_rows(tf.boolean_mask(ragged.values, keep), tf.boolean_mask(rows, keep), ragged.nrows())


# `merge_dims`, ragged `tf.concat(axis=1)` and `from_value_rowids` / `from_row_lengths` with their
# default `validate=True` each add assertions: a conditional of two functions apiece, traced with every
# tokenizer signature, saved in every export and loaded with it (dozens a signature; tests/test_tokenizer.py
# counts what is left). The helpers below build the same tensors from splits valid by construction.


def expand_values(ragged, rows):
    """`ragged.with_flat_values(rows).merge_dims(-2, -1)`: each flat value of `ragged` [..., (n)] replaced by
    its row of `rows` ([values, (k), ...]) -> [..., (k)]."""
    splits = ragged.nested_row_splits
    inner = tf.gather(rows.row_splits, splits[-1])
    return tf.RaggedTensor.from_nested_row_splits(rows.values, splits[:-1] + (inner,), validate=False)


def join_rows(groups, rows):
    """`groups.with_values(rows).merge_dims(1, 2)`: the rows of `rows` ([m, (k), ...]) joined by the groups
    of `groups` ([n, (m), ...], whose m values they replace) -> [n, (k), ...]."""
    return tf.RaggedTensor.from_row_splits(rows.values, tf.gather(rows.row_splits, groups.row_splits), validate=False)


def concat_rows(parts):
    """`tf.concat(parts, axis=1)` for ragged tensors [n, (k), ...] of the same n: row i of the result is
    row i of every part, one after the other."""
    lengths = [part.row_lengths() for part in parts]
    row_splits = tf.concat([[0], tf.cumsum(tf.add_n(lengths))], 0)
    start, targets = row_splits[:-1], []
    for part, length in zip(parts, lengths):
        rows = row_ids(part)
        targets.append(tf.gather(start, rows) + position_in_row(part, rows))
        start += length
    values = tf.gather(tf.concat([part.values for part in parts], 0), tf.math.invert_permutation(tf.concat(targets, 0)))
    return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)


def from_rows(values, rows, nrows):
    """`tf.RaggedTensor.from_value_rowids` for row ids that are sorted and below `nrows`, as ours are."""
    return tf.RaggedTensor.from_value_rowids(values, rows, nrows=nrows, validate=False)


def from_lengths(values, lengths):
    """`tf.RaggedTensor.from_row_lengths` for lengths that are not negative and sum to the values', as ours do."""
    return tf.RaggedTensor.from_row_lengths(values, lengths, validate=False)
