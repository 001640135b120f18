"""Character offsets: which characters of the input each token came from, through every tokenizer step.

Offsets count code points of the input, as Python's `str` indices and transformers' `offset_mapping`
count them; a token's offsets are (start, end), end exclusive. Each code point carries the span of
input it came from:

- per-character rules (lower-casing, cleaning, CJK padding, accent stripping): every output
  character carries its input character's span; a deleted character (a control) is in no token;
- NFC: ICU reports each stretch of text it changed. Within a stretch of m outputs from n inputs,
  output i comes from input i (the last one when i >= n), and the last output also from the inputs
  left over, so a composed character (m = 1) covers all its inputs. Accent stripping then gives
  the i-th character it writes for a composed one the i-th input's span: a combining mark it
  removes is not covered, as in `BertTokenizerFast`, which does not compose;
- a token spans from its first character's start to its last character's end; a WordPiece piece,
  the characters its bytes belong to (the pieces of one decomposed character share its span);
- unassigned code points, which the reference deletes, are covered by the [UNK] of the word they
  touch, as `BertTokenizerFast` (which keeps them) covers them: where both tokenizers give the same
  ids, the offsets are the same (tests/test_offsets.py).

Invalid UTF-8 is repaired first (`sanitize_utf8`): offsets count the code points of the repaired
text, which equals Python's `bytes.decode("utf-8", errors="replace")` on the cases tested.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.text import chartables
from tfbert.text.ragged import concat_rows, expand_values, from_rows, position_in_row, row_ids, shift_right


def sanitize_utf8(text):
    """Replaces invalid UTF-8 and NUL by U+FFFD, so that no op below can fail or stop early.

    The reference deletes NUL and U+FFFD alike, at the same step (`_clean_text`), so this changes no
    token. NUL must go: tensorflow-text's `regex_split` stops at the first NUL byte and drops the rest
    of the text (tests/test_tokenizer.py::test_regex_split_stops_at_nul shows it).
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
    )
    return tf.strings.regex_replace(text, "\x00", "\ufffd")


def utf8_widths(code_points):
    """Bytes of each code point in UTF-8 (int64, same shape)."""
    return 1 + sum(tf.cast(code_points >= limit, tf.int64) for limit in (0x80, 0x800, 0x10000))


def decode(text):
    """[batch] valid UTF-8 strings -> (code points int32 [batch, (chars)], spans int64 [chars, 2])."""
    code_points = tf.strings.unicode_decode(text, "UTF-8")
    start = position_in_row(code_points, row_ids(code_points))
    return code_points, tf.stack([start, start + 1], axis=1)


def map_chars(table, code_points, spans, bypass=None):
    """`table.apply` where each output character carries the span of the character it came from."""
    mapped, _ = table.map_values(code_points.flat_values, bypass)
    spans = tf.repeat(spans, mapped.row_lengths(), axis=0)
    return expand_values(code_points, mapped), spans


