"""Running BERT on a batch in groups of similar length, when that saves padded work.

A batch pads every text to its longest one, and BERT's cost grows with the padded length. Used in the
graph by the `embed` signature and by `tfbert.embed` (the whole encoder on each group), and by the
exports' inference graph (`tfbert.models.inference`: whether attention runs on texts in length order,
and at most a group's size of them at a time).
"""

import tensorflow as tf

GROUPS = 4
MIN_GROUP_SIZE = 8


class LengthGroups:
    """A batch split by length: the rows sorted by length, cut into `groups` parts of at least
    `min_group_size` rows, and whether that cuts the padded tokens by a fifth or more (`pays`).

    Args:
        lengths: int32 [batch]. Each row's length (its padded width if it ran alone).
        groups: int. Parts to split a batch into. Defaults to 4.
        min_group_size: int. Smallest part. Defaults to 8.

    Attributes:
        order: int32 [batch]. Row indices, shortest first.
        ends_at: int32 [batch + 1]. 0, then the rows' lengths in `order`: rows order[:i] are at most
            ends_at[i] long.
        size: int32 scalar. Rows a part holds (the last may hold fewer).
        parts: list of (rows int32 [part size], longest int32 scalar); parts beyond the batch are empty.
        pays: bool scalar tensor.
    """

    def __init__(self, lengths, groups=GROUPS, min_group_size=MIN_GROUP_SIZE):
        count = tf.shape(lengths)[0]
        self.order = tf.argsort(lengths, stable=True)
        sorted_lengths = tf.gather(lengths, self.order)
        self.size = size = tf.maximum(min_group_size, (count + groups - 1) // groups)
        bounds = [(tf.minimum(g * size, count), tf.minimum((g + 1) * size, count)) for g in range(groups)]
        # Ascending order: a part's longest row is its last (index end in this list, which starts with a 0).
        self.ends_at = ends_at = tf.concat([[0], sorted_lengths], 0)
        self.parts = [(self.order[start:end], tf.gather(ends_at, end)) for start, end in bounds]
        grouped_tokens = tf.add_n([(end - start) * tf.gather(ends_at, end) for start, end in bounds])
        padded_tokens = count * tf.reduce_max(tf.concat([lengths, [0]], 0))
        self.pays = tf.logical_and(padded_tokens > 0, grouped_tokens * 5 <= padded_tokens * 4)


def embed_in_length_groups(embed_tokens, tokens, width, groups=GROUPS, min_group_size=MIN_GROUP_SIZE):
    """Sentence embeddings of a batch, computed on groups of similar length when that saves padded work.

    A batch pads every text to its longest one, and BERT's cost grows with the padded length. When
    splitting the batch, sorted by length, into `groups` parts of at least `min_group_size` texts
    would cut the padded tokens by a fifth or more, each part runs with its own padding and the
    results are put back in order. Padding does not change a text's embedding (it is masked out),
    so the result is the same up to float32 rounding.

    Args:
        embed_tokens: callable, tokens dict -> float32 [batch, width]. Best a traced tf.function, so
            that each group reuses its graph.
        tokens: dict of int [batch, seq]: input_ids, token_type_ids, attention_mask.
        width: int. The embedding size.
        groups: int. Parts to split a batch into. Defaults to 4.
        min_group_size: int. Smallest part. Defaults to 8.

    Returns:
        float32 [batch, width], in the order of the batch.
    """
    lengths = tf.reduce_sum(tf.cast(tokens["attention_mask"], tf.int32), axis=1)
    plan = LengthGroups(lengths, groups, min_group_size)

    def one_group(rows, length):
        part = {name: tf.gather(value, rows)[:, :length] for name, value in tokens.items()}
        return tf.cond(tf.size(rows) > 0, lambda: embed_tokens(part), lambda: tf.zeros([0, width], tf.float32))

    def grouped():
        parts = [one_group(rows, length) for rows, length in plan.parts]
        return tf.gather(tf.concat(parts, 0), tf.argsort(plan.order))  # back to the batch's order

    return tf.cond(plan.pays, grouped, lambda: embed_tokens(tokens))
