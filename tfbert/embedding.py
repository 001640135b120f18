"""`embed`: sentence embeddings (mean-pooled over the attention mask, L2-normalised) for lists of texts."""

import numpy as np
import tensorflow as tf

from tfbert.encoder import mean_pool
from tfbert.errors import TfbertError


class _Embedder:
    """One graph per encoder: strings [batch] -> sentence embeddings [batch, hidden]."""

    def __init__(self, encoder):
        self.encoder = encoder
        tokenizer = encoder.get_layer("tokenizer")
        bert = encoder.get_layer("bert")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def run(text):
            tokens = tokenizer(text)
            outputs = bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           token_type_ids=tokens["token_type_ids"], training=False)
            return mean_pool(outputs.last_hidden_state, tokens["attention_mask"])

        self.run = run


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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TfbertError(f"batch_size must be a positive integer; received {batch_size!r}.")
    if model is None or isinstance(model, str):
        from tfbert.encoder import build_encoder

        model = build_encoder(model)
    embedder = model.__dict__.get("_tfbert_embedder")
    if embedder is None:
        embedder = _Embedder(model)
        model.__dict__["_tfbert_embedder"] = embedder
    texts = list(texts)
    order = np.argsort([len(t) for t in texts], kind="stable")
    width = model.get_layer("bert").config.hidden_size
    result = np.zeros([len(texts), width], np.float32)
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        result[rows] = embedder.run(tf.constant([texts[i] for i in rows])).numpy()
    return result
