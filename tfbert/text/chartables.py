"""Per-code-point rules of transformers' Python `BertTokenizer`, tabulated for use in the graph.

The reference tokenizer applies most of its rules one character at a time with Python's `str.lower`
and `unicodedata`. We evaluate those rules once for every code point, with the running Python, and
apply the tables in the graph. The graph then agrees with the reference by construction, including
on code points where TensorFlow's own Unicode data is newer than Python's (docs/design.md lists them).

A table maps each code point to a short sequence of code points. It is stored as
  * a `kind` per code point in a two-stage table (256-code-point blocks, identical blocks shared),
  * the explicit output of the few thousand code points of kind `EXCEPTION`, sorted by code point.
"""

import dataclasses
import functools
import hashlib
import io
import pathlib
import sys
import unicodedata
import zipfile

import numpy as np
import tensorflow as tf

from tfbert.files import cache_dir, write_atomic
from tfbert.text.ragged import expand_values

MAX_CODE_POINT = 0x10FFFF
_BLOCK_BITS = 8
_BLOCK_SIZE = 1 << _BLOCK_BITS
_SPACE = ord(" ")

# Kinds of code point mapping.
KEEP = 0  # c -> c
DROP = 1  # c -> (nothing)
SPACE = 2  # c -> " "
PAD = 3  # c -> " " c " "
EXCEPTION = 4  # c -> the stored sequence
UNASSIGNED = 5  # c -> (nothing), as DROP; the clean table's unassigned code points (offsets need them)

# Kinds of the final split (after lower-casing and accent stripping).
WORD_CHAR = 0
PUNCTUATION = 1  # a token of its own
SEPARATOR = 2  # ends a token and is dropped


