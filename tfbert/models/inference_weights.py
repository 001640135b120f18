"""The weights an export's inference graph (`tfbert.models.inference`) computes with.

An encoder layer's dense kernels and biases, in a compute dtype, with each attention's query, key and
value kernels side by side in one matrix, so that one MatMul computes all three:
- float32: the dense layers' own variables, and the side-by-side query/key/value as variables;
- bfloat16: constants of the graph, bfloat16 snapshots of the variables taken when the object is made.

Why constants: TensorFlow's oneDNN MatMul (`_MklNativeFusedMatMul`) multiplies a weight matrix read from
a variable with a plain-layout GEMM (`x64:gemm:jit` in `ONEDNN_VERBOSE=1`'s log), which does not use
AMX. A weight that is a graph constant is reordered once into oneDNN's blocked layout, cached, and
multiplied by the AMX kernel (`brgemm:avx10_1_512_amx`). On a 2-core Xeon with AMX the bfloat16 export
served 1.29x to 1.36x the float32 one's texts per second at batch 32 with variables, 1.53x to 1.89x with
constants (benchmarks/README.md#on-a-cpu-with-amx). float32 keeps its variables: as constants they
would double the export's size, and they gained nothing in a scratch run there.
"""

import types

import tensorflow as tf

from tfbert.errors import TfbertError

PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16}

# Protobuf caps a SavedModel's graph (saved_model.pb) at 2 GB; constant weights live in it.
MAX_CONSTANT_BYTES = 1 << 30


class InferenceWeights(tf.Module):
    """The encoder layers' dense kernels and biases as the inference graph computes with them, in a
    compute dtype, each attention's query, key and value kernels side by side in one matrix (and their
    biases in one vector).

    float32: the other dense layers' variables themselves, and the side-by-side ones as variables the
    module holds; an export that tracks it saves them beside the float32 variables that training and
    the reusable `__call__` use. bfloat16: all of them constants of each graph that computes with them
    (see the module docstring), taken from the variables when the object is made.

    Args:
        main_layers: list of built transformers TFBertMainLayer.
        dtype: tf.DType. tf.float32 or tf.bfloat16.
        stored_qkv: bool. For float32, keep the side-by-side query/key/value weights as variables (saved
            with the export: a second copy of those kernels, 12 MB on the default checkpoint's 96);
            else concatenate them in the graph at every call, which took 4 of 10 ms at batch 1 on a
            2-core Xeon (benchmarks/profile_serving.py --export). bfloat16 constants are always stored
            side by side. Defaults to True.

    Raises:
        TfbertError: bfloat16 constants larger than MAX_CONSTANT_BYTES (a graph over protobuf's 2 GB).
    """

    def __init__(self, main_layers, dtype=tf.float32, stored_qkv=True):
        super().__init__(name=f"inference_weights_{dtype.name}")
        self.compute_dtype = dtype
        self.constants = dtype != tf.float32
        self.stored_qkv = stored_qkv or self.constants
        layers = [layer for main_layer in main_layers for layer in main_layer.encoder.layer]
        attentions = [layer.attention.self_attention for layer in layers] if self.stored_qkv else []
        sources = [variable for layer in layers for dense in dense_layers(layer)[3 if self.stored_qkv else 0:]
                   for variable in (dense.kernel, dense.bias)] if self.constants else []
        stacked_parts = [(attention, name, axis) for attention in attentions for name, axis in (("kernel", 1), ("bias", 0))]
        with tf.init_scope():
            stacked = [tf.cast(tf.concat([getattr(dense, name) for dense in qkv_layers(attention)], axis), dtype)
                       for attention, name, axis in stacked_parts]
            if self.constants:
                copies = [tf.cast(variable, dtype).numpy() for variable in sources]
                stacked = [value.numpy() for value in stacked]
                size = sum(array.nbytes for array in copies + stacked)
                if size > MAX_CONSTANT_BYTES:
                    raise TfbertError(
                        f"precision={dtype.name!r} stores the dense weights as constants of the SavedModel's graph, "
                        f"which protobuf caps at 2 GB; this model's take {size / 2**30:.1f} GiB. Export it in float32.")
                self.qkv_copies = []
            else:
                copies = []
                self.qkv_copies = stacked = [
                    tf.Variable(value, trainable=False, name=f"{attention.name}_query_key_value_{name}")
                    for value, (attention, name, _) in zip(stacked, stacked_parts)]
        # Untracked: an export saves the variable copies (qkv_copies) only, and constants with the graph.
        self._lookup = types.SimpleNamespace(
            table=dict(zip((variable.ref() for variable in sources), copies)),
            qkv={id(attention): tuple(stacked[2 * index:2 * index + 2]) for index, attention in enumerate(attentions)},
            made={})  # graph: {key: what `_once` made in it}, for as long as these weights live (an export)

    @property
    def has_copies(self):
        """Whether it computes with copies of the variables (variables of its own, or constants) rather
        than with the variables alone."""
        return self.constants or bool(self.qkv_copies)

    def get(self, variable):
        """The variable, or constant, to compute with in place of `variable`."""
        copy = self._lookup.table.get(variable.ref())
        return variable if copy is None else self._once(id(copy), lambda: tf.constant(copy, name=_short_name(variable)))

    def qkv(self, attention):
        """(kernel [hidden, 3 * width], bias [3 * width]) of a TFBertSelfAttention's query, key and
        value side by side, in the compute dtype."""
        if self.constants:
            kernel, bias = self._lookup.qkv[id(attention)]
            return (self._once(id(kernel), lambda: tf.constant(kernel, name="query_key_value_kernel")),
                    self._once(id(bias), lambda: tf.constant(bias, name="query_key_value_bias")))
        if self.stored_qkv:
            return self._lookup.qkv[id(attention)]
        denses = qkv_layers(attention)
        return self._once(("qkv", id(attention)), lambda: (
            tf.concat([self.get(dense.kernel) for dense in denses], axis=1),
            tf.concat([self.get(dense.bias) for dense in denses], axis=0)))

    def _once(self, key, make):
        """`make()` once a graph for `key`, however often the graph computes with it (streams of texts,
        `tfbert.models.streams`): the SavedModel stores each constant once, and the query/key/value
        kernels are concatenated once a call."""
        if tf.executing_eagerly():
            return make()
        made = self._lookup.made.setdefault(tf.compat.v1.get_default_graph(), {})
        if key not in made:
            made[key] = make()
        return made[key]


def _short_name(variable):
    """"kernel" for ".../dense/kernel:0"."""
    return variable.name.split("/")[-1].split(":")[0]


def qkv_layers(attention):
    """A TFBertSelfAttention's query, key and value Dense layers."""
    return attention.query, attention.key, attention.value


def dense_layers(layer):
    """The Dense layers of a TFBertLayer that run on its hidden states."""
    attention = layer.attention.self_attention
    return (attention.query, attention.key, attention.value, layer.attention.dense_output.dense,
            layer.intermediate.dense, layer.bert_output.dense)
