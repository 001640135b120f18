"""`BertTokenizerLayer`: raw strings to BERT inputs in the graph, equal to transformers' `BertTokenizer`.

The steps follow the reference (`PreTrainedTokenizer.tokenize`, `BasicTokenizer`, `WordpieceTokenizer`,
`truncate_sequences`, `pad`), each a small in-graph function:

    sanitize UTF-8 -> pre-lower outside special and added tokens -> split off special and added
    tokens -> clean (CJK padding) -> NFC -> whitespace words -> normalize words (lower, strip accents)
    -> split on punctuation -> WordPiece -> truncate (longest_first) -> [CLS] a [SEP] (b [SEP]) -> pad

The per-character rules come from tables computed with the running Python (`tfbert.text.chartables`);
tensorflow-text supplies NFC normalization and WordPiece. Its `BertTokenizer`/`FastBertNormalize`
are not used: their case folding and control-character handling differ from the reference
(docs/design.md, "How the tokenizer matches the reference").
"""

import logging

import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras

from tfbert.errors import TfbertError, check_choice, check_positive_int
from tfbert.text import chartables
from tfbert.text.packing import PADDING_CHOICES, check_max_length, pack, truncate_longest_first
from tfbert.text.ragged import position_in_row, row_ids, shift_right
from tfbert.text.special_tokens import SpecialTokenSplitter
from tfbert.text.vocabulary import DEFAULT_SPECIAL_TOKENS, check_added_tokens, read_vocabulary

logger = logging.getLogger(__name__)

