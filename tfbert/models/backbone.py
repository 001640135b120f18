"""`BertBackbone`: transformers' `TFBertModel` as a Keras layer whose config round-trips, with head pruning.

`TFBertModel.get_config()` returns the bare `BertConfig` dict, without the layer's name, so a
functional model holding it comes back from `from_config` with the layer renamed (`tf_bert_model`)
and a different config. `BertBackbone` is the same model (same weights, same outputs) with a Keras
config of its own: `{"name", "trainable", "dtype", "bert_config"}`, registered as
`tfbert>BertBackbone`. "dtype" is the Keras policy's name ("mixed_bfloat16" for a bfloat16-trained
model), and `from_config` builds every layer inside under it, as `build_classifier(precision=...)` did.

transformers' TensorFlow BERT raises NotImplementedError for `prune_heads`. `BertBackbone` builds the
attention layers of `config.pruned_heads` ({layer: [heads]}) with only the kept heads, as PyTorch's
`BertModel` does when it loads a config with `pruned_heads`; `prune_heads` copies a model's weights
into such a backbone.
"""

import copy
import types

import numpy as np
import tensorflow as tf
import tf_keras
from transformers import BertConfig, TFBertModel
from transformers.modeling_tf_utils import get_initializer

from tfbert.errors import TfbertError
from tfbert.models.precision import policy_scope
from tfbert.models.training_ops import use_training_ops


def _narrow_attention(attention, kept_heads, config):
    """Rebuilds one TFBertAttention (before it is built) for `kept_heads` heads."""
    head_size = config.hidden_size // config.num_attention_heads
    width = kept_heads * head_size
    self_attention = attention.self_attention
    self_attention.num_attention_heads = kept_heads
    self_attention.all_head_size = width
    for name in ("query", "key", "value"):
        setattr(self_attention, name, tf_keras.layers.Dense(
            width, kernel_initializer=get_initializer(config.initializer_range), name=name))
    output = attention.dense_output

    def build(layer, input_shape=None):
        # TFBertSelfOutput.build assumes hidden_size inputs; a pruned layer gives it fewer.
        if layer.built:
            return
        layer.built = True
        with tf.name_scope(layer.dense.name):
            layer.dense.build([None, None, width])
        with tf.name_scope(layer.LayerNorm.name):
            layer.LayerNorm.build([None, None, config.hidden_size])

    output.build = types.MethodType(build, output)


