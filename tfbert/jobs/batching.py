"""Batches of raw strings for `model.fit`: texts of similar length together, so that padding stays small."""

import math

import numpy as np
import tensorflow as tf

from tfbert.errors import check_positive_int


def token_lengths(tokenizer, texts, chunk=512):
    """Tokens per example (special tokens included, after truncation), from the model's own tokenizer."""
    lengths = []
    for start in range(0, len(texts[0]), chunk):
        parts = [tf.constant(column[start:start + chunk]) for column in texts]
        tokens = tokenizer(tuple(parts) if len(parts) == 2 else parts[0])
        lengths.append(tf.reduce_sum(tokens["attention_mask"], axis=1).numpy())
    return np.concatenate(lengths) if lengths else np.zeros([0], np.int32)


def make_dataset(texts, labels, batch_size=32, lengths=None, shuffle=False, seed=0, window_batches=32,
                 label_lengths=None):
    """A tf.data of (features, labels) batches of raw strings, for `model.fit` / `evaluate`.

    With `lengths`, batches are bucketed by length: the shuffled examples are taken `window_batches`
    batches at a time, sorted by length, cut into batches, and the batches shuffled again, so each
    batch holds texts of similar length and the in-graph padding (to the longest of the batch) stays
    small. The number of batches is still ceil(n / batch_size), so progress bars know the epoch's length.

    Args:
        texts: list of lists of str (one list per text column) or Examples.texts.
        labels: array [n] or [n, labels].
        batch_size: int. Defaults to 32.
        lengths: int array [n], e.g. from `token_lengths`. Defaults to None (no bucketing).
        shuffle: bool. Reshuffle every epoch. Defaults to False.
        seed: int. Shuffle seed. Defaults to 0.
        window_batches: int. Batches per sorting window. Defaults to 32.
        label_lengths: int array [n]. Labels per token (labels [n, longest]): each batch's labels are
            cut to the batch's longest `label_lengths`, the length the tokenizer pads the batch to.
    """
    check_positive_int("batch_size", batch_size)
    count = len(labels)
    names = ["text", "text_pair"][:len(texts)]
    features = {name: tf.constant(column, tf.string) for name, column in zip(names, texts)}
    columns = (features, tf.constant(labels))
    if label_lengths is not None:
        return _cut_labels(make_dataset(texts, np.concatenate([np.asarray(labels), np.asarray(label_lengths)[:, None]],
                                                              axis=1).astype(np.asarray(labels).dtype),
                                        batch_size, lengths, shuffle, seed, window_batches))
    if lengths is None:
        dataset = tf.data.Dataset.from_tensor_slices(columns)
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    window = batch_size * window_batches
    dataset = tf.data.Dataset.from_tensor_slices((*columns, tf.constant(lengths, tf.int32)))
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)

    def sorted_batches(features, labels, lengths):
        order = tf.argsort(lengths, stable=True)
        features = {name: tf.gather(value, order) for name, value in features.items()}
        return tf.data.Dataset.from_tensor_slices((features, tf.gather(labels, order))).batch(batch_size)

    dataset = dataset.batch(window).flat_map(sorted_batches)
    if shuffle:
        dataset = dataset.shuffle(window_batches, seed=seed + 1, reshuffle_each_iteration=True)
    # Every window but the last gives window_batches full batches, so the count is exact.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _cut_labels(dataset):
    """Batches whose labels carry each row's length in their last column -> labels cut to the batch's longest."""

    def cut(features, labels):
        longest = tf.reduce_max(labels[:, -1])
        return features, labels[:, :longest]

    return dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