def _sanitize_utf8(text):
    """Replaces invalid UTF-8 and NUL by U+FFFD, so that no op below can fail or stop early.

    The reference deletes NUL and U+FFFD alike, at the same step (`_clean_text`), so this changes no
    token. NUL must go: tensorflow-text's `regex_split` stops at the first NUL byte and drops the rest
    of the text (tests/test_tokenizer.py::test_regex_split_stops_at_nul shows it).
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
    )
    return tf.strings.regex_replace(text, "\x00", "\ufffd")


@tf_keras.utils.register_keras_serializable(package="tfbert")
class BertTokenizerLayer(tf_keras.layers.Layer):
    """Tokenizes raw strings (and optional second segments) into BERT inputs, in the graph.

    Token ids equal transformers' Python `BertTokenizer` called as
    `tokenizer(text, text_pair, truncation="longest_first", max_length=max_length, padding=...)`.

    Args:
        vocabulary: str. Path of a WordPiece `vocab.txt`. It is tracked as a SavedModel asset.
        do_lower_case: bool. Lower-case (and, unless strip_accents is False, strip accents). Defaults to True.
        strip_accents: bool or None. As the reference: None follows do_lower_case. Defaults to None.
        tokenize_chinese_chars: bool. Split around CJK ideographs. Defaults to True.
        max_length: int. Longest output, special tokens included; longer inputs are truncated
            `longest_first`. Defaults to 512.
        padding: str. "longest" pads to the longest sequence of the batch, "max_length" to max_length.
            Defaults to "longest".
        max_input_chars_per_word: int. Longer words become the unknown token. Defaults to 100.
        unk_token, sep_token, pad_token, cls_token, mask_token: str. Special tokens; each must be in
            the vocabulary. Literal occurrences in the text become their ids, as in the reference.
        added_tokens: list of {"content", "id", "special"}: tokens added to the reference with
            `add_tokens` (see `tfbert.add_tokens`), in the order added. They are kept whole wherever
            they occur in the (pre-lower-cased) text, as the reference's trie does; special ones are
            also kept from lower-casing. Their ids are lines of `vocabulary`. Defaults to none.
        base_vocabulary_size: int. The first lines of `vocabulary` WordPiece uses (the reference's
            `vocab.txt`); the lines after it are added tokens. Defaults to all lines.

    Call args:
        inputs: string tensor [batch] (or [batch, 1]), or a tuple (text, text_pair) of two such tensors.

    Returns:
        dict of int32 tensors [batch, seq]: "input_ids", "token_type_ids", "attention_mask".

    Example:
    >>> layer = BertTokenizerLayer("vocab.txt")  # doctest: +SKIP
    >>> layer(tf.constant(["The quick brown fox"]))["input_ids"]  # doctest: +SKIP
    """

    def __init__(
        self,
        vocabulary,
        do_lower_case=True,
        strip_accents=None,
        tokenize_chinese_chars=True,
        max_length=512,
        padding="longest",
        max_input_chars_per_word=100,
        unk_token=DEFAULT_SPECIAL_TOKENS["unk_token"],
        sep_token=DEFAULT_SPECIAL_TOKENS["sep_token"],
        pad_token=DEFAULT_SPECIAL_TOKENS["pad_token"],
        cls_token=DEFAULT_SPECIAL_TOKENS["cls_token"],
        mask_token=DEFAULT_SPECIAL_TOKENS["mask_token"],
        added_tokens=None,
        base_vocabulary_size=None,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # Config.
        self.vocabulary = str(vocabulary)
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.max_length = max_length
        self.padding = padding
        self.max_input_chars_per_word = max_input_chars_per_word
        self.unk_token = unk_token
        self.sep_token = sep_token
        self.pad_token = pad_token
        self.cls_token = cls_token
        self.mask_token = mask_token
        self._validate_arguments()

        # Vocabulary, special and added tokens.
        tokens = read_vocabulary(self.vocabulary)
        self.vocabulary_size = len(tokens)
        self.base_vocabulary_size = len(tokens) if base_vocabulary_size is None else base_vocabulary_size
        self.added_tokens = check_added_tokens(added_tokens, tokens, self.base_vocabulary_size, self.vocabulary)
        index = {token: i for i, token in enumerate(tokens[:self.base_vocabulary_size])}
        missing = [t for t in (unk_token, sep_token, pad_token, cls_token, mask_token) if t not in index]
        if missing:
            raise TfbertError(
                f"the special token(s) {missing} are not in the vocabulary {self.vocabulary}; "
                "pass the vocabulary's own tokens (e.g. unk_token='<unk>') or fix the vocabulary."
            )
        self.unk_id, self.sep_id, self.pad_id, self.cls_id, self.mask_id = (
            index[t] for t in (unk_token, sep_token, pad_token, cls_token, mask_token)
        )
        no_split = {t: index[t] for t in self.special_tokens if t in index}
        no_split.update({a["content"]: a["id"] for a in self.added_tokens})
        self.special_ids = [no_split[t] for t in self.special_tokens]
        self._special_token_splitter = SpecialTokenSplitter(self.special_tokens, no_split, self.added_tokens,
                                                            self.do_lower_case)

        # Layers: the vocabulary asset and its lookup table, the character tables, WordPiece.
        self.vocab_asset = tf.saved_model.Asset(self.vocabulary)
        self.vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.vocab_asset,
                key_dtype=tf.string,
                key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                # WordPiece knows the base vocabulary only, as the reference's `WordpieceTokenizer`:
                # added tokens come from the split above. TensorFlow logs "Truncated ... before its
                # end" when the table is loaded; that is this limit at work.
                vocab_size=self.base_vocabulary_size if self.base_vocabulary_size < self.vocabulary_size else None,
            ),
            default_value=-1,
        )
        self._char_tables = chartables.bert_char_tables(
            self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars
        )
        self._wordpiece = tf_text.WordpieceTokenizer(
            self.vocab_table,
            suffix_indicator="##",
            # Longer words were already replaced by the unknown token, counted in characters as the
            # reference counts them (tensorflow-text counts bytes).
            max_bytes_per_word=4 * self.max_input_chars_per_word,
            token_out_type=tf.int64,
            unknown_token=self.unk_token,
        )

    # ----------------------------------------------------------------------------------------------
    # Construction helpers.

    @property
    def special_tokens(self):
        """The special tokens, in the reference's `all_special_tokens` order: BERT's five, then added ones."""
        ordered = [self.unk_token, self.sep_token, self.pad_token, self.cls_token, self.mask_token]
        ordered += [a["content"] for a in getattr(self, "added_tokens", []) if a["special"]]
        return list(dict.fromkeys(ordered))

    @property
    def lookup_tables(self):
        """Every lookup table the layer's graph uses; a `tf.Module` exporting the layer must track them."""
        return [self.vocab_table, *self._special_token_splitter.lookup_tables]

    def _validate_arguments(self):
        check_max_length(self.max_length)
        check_choice("padding", self.padding, PADDING_CHOICES)
        check_positive_int("max_input_chars_per_word", self.max_input_chars_per_word)
        for name in DEFAULT_SPECIAL_TOKENS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TfbertError(f"{name} must be a non-empty string; received {name}={value!r}.")
            if "\x00" in value or "\ufffd" in value:
                # Both are rewritten before special tokens are matched: such a token could never match.
                raise TfbertError(f"{name} must not contain NUL or U+FFFD; received {name}={value!r}.")

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary=self.vocabulary,
            do_lower_case=self.do_lower_case,
            strip_accents=self.strip_accents,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            max_length=self.max_length,
            padding=self.padding,
            max_input_chars_per_word=self.max_input_chars_per_word,
            unk_token=self.unk_token,
            sep_token=self.sep_token,
            pad_token=self.pad_token,
            cls_token=self.cls_token,
            mask_token=self.mask_token,
        )
        if self.added_tokens:
            config.update(added_tokens=[dict(a) for a in self.added_tokens], base_vocabulary_size=self.base_vocabulary_size)
        return config

    # ----------------------------------------------------------------------------------------------
    # In-graph steps.

    def _words(self, segments):
        """[n] strings without special tokens -> ([n, (words)] code points, never-split flag per word).

        Cleaning, CJK padding and NFC, then the whitespace split. Words equal to a special token
        after cleaning are the reference's `never_split`: not lower-cased, not split.
        """
        tables = self._char_tables
        code_points = tf.strings.unicode_decode(segments, "UTF-8", errors="replace", replacement_char=0xFFFD)
        if self.do_lower_case and not self._special_token_splitter.lower_first:  # the shortcut: lower-case after the split
            code_points = tables.lower.apply(code_points)
        cleaned = tables.clean.apply(code_points)
        # Every character left is assigned in Python's Unicode version, so ICU's NFC agrees with
        # `unicodedata.normalize("NFC", ...)` on it; composition must see the cleaned text.
        normalized = tf_text.normalize_utf8(tf.strings.unicode_encode(cleaned, "UTF-8"), "NFC")
        # Only ASCII spaces separate words here: the clean table mapped all other whitespace to it.
        words = tf.strings.split(normalized)
        never_split = self._special_token_splitter.never_split(words.flat_values)
        word_chars = tf.strings.unicode_decode(words.flat_values, "UTF-8")
        return words.with_flat_values(word_chars), never_split

    def _split_words(self, word_chars, never_split):
        """Normalizes words and splits them on punctuation.

        Args:
            word_chars: [n, (words), (chars)] code points.
            never_split: bool [num words].

        Returns:
            [n, (tokens), (chars)] code points.
        """
        tables = self._char_tables
        chars = word_chars.values  # [words, (chars)]
        word_of_char = row_ids(chars)
        if not tables.normalize.is_identity:
            chars = tables.normalize.apply(chars, bypass=tf.gather(never_split, word_of_char))
            word_of_char = row_ids(chars)
        values = chars.values
        kind = tables.split.kinds(values)
        separator = kind == chartables.SEPARATOR
        punctuation = (kind == chartables.PUNCTUATION) & ~tf.gather(never_split, word_of_char)
        first_in_word = position_in_row(chars, word_of_char) == 0
        starts = ~separator & (first_in_word | punctuation | shift_right(punctuation) | shift_right(separator))
        token_of_char = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        kept = ~separator
        tokens = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(values, kept),
            tf.boolean_mask(token_of_char, kept),
            nrows=tf.reduce_sum(tf.cast(starts, tf.int64)),
        )
        # Tokens per segment: each token belongs to the segment of the word of its first character.
        word_of_token = tf.boolean_mask(word_of_char, starts)
        segment_of_token = tf.gather(row_ids(word_chars), word_of_token)
        return tf.RaggedTensor.from_value_rowids(tokens, segment_of_token, nrows=word_chars.nrows())

    def _wordpiece_ids(self, tokens):
        """[n, (tokens), (chars)] code points -> [n, (ids)] int32 WordPiece ids."""
        token_chars = tokens.values
        strings = tf.strings.unicode_encode(token_chars, "UTF-8")
        too_long = token_chars.row_lengths() > self.max_input_chars_per_word
        # The reference emits the unknown token for such words; the vocabulary maps it to its id.
        strings = tf.where(too_long, self.unk_token, strings)
        pieces = self._wordpiece.tokenize(strings)  # [tokens, (pieces)]
        ids = tokens.with_values(pieces).merge_dims(1, 2)
        return tf.cast(ids, tf.int32)

    def tokenize_segments(self, text):
        """Token ids without special tokens added: [batch] strings -> [batch, (ids)] int32."""
        splitter = self._special_token_splitter
        text = splitter.lower_outside_tokens(_sanitize_utf8(text), self._char_tables.lower)
        pieces, special_id = splitter.split(text)
        is_special = special_id >= 0
        plain = tf.where(is_special, "", pieces.flat_values)
        word_chars, never_split = self._words(plain)
        tokens = self._split_words(word_chars, never_split)
        plain_ids = self._wordpiece_ids(tokens)  # [pieces, (ids)]
        special_ids = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(special_id, is_special), tf.cast(is_special, tf.int64)
        )
        per_piece = tf.concat([special_ids, plain_ids], axis=1)
        return pieces.with_flat_values(per_piece).merge_dims(1, 2)

    @staticmethod
    def _as_batch(text, name):
        text = tf.convert_to_tensor(text)
        if text.dtype != tf.string:
            raise TfbertError(f"{name} must be a string tensor; received dtype {text.dtype.name}.")
        if text.shape.rank == 0:
            return tf.reshape(text, [1])
        if text.shape.rank == 2 and text.shape[1] == 1:
            return tf.reshape(text, [-1])
        if text.shape.rank != 1:
            raise TfbertError(f"{name} must have shape [batch] or [batch, 1]; received shape {text.shape}.")
        return text

    def call(self, inputs, text_pair=None):
        if isinstance(inputs, dict):
            inputs, text_pair = inputs["text"], inputs.get("text_pair")
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise TfbertError(f"pass a text tensor or a (text, text_pair) pair; received {len(inputs)} inputs.")
            inputs, text_pair = inputs
        ids_a = self.tokenize_segments(self._as_batch(inputs, "text"))
        ids_b = None if text_pair is None else self.tokenize_segments(self._as_batch(text_pair, "text_pair"))
        segments = truncate_longest_first(ids_a, ids_b, self.max_length)
        return pack(segments, self.cls_id, self.sep_id, self.pad_id, self.max_length, self.padding)