# The reference's character classes, copied from transformers.models.bert.tokenization_bert and
# transformers.tokenization_utils (4.57) so the tables follow them exactly.
def is_whitespace(char):
    """`_is_whitespace` of the reference."""
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char):
    """`_is_control` of the reference: every category C* (Cc, Cf, Cn, Co, Cs) but tab and newlines."""
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char):
    """`_is_punctuation` of the reference: ASCII non-alphanumerics and Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_chinese_char(cp):
    """`_is_chinese_char` of the reference (CJK unified and compatibility ideographs)."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def strip_accents(text):
    """`_run_strip_accents` of the reference: NFD, then drop nonspacing marks (Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _all_chars():
    # Lone surrogates cannot come out of UTF-8 decoding; map them like any other C* code point.
    return (chr(cp) for cp in range(MAX_CODE_POINT + 1))


@dataclasses.dataclass(frozen=True)
class CodePointTable:
    """A code point -> code point sequence mapping, stored compactly. See the module docstring."""

    block_index: np.ndarray  # int32 [0x1100]: block number of each 256-code-point block
    blocks: np.ndarray  # int8 [num_blocks * 256]: kind of each code point
    exception_keys: np.ndarray  # int32 [num_exceptions], sorted
    exception_values: np.ndarray  # int32 [num_exceptions, width], padded with -1

    @classmethod
    def from_function(cls, fn, kind_of=None):
        """Tabulates `fn(char) -> str` (or a kind, through `kind_of`) over every code point."""
        kinds = np.zeros(MAX_CODE_POINT + 1, dtype=np.int8)
        exceptions = {}
        for char in _all_chars():
            cp = ord(char)
            out = fn(char)
            if isinstance(out, int):  # a kind without output (split tables)
                kinds[cp] = out
                continue
            if out == char:
                kind = KEEP
            elif out == "":
                kind = DROP
            elif out == " ":
                kind = SPACE
            elif out == f" {char} ":
                kind = PAD
            else:
                kind = EXCEPTION
                exceptions[cp] = [ord(c) for c in out]
            kinds[cp] = kind
        return cls._pack(kinds, exceptions)

    @classmethod
    def _pack(cls, kinds, exceptions):
        num_blocks = (MAX_CODE_POINT + 1) // _BLOCK_SIZE
        unique_blocks = {}
        block_index = np.zeros(num_blocks, dtype=np.int32)
        for b in range(num_blocks):
            key = kinds[b * _BLOCK_SIZE:(b + 1) * _BLOCK_SIZE].tobytes()
            block_index[b] = unique_blocks.setdefault(key, len(unique_blocks))
        blocks = np.frombuffer(b"".join(unique_blocks), dtype=np.int8).copy()
        keys = np.array(sorted(exceptions), dtype=np.int32)
        width = max([len(v) for v in exceptions.values()], default=1)
        values = np.full((len(keys), width), -1, dtype=np.int32)
        for row, key in enumerate(keys):
            values[row, :len(exceptions[key])] = exceptions[key]
        return cls(block_index, blocks, keys, values)

    @property
    def is_identity(self):
        return not self.blocks.any()

    def _constant(self, name):
        """The array `name` as a tensor, created once and eagerly where possible.

        Every tf.function (signature, dataset map) then captures the same tensor, so a SavedModel
        stores each table once instead of once per traced signature (8.6 MB of saved_model.pb before).
        """
        with tf.init_scope():
            if tf.executing_eagerly():
                cache = self.__dict__.setdefault("_eager_constants", {})  # frozen: bypass __setattr__
                if name not in cache:
                    cache[name] = tf.constant(getattr(self, name))
                return cache[name]
        return tf.constant(getattr(self, name))  # legacy graph mode: a constant of the current graph

    def kinds(self, code_points):
        """Kind of each code point. code_points: int32 tensor of valid code points, any shape."""
        block = tf.gather(self._constant("block_index"), tf.bitwise.right_shift(code_points, _BLOCK_BITS))
        offset = block * _BLOCK_SIZE + tf.bitwise.bitwise_and(code_points, _BLOCK_SIZE - 1)
        return tf.cast(tf.gather(self._constant("blocks"), offset), tf.int32)

    def map_values(self, flat, bypass=None):
        """Maps a flat int32 tensor of code points: -> (ragged int32 [n, (mapped chars)], kind int32 [n])."""
        kind = self.kinds(flat)
        if bypass is not None:
            kind = tf.where(bypass, KEEP, kind)
        none = tf.fill(tf.shape(flat), -1)
        space = tf.fill(tf.shape(flat), _SPACE)
        # Each code point becomes a row of 3 + width slots, -1 meaning "empty":
        # [before, char, after, exception...]. PAD fills all three, KEEP only the middle.
        before = tf.where(kind == PAD, space, none)
        middle = tf.where((kind == KEEP) | (kind == PAD), flat, tf.where(kind == SPACE, space, none))
        columns = [before[:, None], middle[:, None], before[:, None]]
        if len(self.exception_keys):
            keys = self._constant("exception_keys")
            row = tf.minimum(tf.searchsorted(keys, flat, side="left"), len(self.exception_keys) - 1)
            exception = tf.gather(self._constant("exception_values"), row)
            columns.append(tf.where((kind == EXCEPTION)[:, None], exception, -1))
        slots = tf.concat(columns, axis=1)
        return tf.ragged.boolean_mask(slots, slots >= 0), kind

    def apply(self, code_points, bypass=None):
        """Maps every code point of a ragged tensor to its sequence.

        Args:
            code_points: tf.RaggedTensor of int32 code points, [..., (chars)].
            bypass: optional bool tensor, one per flat code point: those are kept as they are.

        Returns:
            tf.RaggedTensor of the same ragged rank, [..., (mapped chars)].
        """
        mapped, _ = self.map_values(code_points.flat_values, bypass)
        return expand_values(code_points, mapped)


@dataclasses.dataclass(frozen=True)
class BertCharTables:
    """The four per-code-point stages of the reference's tokenizer.

    lower: the pre-lower-casing `PreTrainedTokenizer.tokenize` does char by char when do_lower_case,
        outside special and added tokens, before added tokens are split off (identity otherwise).
    clean: applied to the text of a segment without added tokens: `_clean_text` (drop control
        characters, NUL and U+FFFD; whitespace to a space; other `str.isspace` characters, which
        survive cleaning and later split words, to a space as well), then `_tokenize_chinese_chars`.
    normalize: applied to each word after NFC: `str.lower`, then `_run_strip_accents`, as configured.
    split: the class of each character of a normalized word for `_run_split_on_punc` and the final
        whitespace split.
    """

    lower: CodePointTable
    clean: CodePointTable
    normalize: CodePointTable
    split: CodePointTable

    def __hash__(self):
        return id(self)


_TABLE_NAMES = ("lower", "clean", "normalize", "split")
_ARRAY_NAMES = ("block_index", "blocks", "exception_keys", "exception_values")


def _disk_cache_path(configuration):
    """The tables' file in the cache, named by everything they depend on: this module's code, the
    Python version and its Unicode version, the configuration."""
    key = hashlib.sha256(repr((pathlib.Path(__file__).read_bytes(), sys.version, unicodedata.unidata_version,
                               configuration)).encode()).hexdigest()[:32]
    return cache_dir() / "chartables" / f"{key}.npz"


def _load_tables(path):
    try:
        with np.load(path) as arrays:
            return BertCharTables(**{
                table: CodePointTable(*(arrays[f"{table}.{name}"] for name in _ARRAY_NAMES)) for table in _TABLE_NAMES})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, truncated or foreign: compute anew
        return None


def _store_tables(tables, path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **{f"{table}.{name}": getattr(getattr(tables, table), name)
                            for table in _TABLE_NAMES for name in _ARRAY_NAMES})
        write_atomic(path, buffer.getvalue())
    except OSError:  # a read-only cache only costs the few seconds next time
        pass


@functools.lru_cache(maxsize=None)
def bert_char_tables(do_lower_case, strip_accents_mode, tokenize_chinese_chars):
    """The reference's rules for one configuration, tabulated (a few seconds), kept in memory and in the cache."""
    path = _disk_cache_path((do_lower_case, strip_accents_mode, tokenize_chinese_chars))
    tables = _load_tables(path)
    if tables is None:
        tables = _tabulate(do_lower_case, strip_accents_mode, tokenize_chinese_chars)
        _store_tables(tables, path)
    return tables


def _tabulate(do_lower_case, strip_accents_mode, tokenize_chinese_chars):

    def lower(char):
        return char.lower() if do_lower_case else char

    def clean(c):
        if unicodedata.category(c) == "Cn":  # is_control too: deleted; BertTokenizerFast keeps them
            return UNASSIGNED
        if c == "\x00" or c == "\ufffd" or is_control(c):
            return ""
        if is_whitespace(c) or c.isspace():
            return " "
        if tokenize_chinese_chars and is_chinese_char(ord(c)):
            return f" {c} "
        return c

    def normalize(char):
        if do_lower_case:
            char = char.lower()
            return strip_accents(char) if strip_accents_mode is not False else char
        return strip_accents(char) if strip_accents_mode else char

    def split(char):
        if char.isspace():
            return SEPARATOR
        return PUNCTUATION if is_punctuation(char) else WORD_CHAR

    return BertCharTables(
        lower=CodePointTable.from_function(lower),
        clean=CodePointTable.from_function(clean),
        normalize=CodePointTable.from_function(normalize),
        split=CodePointTable.from_function(split),
    )
