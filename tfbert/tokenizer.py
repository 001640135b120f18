"""`BertTokenizerLayer`: raw strings to BERT inputs in the graph, equal to transformers' `BertTokenizer`.

The steps follow the reference (`PreTrainedTokenizer.tokenize`, `BasicTokenizer`, `WordpieceTokenizer`,
`truncate_sequences`, `pad`), each a small in-graph function:

    sanitize UTF-8 -> pre-lower outside special and added tokens -> split off special and added
    tokens -> clean (CJK padding) -> NFC -> whitespace words -> normalize words (lower, strip accents)
    -> split on punctuation -> WordPiece -> truncate (longest_first) -> [CLS] a [SEP] (b [SEP]) -> pad

The per-character rules come from tables computed with the running Python (`tfbert.chartables`);
tensorflow-text supplies NFC normalization and WordPiece. Its `BertTokenizer`/`FastBertNormalize`
are not used: their case folding and control-character handling differ from the reference
(DESIGN.md, "Measured divergences").
"""

import logging
import re

import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras

from tfbert import chartables
from tfbert.errors import TfbertError

logger = logging.getLogger(__name__)

DEFAULT_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
PADDING_CHOICES = ("longest", "max_length")
MIN_MAX_LENGTH = 3  # [CLS] a [SEP] b [SEP] needs room for its three special tokens


