"""`BertTokenizerLayer`: raw strings to BERT inputs in the graph, equal to transformers' `BertTokenizer`.

The steps follow the reference (`PreTrainedTokenizer.tokenize`, `truncate_sequences`, `pad`):

    each text -> `Segmenter` (tfbert.text.segments: cleaning, words, WordPiece) -> truncate
    (longest_first) -> [CLS] a [SEP] (b [SEP]) -> pad

tensorflow-text's `BertTokenizer`/`FastBertNormalize` are not used: their case folding and
control-character handling differ from the reference (docs/design.md, "How the tokenizer matches
the reference"). `tokenize_with_offsets` adds each token's character offsets (tfbert.text.offsets).
"""

import logging

import tensorflow as tf
import tf_keras

from tfbert.errors import TfbertError, check_choice, check_positive_int
from tfbert.text import chartables
from tfbert.text.packing import PADDING_CHOICES, check_max_length, pack, truncate_longest_first
from tfbert.text.ragged import truncate_rows
from tfbert.text.segments import Segmenter
from tfbert.text.special_tokens import SpecialTokenSplitter
from tfbert.text.windows import check_window_options, gather_spans, windows
from tfbert.text.vocabulary import DEFAULT_SPECIAL_TOKENS, check_added_tokens, read_vocabulary

logger = logging.getLogger(__name__)

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
        `tokenize_with_offsets` returns them with "offsets" [batch, seq, 2]: each token's (start, end)
        in its own text, in code points, as `BertTokenizerFast`'s `offset_mapping`.

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
        special_token_splitter = SpecialTokenSplitter(self.special_tokens, no_split, self.added_tokens,
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
        self._segmenter = Segmenter(
            chartables.bert_char_tables(self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars),
            special_token_splitter, self.vocab_table, self.do_lower_case, self.unk_token, self.unk_id,
            self.max_input_chars_per_word)

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
        return [self.vocab_table, *self._segmenter.special_token_splitter.lookup_tables]

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

    def _texts(self, inputs, text_pair):
        if isinstance(inputs, dict):
            inputs, text_pair = inputs["text"], inputs.get("text_pair")
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise TfbertError(f"pass a text tensor or a (text, text_pair) pair; received {len(inputs)} inputs.")
            inputs, text_pair = inputs
        text = self._as_batch(inputs, "text")
        if text_pair is None:
            return text, None
        text_pair = self._as_batch(text_pair, "text_pair")
        same = tf.debugging.assert_equal(
            tf.size(text), tf.size(text_pair),
            message="the two inputs (text and text_pair, or question and context) must have the same batch size")
        with tf.control_dependencies([same]):
            return tf.identity(text), tf.identity(text_pair)

    def _segment(self, text, text_pair, with_offsets=False):
        """([ids_a, ids_b], [spans_a, spans_b]): each text's token ids ([batch, (ids)]) and, with
        `with_offsets`, their spans; None for the second text without a pair, and for spans without offsets.

        A pair's two texts go through the segmenter as one batch, split back after: one set of ops
        for both texts instead of two, so a pair's graph is smaller to trace and to run
        (tests/test_tokenizer.py::test_a_pair_is_tokenized_as_one_batch)."""
        batch = text if text_pair is None else tf.concat([text, text_pair], 0)
        if with_offsets:
            ids, spans = self._segmenter.tokenize_with_offsets(batch)
        else:
            ids, spans = self._segmenter.tokenize(batch), None
        if text_pair is None:
            return [ids, None], [spans, None]
        count = tf.shape(text)[0]
        return [ids[:count], ids[count:]], [None, None] if spans is None else [spans[:count], spans[count:]]

    def call(self, inputs, text_pair=None):
        return self._tokenize(inputs, text_pair)  # here, Keras reads the signature; there, no autograph

    # No autograph from here down: the tokenizer's Python branches on settings only, never on tensors,
    # and converting its code (and tensorflow-text's under it) took seconds of every export's tracing.
    @tf.autograph.experimental.do_not_convert
    def _tokenize(self, inputs, text_pair):
        text, text_pair = self._texts(inputs, text_pair)
        (ids_a, ids_b), _ = self._segment(text, text_pair)
        segments = truncate_longest_first(ids_a, ids_b, self.max_length)
        return pack(segments, self.cls_id, self.sep_id, self.pad_id, self.max_length, self.padding)

    @tf.autograph.experimental.do_not_convert
    def tokenize_with_offsets(self, inputs, text_pair=None):
        """As calling the layer, plus "offsets": int32 [batch, seq, 2], each token's (start, end) in its
        own text in code points, as transformers' `offset_mapping`; (0, 0) for [CLS], [SEP] and padding."""
        text, text_pair = self._texts(inputs, text_pair)
        (ids_a, ids_b), (spans_a, spans_b) = self._segment(text, text_pair, with_offsets=True)
        segments = truncate_longest_first(ids_a, ids_b, self.max_length)
        spans = [truncate_rows(s, kept.row_lengths()) for s, kept in zip((spans_a, spans_b), segments)]
        packed = pack(segments, self.cls_id, self.sep_id, self.pad_id, self.max_length, self.padding)
        return {**packed, "offsets": self._pack_offsets(spans)}

    def _pack_offsets(self, spans):
        """Segments' spans (ragged [batch, (n), 2]) -> int32 [batch, seq, 2] beside `pack`'s ids, (0, 0)
        for [CLS], [SEP] and padding."""
        starts, ends = (pack([s.with_flat_values(s.flat_values[:, i]) for s in spans], 0, 0, 0, self.max_length,
                             self.padding)["input_ids"] for i in (0, 1))
        return tf.cast(tf.stack([starts, ends], axis=-1), tf.int32)

    @tf.autograph.experimental.do_not_convert
    def tokenize_windows(self, text, text_pair, stride, max_first_length, max_windows):
        """Pairs in windows over the second text, as transformers' `tokenizer(text, text_pair,
        truncation="only_second", max_length=self.max_length, stride=stride, return_overflowing_tokens=True,
        return_offsets_mapping=True)` (tfbert.text.windows); the first text is first cut to
        `max_first_length` tokens, and each pair gives at most `max_windows` windows.

        Returns:
            dict: "input_ids", "token_type_ids", "attention_mask" int32 [windows, seq], "offsets" int32
            [windows, seq, 2], and "pair" int32 [windows]: the pair each window comes from
            (transformers' `overflow_to_sample_mapping`).
        """
        check_window_options(self.max_length, stride, max_first_length, max_windows)
        text, text_pair = self._texts(text, text_pair)
        (ids_a, ids_b), (spans_a, spans_b) = self._segment(text, text_pair, with_offsets=True)
        keep_a = tf.minimum(ids_a.row_lengths(), max_first_length)
        ids_a, spans_a = truncate_rows(ids_a, keep_a), truncate_rows(spans_a, keep_a)
        pair, start, length = windows(keep_a, ids_b.row_lengths(), self.max_length, stride, max_windows)
        first = [tf.gather(ids_a, pair), tf.gather(spans_a, pair)]
        second = [gather_spans(ids_b, pair, start, length), gather_spans(spans_b, pair, start, length)]
        packed = pack([first[0], second[0]], self.cls_id, self.sep_id, self.pad_id, self.max_length, self.padding)
        return {**packed, "offsets": self._pack_offsets([first[1], second[1]]), "pair": tf.cast(pair, tf.int32)}
