"""The weights an export's inference graph (`tfbert.models.inference`) computes with.

An encoder layer's dense kernels and biases, in a compute dtype (float32, or bfloat16 copies), with each
attention's query, key and value kernels side by side in one matrix, so that one MatMul computes all
three.
"""

import types

import tensorflow as tf

PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16}


class InferenceWeights(tf.Module):
    """The encoder layers' dense kernels and biases as the inference graph computes with them, in a
    compute dtype: each attention's query, key and value kernels side by side in one matrix (and their
    biases in one vector), the other dense layers' variables themselves for float32, else copies. The
    module holds the copies; an export that tracks it saves them beside the float32 variables that
    training and the reusable `__call__` use.

    Args:
        main_layers: list of built transformers TFBertMainLayer.
        dtype: tf.DType. tf.float32 or tf.bfloat16.
        stored_qkv: bool. Keep the side-by-side query/key/value weights as variables (saved with the
            export; for float32 a second copy of those kernels, 12 MB on the default checkpoint's 96);
            else concatenate them in the graph at every call, which took 4 of 10 ms at batch 1 on a
            2-core Xeon (benchmarks/profile_serving.py --export). Defaults to True.
    """

    def __init__(self, main_layers, dtype=tf.float32, stored_qkv=True):
        super().__init__(name=f"inference_weights_{dtype.name}")
        self.compute_dtype = dtype
        self.stored_qkv = stored_qkv
        layers = [layer for main_layer in main_layers for layer in main_layer.encoder.layer]
        attentions = [layer.attention.self_attention for layer in layers]
        sources = [variable for layer in layers for dense in dense_layers(layer)[3 if stored_qkv else 0:]
                   for variable in (dense.kernel, dense.bias)]
        with tf.init_scope():
            self.copies = [] if dtype == tf.float32 else [
                tf.Variable(tf.cast(variable, dtype), trainable=False, name=variable.name.split(":")[0])
                for variable in sources]
            self.qkv_copies = [] if not stored_qkv else [
                tf.Variable(tf.cast(tf.concat([getattr(dense, name) for dense in qkv_layers(attention)], axis),
                                    dtype), trainable=False, name=f"{attention.name}_query_key_value_{name}")
                for attention in attentions for name, axis in (("kernel", 1), ("bias", 0))]
        # The lookups from the float32 variables to the copies are untracked: only the copies are saved.
        self._lookup = types.SimpleNamespace(
            table=dict(zip((variable.ref() for variable in sources), self.copies)),
            qkv={id(attention): tuple(self.qkv_copies[2 * index:2 * index + 2])
                 for index, attention in enumerate(attentions) if stored_qkv})

    @property
    def has_copies(self):
        """Whether the module holds variables of its own (which an export must save)."""
        return bool(self.copies or self.qkv_copies)

    def get(self, variable):
        """The variable to compute with in place of `variable`."""
        return self._lookup.table.get(variable.ref(), variable)

    def qkv(self, attention):
        """(kernel [hidden, 3 * width], bias [3 * width]) of a TFBertSelfAttention's query, key and
        value side by side, in the compute dtype."""
        if self.stored_qkv:
            return self._lookup.qkv[id(attention)]
        denses = qkv_layers(attention)
        return (tf.concat([self.get(dense.kernel) for dense in denses], axis=1),
                tf.concat([self.get(dense.bias) for dense in denses], axis=0))


def qkv_layers(attention):
    """A TFBertSelfAttention's query, key and value Dense layers."""
    return attention.query, attention.key, attention.value


def dense_layers(layer):
    """The Dense layers of a TFBertLayer that run on its hidden states."""
    attention = layer.attention.self_attention
    return (attention.query, attention.key, attention.value, layer.attention.dense_output.dense,
            layer.intermediate.dense, layer.bert_output.dense)
