"""`Pooling`: one sentence vector from BERT's outputs, as sentence-transformers' `Pooling` module.

Modes: "pooled" (BERT's pooler, tanh(dense([CLS])), as pre-trained with next-sentence prediction),
"cls" (the [CLS] hidden state) and "mean" (the mean of the hidden states over the attention mask).
`normalize=True` adds sentence-transformers' `Normalize` module (L2 norm 1), as the default
checkpoint's sentence embeddings are made.
"""

import tensorflow as tf
import tf_keras

from tfbert.defaults import POOLING_MODES
from tfbert.errors import check_choice


def sentence_embedding_pooling():
    """The pooling of the `embed` signature and `tfbert.embed`: mean over the attention mask, L2-normalised."""
    return Pooling("mean", normalize=True, name="sentence_embedding")


@tf_keras.saving.register_keras_serializable(package="tfbert")
class Pooling(tf_keras.layers.Layer):
    """BERT's outputs -> a sentence vector [batch, hidden].

    Args:
        mode: str. "pooled", "cls" or "mean". Defaults to "mean".
        normalize: bool. Divide by the L2 norm. Defaults to False.

    Call args:
        inputs: dict with "last_hidden_state" [batch, seq, hidden] and "attention_mask" [batch, seq]
            ("mean", "cls"), or "pooled_output" [batch, hidden] ("pooled").
    """

    def __init__(self, mode="mean", normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, POOLING_MODES)
        self.normalize = bool(normalize)

    def call(self, inputs):
        if self.mode == "pooled":
            vector = inputs["pooled_output"]
        elif self.mode == "cls":
            vector = inputs["last_hidden_state"][:, 0]
        else:
            hidden = inputs["last_hidden_state"]
            mask = tf.cast(inputs["attention_mask"], hidden.dtype)[:, :, None]
            # sentence-transformers clamps the token count at 1e-9; a row always has [CLS] and [SEP].
            vector = tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
        if self.normalize:
            vector = tf.math.l2_normalize(vector, axis=-1, epsilon=1e-24)
        return vector

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "normalize": self.normalize}

