"""Pre-training data: a plain-text corpus streamed into next-sentence-prediction pairs, as BERT makes them.

The corpus format: one sentence a line, a blank line between documents. The file is read as a
stream (`tf.data.TextLineDataset`), never loaded whole, one document at a time. Each document of two
or more sentences gives one pair per pass, split at a random sentence boundary, as BERT's
`create_pretraining_data.py` does: segment A is the sentences before the split, B half the time the
sentences after it (`next_sentence_label` 0, as in BERT and transformers) and half the time the
sentences of a random other document from a random sentence on (label 1). Each segment holds whole
sentences up to about `segment_chars` characters, taken nearest the split, so that truncation never
removes the text on either side of the boundary NSP is about.

Random documents come from a shuffle buffer fed by a second read of the corpus, half a corpus ahead:
corpora are often ordered (by source, package, date...), and a document from the neighbourhood would
often be on the same topic as the true continuation, which leaves NSP little to learn from.
"""

import pathlib

import tensorflow as tf

from tfbert.errors import TfbertError

IS_NEXT, IS_RANDOM = 0, 1


def _documents(path, skip_lines=0, first_document=0):
    """(document id, sentences [n]) per document: the id counts the blank lines before it.

    skip_lines: start after this many lines; first_document must then be the blank lines among them.
    """
    ending = tf.data.Dataset.from_tensors(tf.constant(""))  # a last blank line ends the last document
    lines = tf.data.TextLineDataset(str(path)).skip(skip_lines).concatenate(ending)

    def step(state, line):
        document, sentences = state
        line = tf.strings.strip(line)
        blank = tf.equal(tf.strings.length(line), 0)
        complete = tf.logical_and(blank, tf.size(sentences) > 0)
        following = tf.cond(blank, lambda: tf.zeros([0], tf.string), lambda: tf.concat([sentences, [line]], 0))
        return (document + tf.cast(blank, tf.int64), following), (document, sentences, complete)

    def is_complete(document, sentences, complete):
        return complete

    def drop_flag(document, sentences, complete):
        return document, sentences

    start = (tf.constant(first_document, tf.int64), tf.zeros([0], tf.string))
    return lines.scan(start, step).filter(is_complete).map(drop_flag)


def _segment(sentences, budget, backwards):
    """Whole sentences joined by spaces, up to `budget` characters (at least one sentence), taken from
    the end of `sentences` when `backwards`, else from the start."""
    lengths = tf.strings.length(sentences, unit="UTF8_CHAR") + 1
    total = tf.cumsum(lengths, reverse=backwards)
    nearest = tf.equal(tf.range(tf.size(sentences)), tf.size(sentences) - 1 if backwards else 0)
    kept = tf.boolean_mask(sentences, tf.logical_or(total <= budget, nearest))
    return tf.strings.reduce_join(kept, separator=" ")


def _middle(path):
    """(lines of the file, of its first half, blank lines in its first half), streamed."""
    with open(path, "rb") as f:
        total = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    blank = 0
    with open(path, "rb") as f:
        for _, line in zip(range(total // 2), f):
            blank += not line.strip()
    return total, total // 2, blank


def _in_split(document, split, holdout_every):
    if split == "all":
        return tf.constant(True)
    held_out = tf.equal(document % holdout_every, 0)
    return held_out if split == "heldout" else tf.logical_not(held_out)


def sentence_pairs(path, split="all", holdout_every=20, seed=0, random_buffer=2_000, segment_chars=256):
    """A tf.data of ({"text", "text_pair"}, next_sentence_label) from a corpus file, one pair per document.

    Args:
        path: str. The corpus: one sentence a line, a blank line between documents.
        split: str. "all", "train" (documents whose index is not a multiple of holdout_every) or
            "heldout" (those that are). Defaults to "all".
        holdout_every: int. Every n-th document is held out. Defaults to 20 (5%).
        seed: int. Seeds the split points, the coin flips and the random-document buffer. Defaults to 0.
        random_buffer: int. Documents in the shuffle buffer random documents come from; it is fed
            from half a corpus ahead of the pairs. Defaults to 2,000.
        segment_chars: int. About the most characters of each segment (whole sentences, at least
            one). Defaults to 256, about 64 tokens of English: 128 for the pair.

    Returns:
        tf.data.Dataset, one pass over the corpus (add .repeat() for more, with new split points and
        partners each pass), unbatched and unshuffled.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise TfbertError(f"the corpus {path} does not exist.")
    if path.stat().st_size == 0:
        raise TfbertError(f"the corpus {path} is empty: expected one sentence a line, a blank line between documents.")
    if split not in ("all", "train", "heldout"):
        raise TfbertError(f"split must be 'all', 'train' or 'heldout'; received {split!r}.")

    def in_split(document, sentences):
        return _in_split(document, split, holdout_every)

    documents = _documents(path).filter(in_split).filter(lambda document, sentences: tf.size(sentences) >= 2)
    total_lines, skip_lines, blank_lines = _middle(path)
    # Half a corpus ahead, then shuffled. Repeat before the split filter so that a small split does
    # not re-read the file for every document it skips; document ids restart with each pass, so a
    # document keeps its id. A buffer larger than half the split would read the file more than once
    # before its first draw.
    ahead = _documents(path, skip_lines, blank_lines).concatenate(_documents(path).repeat()).filter(in_split)
    split_documents = blank_lines * 2 // (holdout_every if split == "heldout" else 1)
    randoms = ahead.shuffle(max(1, min(random_buffer, split_documents // 2)), seed=seed + 1, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=seed)

    def choose(document, random_document, draw):
        (document_id, sentences), (random_id, random_sentences) = document, random_document
        count = tf.cast(tf.size(sentences), tf.int64)
        split_at = 1 + (draw // 2) % (count - 1)  # 1 .. count - 1 sentences in A
        random_start = (draw // 4096) % tf.cast(tf.size(random_sentences), tf.int64)
        text = _segment(sentences[:split_at], segment_chars, backwards=True)
        following = _segment(sentences[split_at:], segment_chars, backwards=False)
        other = _segment(random_sentences[random_start:], segment_chars, backwards=False)
        # The rare draw of the same document falls back to the true continuation.
        swap = tf.logical_and(tf.equal(draw % 2, 0), tf.not_equal(random_id, document_id))
        return {"text": text, "text_pair": tf.where(swap, other, following)}, tf.where(swap, IS_RANDOM, IS_NEXT)

    return tf.data.Dataset.zip((documents, randoms, draws)).map(choose)


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
