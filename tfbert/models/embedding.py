"""`embed`: sentence embeddings (mean-pooled over the attention mask, L2-normalised) for lists of texts."""

import numpy as np
import tensorflow as tf

from tfbert.errors import TfbertError, check_positive_int
from tfbert.models.encoder import bert_outputs, build_encoder
from tfbert.models.length_groups import embed_in_length_groups
from tfbert.models.pooling import sentence_embedding_pooling


class Embedder:
    """One graph per encoder: a callable list of str -> np.ndarray float32 [batch, hidden]; `.width` its size.

    Args:
        encoder: BertEncoder.
    """

    def __init__(self, encoder):
        self.encoder = encoder
        tokenizer, bert = encoder.tokenizer, encoder.bert
        pooling = sentence_embedding_pooling()
        self.width = width = bert.config.hidden_size

        @tf.function
        def embed_tokens(tokens):
            return pooling({**bert_outputs(bert, tokens, training=False), "attention_mask": tokens["attention_mask"]})

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def run(text):
            return embed_in_length_groups(embed_tokens, tokenizer(text), width)

        self.run = run

    def __call__(self, texts):
        return self.run(tf.constant(texts, tf.string)).numpy()


def embedder(model=None):
    """The `Embedder` of an encoder, made once and kept on it.

    Args:
        model: a BertEncoder from `tfbert.build_encoder`, or a checkpoint (preset, folder, hub id) to
            build one from. Defaults to the default checkpoint.
    """
    if model is None or isinstance(model, str):
        model = build_encoder(model)
    cached = model.__dict__.get("_tfbert_embedder")
    if cached is None:
        cached = model.__dict__["_tfbert_embedder"] = Embedder(model)
    return cached


def length_sorted_batches(texts, batch_size):
    """Index arrays, one a batch, of texts sorted by length (so batches pad little); the union is every index once."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(texts), batch_size)]


def embed_batches(function, texts, batch_size, on_batch=None):
    """Runs function on length-sorted batches of texts; returns float32 [len(texts), width] in the order of texts.

    Args:
        function: callable list of str -> float32 [batch, width], with its width as `.width` (an
            `Embedder`, or `tfbert.serving.loading.SavedModelEmbedder`).
    """
    result = np.zeros([len(texts), function.width], np.float32)
    for rows in length_sorted_batches(texts, batch_size):
        result[rows] = function([texts[i] for i in rows])
        if on_batch is not None:
            on_batch(len(rows))
    return result


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
    check_positive_int("batch_size", batch_size)
    return embed_batches(embedder(model), list(texts), batch_size)
