"""`embed`: sentence embeddings (mean-pooled over the attention mask, L2-normalised) for lists of texts."""

import numpy as np
import tensorflow as tf

from tfbert.encoder import mean_pool
from tfbert.errors import TfbertError
from tfbert.export_reader import latest_version, load_export


GROUPS = 4
MIN_GROUP_SIZE = 8


def embed_in_length_groups(embed_tokens, tokens, width, groups=GROUPS, min_group_size=MIN_GROUP_SIZE):
    """Sentence embeddings of a batch, computed on groups of similar length when that saves padded work.

    A batch pads every text to its longest one, and BERT's cost grows with the padded length. When
    splitting the batch, sorted by length, into `groups` parts of at least `min_group_size` texts
    would cut the padded tokens by a fifth or more, each part runs with its own padding and the
    results are put back in order. Padding does not change a text's embedding (it is masked out),
    so the result is the same up to float32 rounding.

    Args:
        embed_tokens: callable, tokens dict -> float32 [batch, width]. Best a traced tf.function, so
            that each group reuses its graph.
        tokens: dict of int [batch, seq]: input_ids, token_type_ids, attention_mask.
        width: int. The embedding size.
        groups: int. Parts to split a batch into. Defaults to 4.
        min_group_size: int. Smallest part. Defaults to 8.

    Returns:
        float32 [batch, width], in the order of the batch.
    """
    lengths = tf.reduce_sum(tf.cast(tokens["attention_mask"], tf.int32), axis=1)
    count = tf.shape(lengths)[0]
    order = tf.argsort(lengths, stable=True)
    sorted_lengths = tf.gather(lengths, order)
    size = tf.maximum(min_group_size, (count + groups - 1) // groups)
    bounds = [(tf.minimum(g * size, count), tf.minimum((g + 1) * size, count)) for g in range(groups)]
    # Ascending order: a group's longest text is its last (index end in this list, which starts with a 0).
    ends_at = tf.concat([[0], sorted_lengths], 0)
    longest = [tf.gather(ends_at, end) for _, end in bounds]
    grouped_tokens = tf.add_n([(end - start) * length for (start, end), length in zip(bounds, longest)])
    padded_tokens = count * tf.reduce_max(tf.concat([lengths, [0]], 0))

    def one_group(start, end, length):
        rows = order[start:end]
        part = {name: tf.gather(value, rows)[:, :length] for name, value in tokens.items()}
        return tf.cond(end > start, lambda: embed_tokens(part), lambda: tf.zeros([0, width], tf.float32))

    def grouped():
        parts = [one_group(start, end, length) for (start, end), length in zip(bounds, longest)]
        return tf.gather(tf.concat(parts, 0), tf.argsort(order))  # back to the batch's order

    return tf.cond(grouped_tokens * 5 <= padded_tokens * 4, grouped, lambda: embed_tokens(tokens))


class _Embedder:
    """One graph per encoder: strings [batch] -> sentence embeddings [batch, hidden]."""

    def __init__(self, encoder):
        self.encoder = encoder
        tokenizer = encoder.get_layer("tokenizer")
        bert = encoder.get_layer("bert")
        self.width = width = bert.config.hidden_size

        @tf.function
        def embed_tokens(tokens):
            outputs = bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           token_type_ids=tokens["token_type_ids"], training=False)
            return mean_pool(outputs.last_hidden_state, tokens["attention_mask"])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def run(text):
            return embed_in_length_groups(embed_tokens, tokenizer(text), width)

        self.run = run

    def __call__(self, texts):
        return self.run(tf.constant(texts, tf.string)).numpy()


class _SavedModelEmbedder:
    """An export's `embed` signature: strings [batch] -> sentence embeddings [batch, hidden]."""

    def __init__(self, folder):
        loaded, _ = load_export(folder, signature="embed")
        self._loaded = loaded  # the signature needs its object alive
        self.run = loaded.signatures["embed"]
        self.width = int(self.run.structured_outputs["sentence_embedding"].shape[-1])

    def __call__(self, texts):
        return self.run(text=tf.constant(texts, tf.string))["sentence_embedding"].numpy()


def embedder(model=None, saved_model=None):
    """A callable list of str -> np.ndarray float32 [batch, hidden], with its width as `.width`.

    Args:
        model: a model from `tfbert.build_encoder`, or a checkpoint (preset, folder, hub id) to build
            one from. Defaults to the default checkpoint.
        saved_model: str. An encoder export (version folder or model folder) to use instead of model.
    """
    if saved_model is not None:
        return _SavedModelEmbedder(latest_version(saved_model))
    if model is None or isinstance(model, str):
        from tfbert.encoder import build_encoder

        model = build_encoder(model)
    cached = model.__dict__.get("_tfbert_embedder")
    if cached is None:
        cached = model.__dict__["_tfbert_embedder"] = _Embedder(model)
    return cached


def length_sorted_batches(texts, batch_size):
    """Index arrays, one a batch, of texts sorted by length (so batches pad little); the union is every index once."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(texts), batch_size)]


def embed_batches(function, texts, batch_size, on_batch=None):
    """Runs function on length-sorted batches of texts; returns float32 [len(texts), width] in the order of texts."""
    result = np.zeros([len(texts), function.width], np.float32)
    for rows in length_sorted_batches(texts, batch_size):
        result[rows] = function([texts[i] for i in rows])
        if on_batch is not None:
            on_batch(len(rows))
    return result


def check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TfbertError(f"batch_size must be a positive integer; received {batch_size!r}.")


def embed(texts, model=None, batch_size=32):
    """Sentence embeddings of texts, as sentence-transformers computes them for the default checkpoint.

    Args:
        texts: list of str.
        model: a model from `tfbert.build_encoder`, or a checkpoint (preset, folder, hub id) to build
            one from. Defaults to the default checkpoint.
        batch_size: int. Texts a batch; batches hold texts of similar length (the order of the
            result is the order of `texts`). Defaults to 32.

    Returns:
        np.ndarray float32 [len(texts), hidden]: mean of the last hidden state over the attention
        mask, L2-normalised.
    """
    if isinstance(texts, str):
        raise TfbertError("texts must be a list of strings; wrap a single text in a list.")
    check_batch_size(batch_size)
    return embed_batches(embedder(model), list(texts), batch_size)