def compose(code_points, spans):
    """NFC, as the reference's `unicodedata.normalize("NFC", ...)`, remembering constituents.

    Args:
        code_points: int32 [n, (chars)].
        spans: int64 [chars, 2], one per flat code point.

    Returns:
        (code points int32 [n, (chars')], constituents int64 [chars', (k), 2]: the spans of the
        characters each output character was composed from, at least one).
    """
    text = tf.strings.unicode_encode(code_points, "UTF-8")
    # One row more, dropped below: tensorflow-text's find_source_offsets crashes the process (SIGSEGV)
    # on a batch of no rows (tests/test_offsets.py shows it).
    normalized, offsets_map = tf_text.normalize_utf8_with_offsets_map(tf.concat([text, [""]], 0), "NFC")
    composed, byte_starts = tf.strings.unicode_decode_with_offsets(normalized, "UTF-8")
    # Each row's end closes its last character. It also keeps every row non-empty: tensorflow-text's
    # find_source_offsets fails on a batch with an empty row ("Input offset tensor dimension did not
    # match the offset map dimension"; tests/test_offsets.py shows it).
    row_end_bytes = tf.cast(tf.strings.length(normalized), byte_starts.dtype)[:, None]
    bounds = tf_text.find_source_offsets(
        offsets_map, concat_rows([byte_starts, tf.RaggedTensor.from_tensor(row_end_bytes)]))[:-1]
    composed = composed[:-1]
    # Byte positions over the whole batch (rows follow each other) -> flat indices of source characters.
    row_base = tf.cumsum(tf.cast(tf.strings.length(text), tf.int64), exclusive=True)
    char_bytes = tf.cumsum(utf8_widths(code_points.flat_values), exclusive=True)
    rows = row_ids(composed)
    base = tf.gather(row_base, rows)
    first = tf.searchsorted(char_bytes, base + tf.cast(bounds[:, :-1].flat_values, tf.int64), side="left",
                            out_type=tf.int64)
    last = tf.searchsorted(char_bytes, base + tf.cast(bounds[:, 1:].flat_values, tf.int64), side="left",
                           out_type=tf.int64)
    # ICU maps a changed stretch to its first output character; the others of the stretch get an empty
    # range. Within a stretch of m outputs from n sources, output i takes source i (the last one when
    # i >= n), and the stretch's last output also the sources left: all n when m is 1 (composition).
    starts = (last > first) | (position_in_row(composed, rows) == 0)
    first = tf.minimum(first, tf.gather(code_points.row_limits(), rows) - 1)
    stretch = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    stretch_first = tf.gather(tf.boolean_mask(first, starts), stretch)
    stretch_last = tf.gather(tf.boolean_mask(tf.maximum(last, first + 1), starts), stretch)
    index = tf.range(tf.size(first, out_type=tf.int64)) - tf.gather(tf.where(starts)[:, 0], stretch)
    size = tf.gather(tf.math.bincount(stretch, dtype=tf.int64), stretch)
    low = stretch_first + tf.minimum(index, stretch_last - stretch_first - 1)
    high = tf.where(index == size - 1, stretch_last, low + 1)
    return composed, tf.gather(spans, tf.ragged.range(low, high))


def map_composed(table, code_points, constituents, bypass=None):
    """`table.apply` after `compose`: -> (code points [n, (chars')], spans int64 [chars', 2]).

    A character the table keeps covers all its constituents; one it rewrites into m characters gives
    the i-th of them the i-th constituent's span (the last one's when there are fewer).
    """
    count = tf.shape(code_points.flat_values, out_type=tf.int64)[0]
    owner = row_ids(constituents)
    union = tf.stack([tf.math.unsorted_segment_min(constituents.flat_values[:, 0], owner, count),
                      tf.math.unsorted_segment_max(constituents.flat_values[:, 1], owner, count)], axis=1)
    if table.is_identity:
        return code_points, union
    mapped, kind = table.map_values(code_points.flat_values, bypass)
    source = row_ids(mapped)
    index = position_in_row(mapped, source)
    pick = tf.gather(constituents.row_starts(), source) + tf.minimum(
        index, tf.gather(constituents.row_lengths(), source) - 1)
    kept = tf.gather(kind == chartables.KEEP, source)
    spans = tf.where(kept[:, None], tf.gather(union, source), tf.gather(constituents.flat_values, pick))
    return expand_values(code_points, mapped), spans


def split_on(code_points, separator, starts_token=None):
    """Splits rows of characters into tokens at separators (dropped) and before and after `starts_token`
    characters (kept, one a token).

    Args:
        code_points: int32 [n, (chars)].
        separator: bool [chars].
        starts_token: bool [chars] or None.

    Returns:
        (tokens int32 [n, (tokens), (chars)], kept bool [chars]: the characters in a token).
    """
    values = code_points.flat_values
    rows = row_ids(code_points)
    first_in_row = position_in_row(code_points, rows) == 0
    boundary = first_in_row | shift_right(separator)
    if starts_token is not None:
        boundary = boundary | starts_token | shift_right(starts_token)
    starts = ~separator & boundary
    token_of_char = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    kept = ~separator
    tokens = from_rows(tf.boolean_mask(values, kept), tf.boolean_mask(token_of_char, kept),
                       tf.reduce_sum(tf.cast(starts, tf.int64)))
    row_of_token = tf.boolean_mask(rows, starts)
    return from_rows(tokens, row_of_token, code_points.nrows()), kept