class KerasConfigMixin:
    """A transformers TensorFlow model whose Keras config round-trips: `{"name", "trainable", "dtype",
    "bert_config"}` (transformers' own `get_config` returns the bare `BertConfig` dict, without the
    layer's name, so a functional model holding it would come back renamed), its dtype the policy's name,
    which `from_config` builds the inner layers under. Its GELU and dropout are tfbert's faster training
    kernels (`tfbert.models.training_ops`)."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        use_training_ops(self)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype_policy.name,
                "bert_config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # BertConfig.from_dict consumes keys of the dict it is given
        # The inner layers take the global policy when they are created, not the outer layer's dtype.
        with policy_scope(config.get("dtype") or "float32"):
            return cls(BertConfig.from_dict(config.pop("bert_config")), **config)


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertBackbone(KerasConfigMixin, TFBertModel):
    """transformers' `TFBertModel` with a round-tripping Keras config and pruned heads.

    Args:
        config: transformers.BertConfig (or its dict). The architecture; `config.pruned_heads`
            ({layer: [heads]}) lists heads that are left out.
        **kwargs: Keras layer arguments (name, trainable, dtype).
    """

    def __init__(self, config, *args, **kwargs):
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        super().__init__(config, *args, **kwargs)
        for layer, heads in sorted((config.pruned_heads or {}).items()):
            kept = config.num_attention_heads - len(set(heads))
            _narrow_attention(self.bert.encoder.layer[int(layer)].attention, kept, config)

    def __call__(self, *args, **kwargs):
        # Without autograph, here and in every layer below (`fit` traces with autograph on): BERT's
        # code never branches in Python on a tensor, and converting transformers' layers cost seconds
        # of tracing in every new process that trains or exports.
        return tf.autograph.experimental.do_not_convert(super().__call__)(*args, **kwargs)


def _validate_heads(heads, config):
    layers, count = config.num_hidden_layers, config.num_attention_heads
    already = {int(k): set(v) for k, v in (config.pruned_heads or {}).items()}
    merged = {}
    for layer, layer_heads in heads.items():
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < layers:
            raise TfbertError(f"layer {layer!r} does not exist: the model has layers 0 to {layers - 1}.")
        layer_heads = set(int(h) for h in layer_heads)
        bad = [h for h in layer_heads if not 0 <= h < count]
        if bad:
            raise TfbertError(f"head {bad[0]} of layer {layer} does not exist: layers have heads 0 to {count - 1}.")
        if already.get(int(layer)):
            raise TfbertError(f"layer {layer} is already pruned ({sorted(already[int(layer)])}); prune a model once.")
        if len(layer_heads) >= count:
            raise TfbertError(f"pruning all {count} heads of layer {layer} would leave it without attention; keep at least one.")
        if layer_heads:
            merged[int(layer)] = sorted(layer_heads)
    return {**{k: sorted(v) for k, v in already.items()}, **merged}


def build_bert(model):
    """Creates the weights of a transformers BERT model (TFBertModel, TFBertForPreTraining...) with one tiny call."""
    dummy = tf.zeros([1, 2], tf.int32)
    model(input_ids=dummy, attention_mask=tf.ones_like(dummy), token_type_ids=tf.zeros_like(dummy))
    return model


def resized_copy(model, vocab_size):
    """A copy of a built transformers BERT model (same class and config) with `vocab_size` token embeddings.

    Kept rows are copied; new rows are the mean of the old embeddings (and, for vocabulary-sized
    biases such as the MLM head's, the mean of the old biases), as transformers' `resize_token_embeddings`
    with `mean_resizing` starts them, without its random spread: a new token starts as an average token.
    """
    old_size = model.config.vocab_size
    if vocab_size < old_size:
        raise TfbertError(f"cannot shrink the vocabulary from {old_size} to {vocab_size} tokens.")
    config = type(model.config).from_dict(model.config.to_dict())
    config.vocab_size = vocab_size
    kwargs = {"name": model.name}
    if isinstance(model, BertBackbone):
        kwargs.update(trainable=model.trainable)
    with policy_scope(model.dtype_policy):
        resized = build_bert(type(model)(config, **kwargs))
    source = {_relative(w.name, model.name): w for w in model.weights}
    for weight in resized.weights:
        value = source[_relative(weight.name, resized.name)].numpy()
        if value.shape != tuple(weight.shape) and value.shape[0] == old_size:
            extra = np.repeat(value.mean(axis=0, keepdims=True), vocab_size - old_size, axis=0)
            value = np.concatenate([value, extra.astype(value.dtype)], axis=0)
        weight.assign(value)
    return resized


def pruned_backbone(bert, heads):
    """A new BertBackbone without `heads` ({layer: [head indices]}), with the remaining weights of `bert`."""
    config = BertConfig.from_dict(bert.config.to_dict())
    config.pruned_heads = _validate_heads(heads, bert.config)
    with policy_scope(bert.dtype_policy):
        pruned = build_bert(BertBackbone(config, name=bert.name, trainable=bert.trainable))
    head_size = config.hidden_size // config.num_attention_heads

    def kept_columns(layer):
        dropped = set(heads.get(layer, []))
        return np.concatenate([np.arange(h * head_size, (h + 1) * head_size)
                               for h in range(config.num_attention_heads) if h not in dropped])

    source = {_relative(w.name, bert.name): w for w in bert.weights}
    for weight in pruned.weights:
        name = _relative(weight.name, pruned.name)
        value = source[name].numpy()
        layer = _layer_index(name)
        if layer is not None and layer in heads and heads[layer]:
            columns = kept_columns(layer)
            if "/attention/self/" in name:  # query, key, value: output columns per head
                value = value[..., columns]
            elif "/attention/output/dense/kernel" in name:  # rows per head
                value = value[columns]
        weight.assign(value)
    return pruned


def _relative(name, model_name):
    return name.split(f"{model_name}/", 1)[-1]


def _layer_index(name):
    marker = "/layer_._"
    if marker not in name:
        return None
    return int(name.split(marker, 1)[1].split("/", 1)[0])