def read_vocabulary(path):
    """Reads a WordPiece vocabulary as the reference does: one token per line, line number as id.

    Raises:
        TfbertError: the file is missing, empty, not UTF-8, or has lines the graph would read
            differently from the reference (duplicates, carriage returns).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TfbertError(f"cannot read the vocabulary file {path}: {e.strerror}.") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TfbertError(f"the vocabulary file {path} is not UTF-8 text ({e}).") from e
    if "\r" in text:
        raise TfbertError(
            f"the vocabulary file {path} has carriage returns (Windows line endings); "
            "convert it to '\\n' line endings, e.g. with `dos2unix`."
        )
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise TfbertError(f"the vocabulary file {path} is empty.")
    seen = {}
    for line, token in enumerate(tokens, start=1):
        if token in seen:
            raise TfbertError(
                f"the vocabulary file {path} lists {token!r} twice (lines {seen[token]} and {line}); "
                "each token must appear once."
            )
        seen[token] = line
    return tokens


def check_added_tokens(added_tokens, vocabulary_tokens, base_vocabulary_size, path="the vocabulary"):
    """Validates a tokenizer's added tokens against its (extended) vocabulary; returns them normalized.

    Args:
        added_tokens: list of {"content": str, "id": int, "special": bool}, in the order they were
            added (transformers' `added_tokens_decoder`, without the five BERT special tokens).
        vocabulary_tokens: list of str. The vocabulary file's lines.
        base_vocabulary_size: int. The lines WordPiece uses; the lines after it are added tokens.

    Raises:
        TfbertError: naming the entry that is malformed or disagrees with the vocabulary.
    """
    checked, seen = [], set()
    for entry in added_tokens or []:
        if not isinstance(entry, dict) or set(entry) - {"content", "id", "special"} or "content" not in entry or "id" not in entry:
            raise TfbertError(f"each added token must be a dict with 'content', 'id' and 'special'; received {entry!r}.")
        content, token_id, special = entry["content"], entry["id"], bool(entry.get("special", False))
        if not isinstance(content, str) or not content or any(c in content for c in "\n\r\x00\ufffd"):
            raise TfbertError(f"added token {content!r} must be a non-empty string without line breaks, NUL or U+FFFD.")
        if content in seen:
            raise TfbertError(f"added token {content!r} is listed twice.")
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < len(vocabulary_tokens):
            raise TfbertError(f"added token {content!r} has id {token_id!r}, outside {path} (0 to {len(vocabulary_tokens) - 1}).")
        if vocabulary_tokens[token_id] != content:
            raise TfbertError(f"added token {content!r} has id {token_id}, but line {token_id + 1} of {path} is "
                              f"{vocabulary_tokens[token_id]!r}.")
        seen.add(content)
        checked.append({"content": content, "id": token_id, "special": special})
    if isinstance(base_vocabulary_size, bool) or not isinstance(base_vocabulary_size, int) or not (
            1 <= base_vocabulary_size <= len(vocabulary_tokens)):
        raise TfbertError(f"base_vocabulary_size must be between 1 and {len(vocabulary_tokens)} (the lines of {path}); "
                          f"received {base_vocabulary_size!r}.")
    listed = {entry["id"] for entry in checked}
    unlisted = [i for i in range(base_vocabulary_size, len(vocabulary_tokens)) if i not in listed]
    if unlisted:
        raise TfbertError(f"line {unlisted[0] + 1} of {path} ({vocabulary_tokens[unlisted[0]]!r}) comes after the "
                          f"{base_vocabulary_size} WordPiece tokens but is not an added token.")
    return checked


def _alternation(tokens):
    return "|".join(re.escape(t) for t in tokens)


def _string_table(keys, values):
    """A constant string -> int32 lookup table, -1 for other strings."""
    with tf.init_scope():
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(values, tf.int32)),
            default_value=-1,
        )


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


def _row_ids(ragged):
    """The row of each (outermost) value of a ragged tensor, in O(values + rows).

    `RaggedTensor.value_rowids()` builds a [rows, longest row] mask on the way: one 1 MB word in a
    batch of many short ones would ask for gigabytes. Here each row start bumps a cumulative sum.
    """
    num_values = ragged.row_splits[-1]
    inner_splits = ragged.row_splits[1:-1]
    bumps = tf.math.unsorted_segment_sum(tf.ones_like(inner_splits), inner_splits, num_values + 1)
    return tf.cumsum(bumps[:num_values])


def _position_in_row(ragged, row_ids):
    """The index of each value of a ragged tensor (ragged rank 1) within its row."""
    return tf.range(ragged.row_splits[-1], dtype=tf.int64) - tf.gather(ragged.row_starts(), row_ids)


def _shift_right(flags):
    """flags[i - 1] at position i, False at position 0."""
    return tf.concat([[False], flags[:-1]], axis=0)


def _truncate_rows(ragged, lengths):
    """Keeps the first `lengths[i]` values of row i of a ragged tensor [batch, (n)]."""
    row_ids = _row_ids(ragged)
    keep = _position_in_row(ragged, row_ids) < tf.gather(tf.cast(lengths, tf.int64), row_ids)
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(ragged.values, keep), tf.boolean_mask(row_ids, keep), nrows=ragged.nrows()
    )


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
        self._special_ids = [no_split[t] for t in self.special_tokens]
        # The reference's `tokenize`: lower-case the text except where a special token, then an added
        # (normalized) token matches, leftmost first in that order (its `re.sub`); then split off every
        # special and added token, leftmost and longest first (its trie), in the lower-cased text.
        # A shortcut, exact when there are no added tokens, every special token has an ASCII capital
        # (which no character lower-cases to, so lower-casing can neither make nor break a match) and
        # none is inside another: split special tokens off the text first, lower-case the rest after.
        split_first = not self.added_tokens and all(
            any("A" <= c <= "Z" for c in t) and not any(t != u and t in u for u in self.special_tokens)
            for t in self.special_tokens)
        self._lower_first = self.do_lower_case and not split_first
        if self._lower_first:
            keep_case = self.special_tokens + [a["content"] for a in self.added_tokens if not a["special"]]
            self._keep_case_pattern = _alternation(keep_case)
            self._keep_case_table = _string_table(keep_case, list(range(len(keep_case))))
        by_length = sorted(no_split, key=len, reverse=True)
        self._no_split_pattern = _alternation(by_length)
        self._no_split_table = _string_table(by_length, [no_split[t] for t in by_length])
        # Words equal to a special token after cleaning are not lower-cased or split (`never_split`).
        self._never_split_table = _string_table(self.special_tokens, self._special_ids)

        # Layers: the vocabulary asset and its lookup table, the character tables, WordPiece.
        self._vocab_asset = tf.saved_model.Asset(self.vocabulary)
        self._vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self._vocab_asset,
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
            self._vocab_table,
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
        tables = [self._vocab_table, self._no_split_table, self._never_split_table]
        return tables + [self._keep_case_table] if self._lower_first else tables

    def _validate_arguments(self):
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < MIN_MAX_LENGTH:
            raise TfbertError(
                f"max_length must be an integer of at least {MIN_MAX_LENGTH} ([CLS] a [SEP] b [SEP]); "
                f"received max_length={self.max_length!r}."
            )
        if self.padding not in PADDING_CHOICES:
            raise TfbertError(f"padding must be one of {PADDING_CHOICES}; received padding={self.padding!r}.")
        if not isinstance(self.max_input_chars_per_word, int) or self.max_input_chars_per_word < 1:
            raise TfbertError(
                "max_input_chars_per_word must be a positive integer; "
                f"received max_input_chars_per_word={self.max_input_chars_per_word!r}."
            )
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

    def _lower_outside_tokens(self, text):
        """The reference's pre-lower-casing: every character but those of special and added tokens."""
        if not self._lower_first:
            return text
        tables = self._char_tables
        pieces = tf_text.regex_split(text, self._keep_case_pattern, self._keep_case_pattern)
        keep = self._keep_case_table.lookup(pieces.flat_values) >= 0
        code_points = tf.strings.unicode_decode(pieces.flat_values, "UTF-8")
        lowered = tf.strings.unicode_encode(tables.lower.apply(code_points), "UTF-8")
        joined = pieces.with_flat_values(tf.where(keep, pieces.flat_values, lowered))
        return tf.strings.reduce_join(joined, axis=1)

    def _split_no_split_tokens(self, text):
        """[batch] strings -> ([batch, (pieces)] strings, id of each piece that is a special or added token, else -1)."""
        pieces = tf_text.regex_split(text, self._no_split_pattern, self._no_split_pattern)
        return pieces, self._no_split_table.lookup(pieces.flat_values)

    def _words(self, segments):
        """[n] strings without special tokens -> ([n, (words)] code points, never-split flag per word).

        Cleaning, CJK padding and NFC, then the whitespace split. Words equal to a special token
        after cleaning are the reference's `never_split`: not lower-cased, not split.
        """
        tables = self._char_tables
        code_points = tf.strings.unicode_decode(segments, "UTF-8", errors="replace", replacement_char=0xFFFD)
        if self.do_lower_case and not self._lower_first:  # the shortcut: lower-case after the split
            code_points = tables.lower.apply(code_points)
        cleaned = tables.clean.apply(code_points)
        # Every character left is assigned in Python's Unicode version, so ICU's NFC agrees with
        # `unicodedata.normalize("NFC", ...)` on it; composition must see the cleaned text.
        normalized = tf_text.normalize_utf8(tf.strings.unicode_encode(cleaned, "UTF-8"), "NFC")
        # Only ASCII spaces separate words here: the clean table mapped all other whitespace to it.
        words = tf.strings.split(normalized)
        never_split = self._never_split_table.lookup(words.flat_values) >= 0
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
        word_of_char = _row_ids(chars)
        if not tables.normalize.is_identity:
            chars = tables.normalize.apply(chars, bypass=tf.gather(never_split, word_of_char))
            word_of_char = _row_ids(chars)
        values = chars.values
        kind = tables.split.kinds(values)
        separator = kind == chartables.SEPARATOR
        punctuation = (kind == chartables.PUNCTUATION) & ~tf.gather(never_split, word_of_char)
        first_in_word = _position_in_row(chars, word_of_char) == 0
        starts = ~separator & (first_in_word | punctuation | _shift_right(punctuation) | _shift_right(separator))
        token_of_char = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        kept = ~separator
        tokens = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(values, kept),
            tf.boolean_mask(token_of_char, kept),
            nrows=tf.reduce_sum(tf.cast(starts, tf.int64)),
        )
        # Tokens per segment: each token belongs to the segment of the word of its first character.
        word_of_token = tf.boolean_mask(word_of_char, starts)
        segment_of_token = tf.gather(_row_ids(word_chars), word_of_token)
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
        text = self._lower_outside_tokens(_sanitize_utf8(text))
        pieces, special_id = self._split_no_split_tokens(text)
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

    def _combine(self, ids_a, ids_b=None):
        """Truncates `longest_first` and adds [CLS]/[SEP]: -> dict of [batch, (seq)] ragged int32."""
        batch = ids_a.nrows()
        cls = tf.RaggedTensor.from_row_lengths(tf.fill([batch], self.cls_id), tf.ones([batch], tf.int64))
        sep = tf.RaggedTensor.from_row_lengths(tf.fill([batch], self.sep_id), tf.ones([batch], tf.int64))
        len_a = tf.cast(ids_a.row_lengths(), tf.int32)
        if ids_b is None:
            ids_a = _truncate_rows(ids_a, tf.minimum(len_a, self.max_length - 2))
            input_ids = tf.concat([cls, ids_a, sep], axis=1)
            token_type_ids = tf.zeros_like(input_ids)
        else:
            len_b = tf.cast(ids_b.row_lengths(), tf.int32)
            keep_a, keep_b = longest_first_lengths(len_a, len_b, self.max_length - 3)
            first = tf.concat([cls, _truncate_rows(ids_a, keep_a), sep], axis=1)
            second = tf.concat([_truncate_rows(ids_b, keep_b), sep], axis=1)
            input_ids = tf.concat([first, second], axis=1)
            token_type_ids = tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1)
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": tf.ones_like(input_ids),
        }

    def _pad(self, ragged_outputs):
        input_ids = ragged_outputs["input_ids"]
        if self.padding == "max_length":
            width = tf.constant(self.max_length, tf.int64)
        else:
            # Every sequence holds at least [CLS] [SEP]; the floor of 2 also gives an empty batch a
            # sequence axis that attention layers accept ([0, 2], still empty).
            width = tf.maximum(tf.reduce_max(input_ids.row_lengths()), 2)
        shape = tf.stack([input_ids.nrows(), width])
        defaults = {"input_ids": self.pad_id, "token_type_ids": 0, "attention_mask": 0}
        return {name: t.to_tensor(default_value=defaults[name], shape=shape) for name, t in ragged_outputs.items()}

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
        return self._pad(self._combine(ids_a, ids_b))
