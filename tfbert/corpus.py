"""Pre-training data: a plain-text corpus streamed into next-sentence-prediction pairs.

The corpus format: one sentence a line, a blank line between documents. The file is read as a
stream (`tf.data.TextLineDataset`), never loaded whole. Each sentence that has a successor in its
document becomes a pair: half the time with that successor (`next_sentence_label` 0, as in BERT and
transformers), half the time with a random sentence of another document (label 1), drawn from a
shuffle buffer of the corpus read a second time.
"""

import pathlib

import tensorflow as tf

from tfbert.errors import TfbertError

IS_NEXT, IS_RANDOM = 0, 1


def _documents(path):
    """(document id, sentence) per non-blank line: ids count the blank lines before it."""
    lines = tf.data.TextLineDataset(str(path))

    def step(document, line):
        blank = tf.equal(tf.strings.length(tf.strings.strip(line)), 0)
        document = document + tf.cast(blank, tf.int64)
        return document, (document, tf.strings.strip(line), blank)

    def not_blank(document, line, blank):
        return tf.logical_not(blank)

    def drop_flag(document, line, blank):
        return document, line

    return lines.scan(tf.constant(0, tf.int64), step).filter(not_blank).map(drop_flag)


def _in_split(document, split, holdout_every):
    if split == "all":
        return tf.constant(True)
    held_out = tf.equal(document % holdout_every, 0)
    return held_out if split == "heldout" else tf.logical_not(held_out)


def sentence_pairs(path, split="all", holdout_every=20, seed=0, random_buffer=10_000):
    """An endless-capable tf.data of ({"text", "text_pair"}, next_sentence_label) from a corpus file.

    Args:
        path: str. The corpus: one sentence a line, a blank line between documents.
        split: str. "all", "train" (documents whose index is not a multiple of holdout_every) or
            "heldout" (those that are). Defaults to "all".
        holdout_every: int. Every n-th document is held out. Defaults to 20 (5%).
        seed: int. Seeds the coin flips and the random-sentence buffer. Defaults to 0.
        random_buffer: int. Sentences in the shuffle buffer random sentences come from. Defaults to 10,000.

    Returns:
        tf.data.Dataset, one pass over the corpus (add .repeat() for more), unbatched and unshuffled.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise TfbertError(f"the corpus {path} does not exist.")
    if path.stat().st_size == 0:
        raise TfbertError(f"the corpus {path} is empty: expected one sentence a line, a blank line between documents.")
    if split not in ("all", "train", "heldout"):
        raise TfbertError(f"split must be 'all', 'train' or 'heldout'; received {split!r}.")
    sentences = _documents(path).filter(lambda document, line: _in_split(document, split, holdout_every))
    consecutive = tf.data.Dataset.zip((sentences, sentences.skip(1))).filter(
        lambda first, second: tf.equal(first[0], second[0]))
    # Shuffle, then repeat: a shuffle buffer fed by a repeated small split would have to read the
    # file again and again before yielding its first element.
    randoms = sentences.shuffle(random_buffer, seed=seed + 1, reshuffle_each_iteration=True).repeat()
    coins = tf.data.Dataset.random(seed=seed).map(lambda x: tf.equal(x % 2, 0))

    def choose(pair, random_sentence, use_random):
        (document, text), (_, following) = pair
        random_document, random_text = random_sentence
        # The rare draw from the same document falls back to the true next sentence.
        swap = tf.logical_and(use_random, tf.not_equal(random_document, document))
        return ({"text": text, "text_pair": tf.where(swap, random_text, following)},
                tf.where(swap, IS_RANDOM, IS_NEXT))

    return tf.data.Dataset.zip((consecutive, randoms, coins)).map(choose)


def pretraining_batches(pairs, tokenizer, batch_size=32, shuffle_buffer=10_000, seed=0, repeat=True,
                        bucket_boundaries=(32, 64, 128, 256)):
    """Shuffled, length-bucketed batches of sentence pairs for `BertPretrainer.fit`, endless by default.

    `pairs` is one pass (from `sentence_pairs`); it is shuffled, then repeated. Lengths are counted
    with the model's own tokenizer (chunks of 256 pairs), then
    `tf.data.Dataset.bucket_by_sequence_length` groups pairs of similar length into batches.
    """
    pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        pairs = pairs.repeat()

    def with_lengths(features, labels):
        tokens = tokenizer((features["text"], features["text_pair"]))
        return features, labels, tf.reduce_sum(tokens["attention_mask"], axis=1)

    measured = pairs.batch(256).map(with_lengths, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    boundaries = [b for b in bucket_boundaries if b < tokenizer.max_length]
    batched = measured.bucket_by_sequence_length(
        element_length_func=lambda features, label, length: length,
        bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    return batched.map(lambda features, labels, lengths: (features, labels)).prefetch(tf.data.AUTOTUNE)
