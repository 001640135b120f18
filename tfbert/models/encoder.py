"""`BertEncoder`: a tf_keras functional model from raw strings to BERT's hidden states.

    text -> BertTokenizerLayer -> BertBackbone -> {"last_hidden_state", "pooled_output"}

`RawTextModel` is the base of every tfbert model built on the tokenizer layer and BERT (the encoder,
the classifier): it finds both by type, and its Keras config keeps the checkpoint's name.
"""

import tensorflow as tf
import tf_keras

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.models.backbone import BertBackbone
from tfbert.models.datasets import AutotuneFree
from tfbert.models.weights import load_bert_model
from tfbert.text.tokenizer import BertTokenizerLayer

TOKENIZER_LAYER = "tokenizer"
BERT_LAYER = "bert"


@tf.autograph.experimental.do_not_convert
def bert_outputs(bert, tokens, training=None):
    """Runs a `TFBertModel` on a tokenizer's dict: -> {"last_hidden_state", "pooled_output"}.

    training: None lets Keras decide (True inside `fit`, so dropout is active while fine-tuning).
    Without autograph: BERT's code has no Python branch on a tensor, and converting transformers'
    layers cost seconds of tracing in every new process that exports or trains.
    """
    kwargs = {} if training is None else {"training": training}
    outputs = bert(
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        token_type_ids=tokens["token_type_ids"],
        **kwargs,
    )
    return {"last_hidden_state": outputs.last_hidden_state, "pooled_output": outputs.pooler_output}


class RawTextModel(AutotuneFree, tf_keras.Model):
    """A functional model on raw strings holding one `BertTokenizerLayer` and one `BertBackbone`.

    Built as `tf_keras.Model(inputs, outputs, name=...)`. Its constructor stays Keras' functional one
    (which Keras needs to revive it from its config); the checkpoint's name is set after construction
    and kept in `get_config`. `fit`, `evaluate` and `predict` turn tf.data autotuning off for datasets that
    leave it unset (`tfbert.models.datasets`).
    """

    checkpoint_name = None  # str: the checkpoint it was built from (the default export name)

    def _layer_of_type(self, kind):
        return next(layer for layer in self.layers if isinstance(layer, kind))

    @property
    def tokenizer(self):
        """The `BertTokenizerLayer`."""
        return self._layer_of_type(BertTokenizerLayer)

    @property
    def bert(self):
        """The `BertBackbone` (a transformers `TFBertModel`)."""
        return self._layer_of_type(BertBackbone)

    @property
    def text_pair(self):
        """Whether the model takes two texts, "text" and "text_pair"."""
        return len(self.inputs) == 2

    def get_config(self):
        return {**super().get_config(), "checkpoint_name": self.checkpoint_name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        checkpoint_name = config.pop("checkpoint_name", None)
        model = super().from_config(config, custom_objects)
        model.checkpoint_name = checkpoint_name
        return model


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertEncoder(RawTextModel):
    """The model `build_encoder` returns: "text" (string [batch]) -> BERT's outputs."""


def wire_encoder(tokenizer, bert, checkpoint_name=None):
    """The functional encoder: a string input "text" -> tokenizer -> bert -> BERT's outputs."""
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    encoder = BertEncoder(text, bert_outputs(bert, tokenizer(text)), name="bert_encoder")
    encoder.checkpoint_name = checkpoint_name
    return encoder


def build_encoder(model=None, max_length=None, padding="longest", allow_pickle=False, **tokenizer_options):
    """A `BertEncoder` from a string input [batch] to BERT's outputs.

    Args:
        model: str. Preset name, local Hugging Face folder or hub id (see `tfbert.checkpoints`).
            Defaults to "minilm-l6-uncased".
        max_length: int. Longest tokenized input, special tokens included. Defaults to the
            checkpoint's max_position_embeddings.
        padding: str. "longest" (dynamic: the longest sequence of the batch) or "max_length".
            Defaults to "longest".
        allow_pickle: bool. Accept a `pytorch_model.bin` checkpoint. Defaults to False.
        **tokenizer_options: override the checkpoint's tokenizer options (e.g. do_lower_case=False).

    Returns:
        BertEncoder (a functional tf_keras.Model) with input "text" (string [batch]) and outputs
        {"last_hidden_state": float32 [batch, seq, hidden], "pooled_output": float32 [batch, hidden]}.
        `encoder.tokenizer` is its BertTokenizerLayer, `encoder.bert` its BertBackbone (a
        transformers.TFBertModel); `model.get_layer("tokenizer")` and `get_layer("bert")` work too.

    Example:
    >>> encoder = build_encoder()  # doctest: +SKIP
    >>> encoder(tf.constant(["The quick brown fox"]))["pooled_output"].shape  # doctest: +SKIP
    TensorShape([1, 384])
    """
    checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
    # Layers.
    tokenizer = checkpoint.build_tokenizer(max_length, padding, name=TOKENIZER_LAYER, **tokenizer_options)
    bert = load_bert_model(checkpoint, name=BERT_LAYER)
    # Wiring.
    return wire_encoder(tokenizer, bert, checkpoint.name)
