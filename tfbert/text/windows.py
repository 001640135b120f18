"""Overflowing windows of a long second text: transformers' `truncation="only_second"` with `stride`.

`tokenizer(question, context, truncation="only_second", max_length=L, stride=S,
return_overflowing_tokens=True)` keeps the whole question in every window and cuts the context into
windows of `room = L - 3 - len(question)` tokens, each starting `room - S` tokens after the one before
(so consecutive windows share S tokens), until a window reaches the context's end. An empty context
is one window. Here the same in the graph, with a cap on windows a text so that a huge context
cannot exhaust memory: its tokens past the last window are left out, as truncation leaves them out.
"""

import tensorflow as tf

from tfbert.errors import TfbertError, check_positive_int
from tfbert.text.ragged import from_lengths


def check_window_options(max_length, stride, max_question_length, max_windows):
    """Raises TfbertError unless every window has room for more context tokens than the stride."""
    check_positive_int("max_question_length", max_question_length, "question tokens kept")
    check_positive_int("max_windows", max_windows, "windows a context")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise TfbertError(f"stride (doc_stride) must be an integer >= 0; received {stride!r}.")
    room = max_length - 3 - max_question_length
    if room <= stride:
        raise TfbertError(
            f"with max_length={max_length} and max_question_length={max_question_length}, a window has room for "
            f"{room} context tokens, which must be more than the stride ({stride}); lower the stride or "
            "max_question_length, or raise max_length.")


def windows(first_length, second_length, max_length, stride, max_windows):
    """The windows of each pair: which pair, and which span of the second text's tokens.

    Args:
        first_length, second_length: int64 [batch]. Token counts, the first already truncated so that
            room = max_length - 3 - first_length > stride.
        max_length, stride, max_windows: int.

    Returns:
        (pair [windows] int64, start [windows] int64, length [windows] int64), windows in order of
        pair, then position.
    """
    room = max_length - 3 - first_length
    step = room - stride
    count = 1 + (tf.maximum(second_length - room, 0) + step - 1) // step
    count = tf.minimum(count, max_windows)
    pair = tf.repeat(tf.range(tf.size(count, out_type=tf.int64)), count)
    index = tf.ragged.range(count).flat_values
    start = index * tf.gather(step, pair)
    length = tf.maximum(tf.minimum(tf.gather(room, pair), tf.gather(second_length, pair) - start), 0)
    return pair, start, length


def gather_spans(ragged, rows, start, length):
    """Row `rows[i]`'s values start[i] to start[i] + length[i] of a ragged [batch, (n), ...] -> [windows, (n), ...]."""
    first = start + tf.gather(ragged.row_starts(), rows)
    flat = tf.ragged.range(first, first + length)
    return from_lengths(tf.gather(ragged.values, flat.flat_values), length)
