"""`build_encoder`: a tf_keras functional model from raw strings to BERT's hidden states."""

import tensorflow as tf
import tf_keras

from tfbert.checkpoint import load_bert_model, load_checkpoint
from tfbert.errors import TfbertError
from tfbert.tokenizer import MIN_MAX_LENGTH, BertTokenizerLayer

TOKENIZER_LAYER = "tokenizer"
BERT_LAYER = "bert"


def bert_outputs(bert, tokens, training=None):
    """Runs a `TFBertModel` on a tokenizer's dict: -> {"last_hidden_state", "pooled_output"}.

    training: None lets Keras decide (True inside `fit`, so dropout is active while fine-tuning).
    """
    kwargs = {} if training is None else {"training": training}
    outputs = bert(
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        token_type_ids=tokens["token_type_ids"],
        **kwargs,
    )
    return {"last_hidden_state": outputs.last_hidden_state, "pooled_output": outputs.pooler_output}


def mean_pool(last_hidden_state, attention_mask):
    """Mean of the hidden states over the attention mask, L2-normalised: [batch, hidden].

    sentence-transformers' Pooling (mean tokens) followed by its Normalize module.
    """
    mask = tf.cast(attention_mask, last_hidden_state.dtype)[:, :, None]
    summed = tf.reduce_sum(last_hidden_state * mask, axis=1)
    counts = tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
    return tf.math.l2_normalize(summed / counts, axis=-1, epsilon=1e-24)


def build_tokenizer(checkpoint, max_length=None, padding="longest", **overrides):
    """The `BertTokenizerLayer` of a checkpoint, with its vocabulary and tokenizer options."""
    if max_length is None:
        max_length = checkpoint.max_length
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not (
        MIN_MAX_LENGTH <= max_length <= checkpoint.max_length
    ):
        raise TfbertError(
            f"max_length must be between {MIN_MAX_LENGTH} and {checkpoint.max_length} (the checkpoint's "
            f"max_position_embeddings); received max_length={max_length!r}."
        )
    options = {**checkpoint.tokenizer_options, **overrides}
    return BertTokenizerLayer(
        str(checkpoint.vocab_file), max_length=max_length, padding=padding, name=TOKENIZER_LAYER, **options
    )


def build_encoder(model=None, max_length=None, padding="longest", allow_pickle=False, **tokenizer_options):
    """A `tf_keras.Model` from a string input [batch] to BERT's outputs.

    Args:
        model: str. Preset name, local Hugging Face folder or hub id (see `tfbert.checkpoint`).
            Defaults to "minilm-l6-uncased".
        max_length: int. Longest tokenized input, special tokens included. Defaults to the
            checkpoint's max_position_embeddings.
        padding: str. "longest" (dynamic: the longest sequence of the batch) or "max_length".
            Defaults to "longest".
        allow_pickle: bool. Accept a `pytorch_model.bin` checkpoint. Defaults to False.
        **tokenizer_options: override the checkpoint's tokenizer options (e.g. do_lower_case=False).

    Returns:
        tf_keras.Model with input "text" (string [batch]) and outputs
        {"last_hidden_state": float32 [batch, seq, hidden], "pooled_output": float32 [batch, hidden]}.
        Its layers "tokenizer" (BertTokenizerLayer) and "bert" (BertBackbone, a transformers.TFBertModel) are
        reachable with `model.get_layer(...)`.

    Example:
    >>> encoder = build_encoder()  # doctest: +SKIP
    >>> encoder(tf.constant(["The quick brown fox"]))["pooled_output"].shape  # doctest: +SKIP
    TensorShape([1, 384])
    """
    checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
    # Layers.
    tokenizer = build_tokenizer(checkpoint, max_length, padding, **tokenizer_options)
    bert = load_bert_model(checkpoint, name=BERT_LAYER)
    # Wiring.
    encoder = wire_encoder(tokenizer, bert)
    encoder.checkpoint_name = checkpoint.name
    return encoder


def wire_encoder(tokenizer, bert):
    """The functional encoder: a string input "text" -> tokenizer -> bert -> BERT's outputs."""
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    return tf_keras.Model(text, bert_outputs(bert, tokenizer(text)), name="bert_encoder")
