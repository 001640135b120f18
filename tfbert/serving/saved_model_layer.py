"""`SavedModelLayer`: an exported encoder, loaded back as a (trainable) Keras layer inside a new model.

The consumer side of the TF2 reusable-SavedModel convention, as `hub.KerasLayer` is: the layer calls
the export's `__call__(text, training)` and registers its `variables` as the layer's weights, so
`model.fit` fine-tunes BERT inside any `tf_keras` model. It needs no tfbert code inside the export.

Why not `hub.KerasLayer` itself: tensorflow_hub 0.16.1, its latest release, imports `pkg_resources`
at import time, which setuptools >= 81 no longer ships, so `import tensorflow_hub` fails on this
stack. Our exports follow its convention, so `hub.KerasLayer(path, trainable=True)` works wherever
tensorflow_hub imports.
"""

import pathlib

import tensorflow as tf
import tf_keras

from tfbert.errors import TfbertError
from tfbert.serving.loading import load_export

OUTPUT_KEYS = ("last_hidden_state", "pooled_output", "sentence_embedding")


@tf_keras.saving.register_keras_serializable(package="tfbert")
class SavedModelLayer(tf_keras.layers.Layer):
    """An exported tfbert encoder as a Keras layer: raw strings [batch] in, BERT's outputs out.

    Args:
        handle: str. The export: a version folder, or a model folder (its latest version).
        output_key: str. Return only this output: "last_hidden_state" [batch, seq, hidden],
            "pooled_output" [batch, hidden] or "sentence_embedding" [batch, hidden] (mean-pooled,
            L2-normalised). Defaults to None (the dict of all three).
        trainable: bool. Fine-tune BERT's weights with the model around it; dropout is then active
            in training, as in `hub.KerasLayer`. Defaults to False.

    Example:
    >>> text = tf_keras.Input(shape=(), dtype=tf.string)  # doctest: +SKIP
    >>> vector = SavedModelLayer("saved_models/minilm-l6-uncased", "sentence_embedding", trainable=True)(text)
    >>> model = tf_keras.Model(text, tf_keras.layers.Dense(2)(vector))
    """

    def __init__(self, handle, output_key=None, trainable=False, **kwargs):
        if output_key is not None and output_key not in OUTPUT_KEYS:
            raise TfbertError(f"output_key must be one of {', '.join(OUTPUT_KEYS)} or None; received output_key={output_key!r}.")
        super().__init__(trainable=trainable, **kwargs)
        self.handle = str(pathlib.Path(handle))
        self.output_key = output_key
        self._loaded, _ = load_export(self.handle, reusable=True)
        trainable_ids = {id(v) for v in self._loaded.trainable_variables}
        for variable in self._loaded.trainable_variables:
            self._add_existing_weight(variable, trainable=True)
        for variable in self._loaded.variables:
            if id(variable) not in trainable_ids:
                self._add_existing_weight(variable, trainable=False)

    def _add_existing_weight(self, variable, trainable):
        # add_weight with a getter registers an existing variable without creating a new one.
        self.add_weight(name=variable.name.split(":")[0], shape=variable.shape, dtype=variable.dtype,
                        trainable=trainable, getter=lambda *_, **__: variable)

    def call(self, text, training=None):
        # Dropout only when the surrounding model trains and this layer is trainable (hub.KerasLayer's rule).
        if not self.trainable:
            training = False
        elif training is None:
            training = tf_keras.backend.learning_phase()
        outputs = tf.__internal__.smart_cond.smart_cond(
            training, lambda: self._loaded(text, training=True), lambda: self._loaded(text, training=False))
        return outputs[self.output_key] if self.output_key else outputs

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "output_key": self.output_key}