def piece_spans(tokens, spans, byte_starts, byte_ends, whole):
    """Spans of WordPiece pieces from their byte offsets within their token.

    Args:
        tokens: int32 [tokens, (chars)] code points.
        spans: int64 [chars, 2], one per character of `tokens`.
        byte_starts, byte_ends: int64 [tokens, (pieces)] byte offsets of each piece in its token.
        whole: bool [tokens]: the piece is the whole token (it became [UNK] before WordPiece).

    Returns:
        int64 [tokens, (pieces), 2].
    """
    char_bytes = tf.cumsum(utf8_widths(tokens.flat_values), exclusive=True)
    token_base = tf.gather(tf.concat([char_bytes, [0]], 0), tokens.row_starts())
    owner = row_ids(byte_starts)
    base = tf.gather(token_base, owner)
    first = tf.searchsorted(char_bytes, base + byte_starts.flat_values, side="right", out_type=tf.int64) - 1
    end = tf.searchsorted(char_bytes, base + byte_ends.flat_values, side="left", out_type=tf.int64)
    whole = tf.gather(whole, owner)
    first = tf.where(whole, tf.gather(tokens.row_starts(), owner), first)
    end = tf.where(whole, tf.gather(tokens.row_limits(), owner), end)
    end = tf.maximum(end, first + 1)
    result = tf.stack([tf.gather(spans[:, 0], first), tf.gather(spans[:, 1], end - 1)], axis=1)
    return byte_starts.with_flat_values(result)


def _positions(flags):
    """(positions of the set flags, int64 [n + 1]: how many are set before each index)."""
    return tf.where(flags)[:, 0], tf.cumsum(tf.concat([tf.cast(flags, tf.int64), [0]], 0), exclusive=True)


def extend_over(spans, extend, unassigned, dropped, isolated, text_chars):
    """Widens whole-word spans over the unassigned code points right before and after them.

    BertTokenizerFast keeps the unassigned code points the reference deletes, as characters of the word
    they touch: where both tokenizers make that word [UNK], its offsets cover them too, and the
    characters both delete between them and the word. A character that is a token of its own
    (punctuation, a CJK ideograph) does not take them in: for the fast tokenizer they form a word.

    Args:
        spans: int64 [batch, (ids), 2], within each text.
        extend: bool [ids]: the spans to widen.
        unassigned: bool [chars], one per character of `text_chars`.
        dropped: bool [chars]: characters in no token (unassigned ones included).
        isolated: bool [chars]: characters that are a token of their own.
        text_chars: [batch, (chars)] the texts' characters.

    Returns:
        int64 [batch, (ids), 2].
    """
    count = tf.size(dropped, out_type=tf.int64)
    stops, stops_before = _positions(~dropped)
    anchors, anchors_before = _positions(unassigned)
    stops = tf.concat([[-1], stops, [count]], 0)  # index k + 1: the k-th stop
    anchors = tf.concat([[-1], anchors, [count]], 0)
    rows = row_ids(spans)
    base, limit = tf.gather(text_chars.row_starts(), rows), tf.gather(text_chars.row_limits(), rows)
    start, end = spans.flat_values[:, 0] + base, spans.flat_values[:, 1] + base
    # After the span: up to the last unassigned character before the next character that stays.
    next_stop = tf.minimum(tf.gather(stops, tf.gather(stops_before, end) + 1), limit)
    last_anchor = tf.gather(anchors, tf.gather(anchors_before, next_stop))
    wider_end = tf.where(last_anchor >= end, last_anchor + 1, end)
    # Before it: from the first unassigned character after the previous character that stays.
    previous_stop = tf.maximum(tf.gather(stops, tf.gather(stops_before, start)), base - 1)
    first_anchor = tf.gather(anchors, tf.gather(anchors_before, previous_stop + 1) + 1)
    wider_start = tf.where(first_anchor < start, first_anchor, start)
    start = tf.where(extend & ~tf.gather(isolated, tf.minimum(start, count - 1)), wider_start, start)
    end = tf.where(extend & ~tf.gather(isolated, tf.maximum(end - 1, 0)), wider_end, end)
    return spans.with_flat_values(tf.stack([start, end], axis=1) - base[:, None])
