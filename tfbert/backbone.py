"""`BertBackbone`: transformers' `TFBertModel` as a Keras layer whose config round-trips.

`TFBertModel.get_config()` returns the bare `BertConfig` dict, without the layer's name, so a
functional model holding it comes back from `from_config` with the layer renamed (`tf_bert_model`)
and a different config. `BertBackbone` is the same model (same weights, same outputs) with a Keras
config of its own: `{"name", "trainable", "dtype", "bert_config"}`, registered as
`tfbert>BertBackbone`.
"""

import copy

import tf_keras
from transformers import BertConfig, TFBertModel


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertBackbone(TFBertModel):
    """transformers' `TFBertModel` with a round-tripping Keras config.

    Args:
        config: transformers.BertConfig (or its dict). The architecture.
        **kwargs: Keras layer arguments (name, trainable, dtype).
    """

    def __init__(self, config, *args, **kwargs):
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        super().__init__(config, *args, **kwargs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype, "bert_config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # BertConfig.from_dict consumes keys of the dict it is given
        return cls(BertConfig.from_dict(config.pop("bert_config")), **config)
