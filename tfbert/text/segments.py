"""`Segmenter`: one text to WordPiece ids (and character offsets), as the reference's `tokenize`.

    sanitize UTF-8 -> pre-lower outside special and added tokens -> split off special and added
    tokens -> clean (CJK padding) -> NFC -> whitespace words -> normalize words (lower, strip accents)
    -> split on punctuation -> WordPiece

`BertTokenizerLayer` truncates and packs what it returns. The per-character rules come from tables
computed with the running Python (`tfbert.text.chartables`); tensorflow-text supplies NFC and WordPiece.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.text import chartables, offsets
from tfbert.text.offsets import sanitize_utf8
from tfbert.text.ragged import concat_rows, from_lengths, join_rows, row_ids


class Segmenter(tf.Module):
    """The reference's `PreTrainedTokenizer.tokenize` (`BasicTokenizer`, `WordpieceTokenizer`) in the graph.

    Args:
        char_tables: `chartables.BertCharTables` of the configuration.
        special_token_splitter: `SpecialTokenSplitter`.
        vocab_table: the vocabulary's lookup table (the base vocabulary: WordPiece's).
        do_lower_case: bool.
        unk_token: str. unk_id: int.
        max_input_chars_per_word: int. Longer words become the unknown token.
    """

    def __init__(self, char_tables, special_token_splitter, vocab_table, do_lower_case, unk_token, unk_id,
                 max_input_chars_per_word):
        super().__init__(name="segmenter")
        self.char_tables, self.special_token_splitter = char_tables, special_token_splitter
        self.do_lower_case, self.unk_token, self.unk_id = do_lower_case, unk_token, unk_id
        self.max_input_chars_per_word = max_input_chars_per_word
        self._wordpiece = tf_text.WordpieceTokenizer(
            vocab_table,
            suffix_indicator="##",
            # Longer words were already replaced by the unknown token, counted in characters as the
            # reference counts them (tensorflow-text counts bytes).
            max_bytes_per_word=4 * max_input_chars_per_word,
            token_out_type=tf.int64,
            unknown_token=unk_token,
        )

    def _words(self, segments):
        """[n] strings without special tokens -> ([n, (words)] code points, never-split flag per word).

        Cleaning, CJK padding and NFC, then the whitespace split. Words equal to a special token
        after cleaning are the reference's `never_split`: not lower-cased, not split.
        """
        tables = self.char_tables
        code_points = tf.strings.unicode_decode(segments, "UTF-8", errors="replace", replacement_char=0xFFFD)
        if self.do_lower_case and not self.special_token_splitter.lower_first:  # the shortcut: lower-case after the split
            code_points = tables.lower.apply(code_points)
        cleaned = tables.clean.apply(code_points)
        # Every character left is assigned in Python's Unicode version, so ICU's NFC agrees with
        # `unicodedata.normalize("NFC", ...)` on it; composition must see the cleaned text.
        normalized = tf_text.normalize_utf8(tf.strings.unicode_encode(cleaned, "UTF-8"), "NFC")
        # Only ASCII spaces separate words here: the clean table mapped all other whitespace to it.
        words = tf.strings.split(normalized)
        never_split = self.special_token_splitter.never_split(words.flat_values)
        word_chars = tf.strings.unicode_decode(words.flat_values, "UTF-8")
        return words.with_flat_values(word_chars), never_split

    def _split_words(self, word_chars, never_split, constituents=None):
        """Normalizes words and splits them on punctuation.

        Args:
            word_chars: [n, (words), (chars)] code points.
            never_split: bool [num words].
            constituents: int64 [chars, (k), 2] from `offsets.compose`, to track offsets. Defaults to None.

        Returns:
            ([n, (tokens), (chars)] code points, int64 [token chars, 2] spans or None).
        """
        tables = self.char_tables
        chars = word_chars.values  # [words, (chars)]
        bypass = tf.gather(never_split, row_ids(chars))
        spans = None
        if constituents is not None:
            chars, spans = offsets.map_composed(tables.normalize, chars, constituents, bypass)
        elif not tables.normalize.is_identity:
            chars = tables.normalize.apply(chars, bypass=bypass)
        kind = tables.split.kinds(chars.values)
        punctuation = (kind == chartables.PUNCTUATION) & ~tf.gather(never_split, row_ids(chars))
        tokens, kept = offsets.split_on(chars, kind == chartables.SEPARATOR, punctuation)  # [words, (tokens), (chars)]
        tokens = join_rows(word_chars, tokens)  # each token in its word's segment
        return tokens, None if spans is None else tf.boolean_mask(spans, kept)

    def _wordpiece_ids(self, tokens, spans=None):
        """[n, (tokens), (chars)] code points (and int64 [chars, 2] spans) -> [n, (ids)] int32 WordPiece
        ids (and int64 [n, (ids), 2] spans, or None)."""
        token_chars = tokens.values
        strings = tf.strings.unicode_encode(token_chars, "UTF-8")
        too_long = token_chars.row_lengths() > self.max_input_chars_per_word
        # The reference emits the unknown token for such words; the vocabulary maps it to its id.
        strings = tf.where(too_long, self.unk_token, strings)
        if spans is None:
            pieces = self._wordpiece.tokenize(strings)  # [tokens, (pieces)]
            return tf.cast(join_rows(tokens, pieces), tf.int32), None
        pieces, starts, ends = self._wordpiece.tokenize_with_offsets(strings)
        piece_spans = offsets.piece_spans(token_chars, spans, starts, ends, whole=too_long)
        return tf.cast(join_rows(tokens, pieces), tf.int32), join_rows(tokens, piece_spans)

    def tokenize(self, text):
        """Token ids without special tokens added: [batch] strings -> [batch, (ids)] int32."""
        splitter = self.special_token_splitter
        text = splitter.lower_outside_tokens(sanitize_utf8(text), self.char_tables.lower)
        pieces, special_id = splitter.split(text)
        is_special = special_id >= 0
        plain = tf.where(is_special, "", pieces.flat_values)
        word_chars, never_split = self._words(plain)
        tokens, _ = self._split_words(word_chars, never_split)
        plain_ids, _ = self._wordpiece_ids(tokens)  # [pieces, (ids)]
        return _join_pieces(pieces, is_special, special_id, plain_ids)

    def tokenize_with_offsets(self, text):
        """`tokenize` with each token's (start, end) in its text, counted in code points
        (`tfbert.text.offsets` gives the rules): -> ([batch, (ids)] int32, [batch, (ids), 2] int64)."""
        tables, splitter = self.char_tables, self.special_token_splitter
        text = sanitize_utf8(text)
        code_points, spans = offsets.decode(text)
        text_chars = code_points
        if splitter.lower_first:
            pieces, keep = splitter.keep_case_pieces(text)
            bypass = tf.repeat(keep, tf.strings.length(pieces.flat_values, unit="UTF8_CHAR"))
            code_points, spans = offsets.map_chars(tables.lower, code_points, spans, bypass)
            text = tf.strings.unicode_encode(code_points, "UTF-8")
        pieces, special_id = splitter.split(text)
        is_special = special_id >= 0
        piece_chars = from_lengths(code_points.flat_values,
                                   tf.cast(tf.strings.length(pieces.flat_values, unit="UTF8_CHAR"), tf.int64))
        piece_spans = tf.stack([tf.gather(spans[:, 0], piece_chars.row_starts()),
                                tf.gather(spans[:, 1], piece_chars.row_limits() - 1)], axis=1)
        plain = tf.repeat(~is_special, piece_chars.row_lengths())
        chars, spans = tf.ragged.boolean_mask(piece_chars, piece_chars.with_values(plain)), tf.boolean_mask(spans, plain)
        if self.do_lower_case and not splitter.lower_first:
            chars, spans = offsets.map_chars(tables.lower, chars, spans)
        chars, spans = offsets.map_chars(tables.clean, chars, spans)
        chars, constituents = offsets.compose(chars, spans)
        word_chars, kept = offsets.split_on(chars, tf.equal(chars.flat_values, ord(" ")))
        never_split = splitter.never_split(tf.strings.unicode_encode(word_chars.values, "UTF-8"))
        tokens, spans = self._split_words(word_chars, never_split, tf.gather(constituents, tf.where(kept)[:, 0]))
        plain_ids, plain_spans = self._wordpiece_ids(tokens, spans)  # [pieces, (ids)], [pieces, (ids), 2]
        ids = _join_pieces(pieces, is_special, special_id, plain_ids)
        spans = _join_pieces(pieces, is_special, piece_spans, plain_spans)
        return ids, self._cover_unassigned(ids, spans, text_chars)

    def _cover_unassigned(self, ids, spans, text_chars):
        """`offsets.extend_over` for the [UNK] ids: the characters' classes it needs, from the tables."""
        tables, chars = self.char_tables, text_chars.flat_values
        clean = tables.clean.kinds(chars)
        unassigned = tf.equal(clean, chartables.UNASSIGNED)
        dropped = unassigned | tf.equal(clean, chartables.DROP) | tf.equal(tables.normalize.kinds(chars), chartables.DROP)
        isolated = tf.equal(clean, chartables.PAD) | tf.equal(tables.split.kinds(chars), chartables.PUNCTUATION)
        return offsets.extend_over(spans, tf.equal(ids.flat_values, self.unk_id), unassigned, dropped, isolated,
                                   text_chars)


def _join_pieces(pieces, is_special, special_values, plain_values):
    """Each piece's values in text order: a special token's one value, or its words' [pieces, (n), ...]
    -> [batch, (n), ...]."""
    special = from_lengths(tf.boolean_mask(special_values, is_special), tf.cast(is_special, tf.int64))
    return join_rows(pieces, concat_rows([special, plain_values]))

