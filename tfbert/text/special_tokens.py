"""Special and added tokens in raw text: kept from lower-casing, split off whole, as the reference does.

The reference's `PreTrainedTokenizer.tokenize` lower-cases the text except where a special token, then
an added (normalized) token matches, leftmost first in that order (its `re.sub`); then it splits off
every special and added token, leftmost and longest first (its trie), in the lower-cased text. The rest
of the text goes through `BasicTokenizer` and WordPiece.
"""

import re

import tensorflow as tf
import tensorflow_text as tf_text


def _alternation(tokens):
    return "|".join(re.escape(t) for t in tokens)


def _string_table(keys, values):
    """A constant string -> int32 lookup table, -1 for other strings."""
    with tf.init_scope():
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(values, tf.int32)),
            default_value=-1,
        )


class SpecialTokenSplitter(tf.Module):
    """The in-graph steps around special and added tokens, with their lookup tables.

    Args:
        special_tokens: list of str. In the reference's `all_special_tokens` order.
        token_ids: dict of str to int. The id of every special and added token.
        added_tokens: list of {"content", "id", "special"}. Tokens added with `add_tokens`.
        do_lower_case: bool. Whether the text is lower-cased outside these tokens.
    """

    def __init__(self, special_tokens, token_ids, added_tokens, do_lower_case):
        super().__init__(name="special_tokens")
        # A shortcut, exact when there are no added tokens, every special token has an ASCII capital
        # (which no character lower-cases to, so lower-casing can neither make nor break a match) and
        # none is inside another: split special tokens off the text first, lower-case the rest after.
        split_first = not added_tokens and all(
            any("A" <= c <= "Z" for c in t) and not any(t != u and t in u for u in special_tokens)
            for t in special_tokens)
        self.lower_first = do_lower_case and not split_first
        if self.lower_first:
            keep_case = special_tokens + [a["content"] for a in added_tokens if not a["special"]]
            self._keep_case_pattern = _alternation(keep_case)
            self.keep_case_table = _string_table(keep_case, list(range(len(keep_case))))
        by_length = sorted(token_ids, key=len, reverse=True)
        self._no_split_pattern = _alternation(by_length)
        self.no_split_table = _string_table(by_length, [token_ids[t] for t in by_length])
        # Words equal to a special token after cleaning are not lower-cased or split (`never_split`).
        self.never_split_table = _string_table(special_tokens, [token_ids[t] for t in special_tokens])

    @property
    def lookup_tables(self):
        tables = [self.no_split_table, self.never_split_table]
        return tables + [self.keep_case_table] if self.lower_first else tables

    def lower_outside_tokens(self, text, lower_table):
        """The reference's pre-lower-casing: every character but those of special and added tokens.

        Args:
            text: string [batch].
            lower_table: a `chartables.CodePointTable` lower-casing code points.
        """
        if not self.lower_first:
            return text
        pieces, keep = self.keep_case_pieces(text)
        code_points = tf.strings.unicode_decode(pieces.flat_values, "UTF-8")
        lowered = tf.strings.unicode_encode(lower_table.apply(code_points), "UTF-8")
        joined = pieces.with_flat_values(tf.where(keep, pieces.flat_values, lowered))
        return tf.strings.reduce_join(joined, axis=1)

    def keep_case_pieces(self, text):
        """[batch] strings -> ([batch, (pieces)] strings that join back into the text, bool per piece: a
        special or added token the pre-lower-casing keeps as it is). Only when `lower_first`."""
        pieces = tf_text.regex_split(text, self._keep_case_pattern, self._keep_case_pattern)
        return pieces, self.keep_case_table.lookup(pieces.flat_values) >= 0

    def split(self, text):
        """[batch] strings -> ([batch, (pieces)] strings, id of each piece that is a special or added token, else -1)."""
        pieces = tf_text.regex_split(text, self._no_split_pattern, self._no_split_pattern)
        return pieces, self.no_split_table.lookup(pieces.flat_values)

    def never_split(self, words):
        """bool [n]: the words (strings [n]) that equal a special token."""
        return self.never_split_table.lookup(words) >= 0
