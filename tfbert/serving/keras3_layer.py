"""`Keras3SavedModelLayer`: an exported encoder as a trainable layer of a Keras 3 model (`import keras`).

Keras 3, TensorFlow's default Keras since TF 2.16, reuses a SavedModel through `keras.layers.TFSMLayer`.
Its inference works on a tfbert export, but fine-tuning with an optimizer that keeps slot variables
(Adam, AdamW) fails in `fit`: TFSMLayer names each Keras variable after the TensorFlow variable with
"/" replaced ("bert_..._weight:0"), the optimizer names its slots after that ("..._weight:0_momentum")
and opens a name scope with it, and ":" is not allowed in a scope name (`tests/test_keras3.py` keeps
the failing case). Every TensorFlow variable name ends in ":0", so no export can avoid it.

This layer is TFSMLayer with valid weight names, calling the export's reusable `__call__(text,
training)`, so dropout runs while the model trains, as `tfbert.SavedModelLayer` does for tf_keras.
It imports Keras 3 (`keras`), which tfbert itself does not need; import this module to use it.
"""

import keras
import tensorflow as tf

from tfbert.errors import TfbertError
from tfbert.serving.saved_model_layer import OUTPUT_KEYS
from tfbert.serving.versions import resolve_export


@keras.saving.register_keras_serializable(package="tfbert")
class Keras3SavedModelLayer(keras.layers.TFSMLayer):
    """An exported tfbert encoder as a Keras 3 layer: raw strings [batch] in, BERT's outputs out.

    Args:
        filepath: str. The export: a version folder, or a model folder (its latest version).
        output_key: str. Return only this output: "last_hidden_state", "pooled_output" or
            "sentence_embedding". Defaults to None (the dict of all three).
        trainable: bool. Fine-tune BERT's weights with the model around it (dropout on while
            training). Defaults to True, as TFSMLayer.

    Example:
    >>> text = keras.Input(shape=(), dtype="string")  # doctest: +SKIP
    >>> vector = Keras3SavedModelLayer("saved_models/minilm-l6-uncased", "sentence_embedding")(text)
    >>> model = keras.Model(text, keras.layers.Dense(2)(vector))
    >>> model.compile(keras.optimizers.AdamW(2e-5), ...)
    """

    def __init__(self, filepath, output_key=None, trainable=True, name=None, **kwargs):
        if output_key is not None and output_key not in OUTPUT_KEYS:
            raise TfbertError(f"output_key must be one of {', '.join(OUTPUT_KEYS)} or None; received output_key={output_key!r}.")
        self.output_key = output_key
        # TFSMLayer reads the endpoint's variables; __call__ is the reusable-SavedModel entry point.
        kwargs.pop("call_endpoint", None)
        kwargs.pop("call_training_endpoint", None)
        super().__init__(resolve_export(filepath), call_endpoint="__call__", trainable=trainable, name=name,
                         **kwargs)

    def _add_existing_weight(self, weight):
        # As TFSMLayer, with ":" also replaced: optimizers open name scopes named after their variables.
        variable = keras.Variable(initializer=weight, trainable=weight.trainable, dtype=weight.dtype,
                                  shape=weight.shape, name=weight.name.replace("/", "_").replace(":", "_"))
        self._track_variable(variable)

    def call(self, inputs, training=False):
        training = bool(training) and self.trainable
        outputs = self.call_endpoint_fn(tf.convert_to_tensor(inputs), training=training)
        return outputs[self.output_key] if self.output_key else outputs

    def get_config(self):
        config = super().get_config()
        for key in ("call_endpoint", "call_training_endpoint"):
            config.pop(key, None)
        return {**config, "output_key": self.output_key}
