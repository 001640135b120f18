"""Text to token ids, in the graph: vocabularies, character tables, special tokens, the tokenizer layer, packing.

    vocabulary.py      reading and checking vocab.txt and added tokens; extended vocabularies
    chartables.py      the reference's per-character rules, tabulated from the running Python
    special_tokens.py  special and added tokens kept whole and kept from lower-casing
    ragged.py          linear-time ragged steps
    packing.py         truncate (longest_first), [CLS] a [SEP] (b [SEP]), pad
    tokenizer.py       BertTokenizerLayer: the steps composed into a Keras layer
"""
