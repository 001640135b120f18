"""Token strings back to text, as transformers' `BertTokenizerFast` writes them, in the graph.

`convert_tokens_to_string` is the WordPiece decoder of the tokenizers library: the first token as it
is, then each "##" piece without its prefix and every other token after a space, each token passed
through the decoder's `cleanup` (" ." -> "."). `decode` does the same over the ids' tokens and then
applies `clean_up_tokenization` to the whole string when the tokenizer's
`clean_up_tokenization_spaces` is set (" ' " -> "'", " 's" -> "'s", ...), as BERT's tokenizers are.
"""

import tensorflow as tf

from tfbert.text.ragged import position_in_row, row_ids

# tokenizers' decoders::wordpiece::cleanup, applied to each token (with its leading space).
DECODER_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                   (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
# transformers' PreTrainedTokenizerBase.clean_up_tokenization, applied to the decoded string.
CLEAN_UP_TOKENIZATION = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
_RE2_SPECIAL = set(r".?!*+()[]{}|^$\-")


def replace_all(strings, pairs):
    """Python's `s.replace(old, new)` for each (old, new) in turn, on a string tensor."""
    for old, new in pairs:
        pattern = "".join("\\" + c if c in _RE2_SPECIAL else c for c in old)
        strings = tf.strings.regex_replace(strings, pattern, new)
    return strings


def join_wordpieces(tokens):
    """`convert_tokens_to_string`: ragged string [n, (tokens)] -> string [n]."""
    flat = tokens.flat_values
    later = position_in_row(tokens, row_ids(tokens)) > 0
    suffix = tf.strings.regex_full_match(flat, "##.*")
    pieces = tf.where(later & suffix, tf.strings.regex_replace(flat, "^##", ""),
                      tf.where(later, tf.strings.join([" ", flat]), flat))
    return tf.strings.reduce_join(tokens.with_flat_values(replace_all(pieces, DECODER_CLEANUP)), axis=-1)


def decode_tokens(tokens, clean_up_tokenization_spaces=True):
    """`decode` of the ids whose token strings `tokens` (ragged [n, (tokens)]) are -> string [n]."""
    text = join_wordpieces(tokens)
    return replace_all(text, CLEAN_UP_TOKENIZATION) if clean_up_tokenization_spaces else text
