"""Packing token ids into BERT inputs, as pure in-graph functions: truncate, combine segments, pad.

    [batch, (ids)] (and a second segment) -> truncate `longest_first` -> [CLS] a [SEP] (b [SEP])
    -> pad -> {"input_ids", "token_type_ids", "attention_mask"} [batch, seq]

Padding is tensorflow-text's `pad_model_inputs`. Truncation is our own: tensorflow-text's trimmers
(`RoundRobinTrimmer`, `WaterfallTrimmer`) keep other tokens than the reference's `longest_first` when
the segments differ in length. So is combining: tensorflow-text's `combine_segments` gives the same
tensors, with a ragged concatenation whose validation adds 8 conditionals to every graph that packs a
pair (`tfbert.text.ragged`).
"""

import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.errors import TfbertError
from tfbert.text.ragged import concat_rows, truncate_rows

PADDING_CHOICES = ("longest", "max_length")
MIN_MAX_LENGTH = 3  # [CLS] a [SEP] b [SEP] needs room for its three special tokens


def check_max_length(max_length, limit=None, limit_name=""):
    """Raises TfbertError unless MIN_MAX_LENGTH <= max_length (<= limit)."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < MIN_MAX_LENGTH or (
            limit is not None and max_length > limit):
        if limit is None:
            raise TfbertError(f"max_length must be an integer of at least {MIN_MAX_LENGTH} ([CLS] a [SEP] b [SEP]); "
                              f"received max_length={max_length!r}.")
        raise TfbertError(f"max_length must be between {MIN_MAX_LENGTH} and {limit} ({limit_name}); "
                          f"received max_length={max_length!r}.")
    return max_length


def longest_first_lengths(len_a, len_b, budget):
    """Token counts kept by the reference's `longest_first` truncation of a pair.

    The closed form of `PreTrainedTokenizerBase.truncate_sequences` (transformers 4.57): the longer
    sequence loses the difference first, then both lose half of the rest, the second one the odd token.
    """
    remove = tf.maximum(len_a + len_b - budget, 0)
    first_remove = tf.minimum(tf.abs(len_b - len_a), remove)
    second_remove = remove - first_remove
    a_longer = len_a > len_b
    remove_a = tf.where(a_longer, first_remove + second_remove // 2, second_remove // 2)
    remove_b = tf.where(a_longer, second_remove - second_remove // 2, first_remove + second_remove - second_remove // 2)
    return len_a - remove_a, len_b - remove_b


def truncate_longest_first(ids_a, ids_b, max_length):
    """Truncates segments (ragged int [batch, (ids)]; ids_b may be None) so that with [CLS] and [SEP]s they
    fit max_length, as the reference's `longest_first`; returns the list of kept segments."""
    len_a = tf.cast(ids_a.row_lengths(), tf.int32)
    if ids_b is None:
        return [truncate_rows(ids_a, tf.minimum(len_a, max_length - 2))]
    keep_a, keep_b = longest_first_lengths(len_a, tf.cast(ids_b.row_lengths(), tf.int32), max_length - 3)
    return [truncate_rows(ids_a, keep_a), truncate_rows(ids_b, keep_b)]


def combine_segments(segments, cls_id, sep_id):
    """[CLS] a [SEP] (b [SEP]) for each row of one or two ragged [batch, (ids)]: -> (ids, segment ids),
    both ragged [batch, (ids)], as tensorflow-text's `combine_segments`."""
    batch = segments[0].nrows()

    def column(value, dtype):  # [batch, (1)]
        return tf.RaggedTensor.from_row_splits(tf.fill([batch], tf.cast(value, dtype)),
                                               tf.range(batch + 1, dtype=batch.dtype), validate=False)

    ids, types = [column(cls_id, segments[0].dtype)], [column(0, tf.int32)]
    for index, segment in enumerate(segments):
        ids += [segment, column(sep_id, segment.dtype)]
        types += [segment.with_values(tf.fill(tf.shape(segment.values), index)), column(index, tf.int32)]
    return concat_rows(ids), concat_rows(types)


def pack(segments, cls_id, sep_id, pad_id, max_length, padding="longest"):
    """Truncated segments -> padded BERT inputs.

    Args:
        segments: list of one or two ragged int32 [batch, (ids)], already truncated.
        cls_id, sep_id, pad_id: int. The special tokens' ids.
        max_length: int. The width with padding="max_length".
        padding: str. "longest": to the batch's longest sequence (at least 2, which also gives an
            empty batch a sequence axis attention layers accept); "max_length": to max_length.

    Returns:
        dict of int32 [batch, seq]: "input_ids", "token_type_ids", "attention_mask".
    """
    input_ids, segment_ids = combine_segments(segments, cls_id, sep_id)
    if padding == "max_length":
        width = max_length
    else:
        width = tf.maximum(tf.reduce_max(tf.concat([input_ids.row_lengths(), [0]], 0)), 2)
    input_ids, attention_mask = tf_text.pad_model_inputs(input_ids, width, pad_value=pad_id)
    token_type_ids, _ = tf_text.pad_model_inputs(segment_ids, width, pad_value=0)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
