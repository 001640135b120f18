"""tfbert's training kernels (tfbert.models.training_ops): GELU with an XLA-compiled gradient, and
dropout from 16-bit draws, against PyTorch's GELU and the binomial law of dropout."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfbert.errors import TfbertError
from tfbert.models.training_ops import Dropout, gelu, use_training_ops


def test_gelu_and_its_gradient_equal_pytorchs():
    """Forward and gradient against torch.nn.functional.gelu (exact, autograd) in float64, over values
    where erf saturates and where `1 + erf` would cancel; bfloat16 in, bfloat16 out."""
    import torch

    values = np.concatenate([np.linspace(-12, 12, 20001), [-30.0, -5.5, 0.0, 1e-6, 7.25, 30.0]])
    reference = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.gelu(reference).sum().backward()
    expected = torch.nn.functional.gelu(reference).detach().numpy()

    x = tf.constant(values, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = gelu(x)
    gradient = tape.gradient(y, x)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient.numpy(), reference.grad.numpy(), rtol=1e-6, atol=1e-6)

    half = tf.cast(x, tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(half)
        y_half = gelu(half)
    gradient_half = tape.gradient(y_half, half)
    assert y_half.dtype == gradient_half.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(gradient_half, tf.float32).numpy(), gradient.numpy(), atol=0.02)


@pytest.mark.parametrize("rate", [0.1, 0.37])
def test_dropout_drops_at_its_rate_and_keeps_the_mean(rate):
    """Drop fraction within 5 binomial standard deviations of `rate`, kept units scaled to keep the mean,
    a new mask each call, the gradient is the mask, and inference passes inputs through untouched."""
    layer = Dropout(rate)
    x = tf.ones([1001, 999])  # an odd size: draws come two to a 32-bit word
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    gradient = tape.gradient(y, x)
    dropped = float(tf.reduce_mean(tf.cast(y == 0, tf.float64)))
    n = int(tf.size(x))
    assert abs(dropped - rate) < 5 * (rate * (1 - rate) / n) ** 0.5
    kept = tf.boolean_mask(y, y != 0)
    np.testing.assert_allclose(kept.numpy(), 1 / (1 - round(rate * 65536) / 65536), rtol=1e-6)
    np.testing.assert_array_equal(gradient.numpy(), y.numpy())  # d(x * mask)/dx is the mask
    assert not np.array_equal(layer(x, training=True).numpy(), y.numpy())

    values = tf.random.normal([4, 7])
    assert layer(values, training=False) is values
    np.testing.assert_array_equal(layer(values, training=tf.constant(False)).numpy(), values.numpy())
    assert float(tf.reduce_mean(tf.cast(layer(x, training=tf.constant(True)) == 0, tf.float32))) > rate / 2


def test_dropout_masks_follow_the_global_seed_and_bfloat16_stays_bfloat16():
    layer = Dropout(0.5, dtype="mixed_bfloat16")  # as `use_training_ops` builds it in a bfloat16 model

    @tf.function
    def masks(x):
        return layer(x, training=True)

    x = tf.ones([64, 33], tf.bfloat16)
    draws = []
    for _ in range(2):
        tf_keras.utils.set_random_seed(7)
        draws.append(masks(x).numpy())
    np.testing.assert_array_equal(draws[0], draws[1])
    assert masks(x).dtype == tf.bfloat16
    assert Dropout(0.0, dtype="mixed_bfloat16")(x, training=True) is x
    with pytest.raises(TfbertError, match=r"rate must be a number in \[0, 1\) .*; received rate=1.0"):
        Dropout(1.0)


@pytest.mark.parametrize("dropout", [1.0, -0.1, "0.1", True])
def test_every_dropout_argument_is_checked_alike(tiny_checkpoint, dropout):
    """The classifier head's and the tagger's dropout are refused as the Dropout layer's rate is."""
    import tfbert
    from tfbert.models.classifier import ClassifierHead

    expected = rf"dropout must be a number in \[0, 1\) .*; received dropout={dropout!r}"
    with pytest.raises(TfbertError, match=expected):
        ClassifierHead(labels=["a", "b"], dropout=dropout)
    with pytest.raises(TfbertError, match=expected):
        tfbert.build_token_classifier(str(tiny_checkpoint), labels=["O", "B-X", "I-X"], dropout=dropout)


def test_models_use_the_training_ops_only_for_exact_gelu(tiny_checkpoint):
    """The classifier's and the pre-trainer's encoders hold tfbert's Dropout and GELU; a model whose
    config asks for another activation keeps it. Training graphs call the XLA-compiled gradient;
    inference graphs do not."""
    from transformers import BertConfig, TFBertModel

    import tfbert
    from tfbert.models.inference import main_layers

    classifier = tfbert.build_classifier(str(tiny_checkpoint), labels=["a", "b"])
    pretrainer = tfbert.build_pretrainer(model=str(tiny_checkpoint), max_length=32)
    for main_layer in (*main_layers(classifier), pretrainer.model.bert):
        layers = list(main_layer._flatten_layers())
        assert not [layer for layer in layers if isinstance(layer, tf_keras.layers.Dropout)]
        ours = [layer for layer in layers if isinstance(layer, Dropout)]
        assert len(ours) == 1 + 3 * main_layer.config.num_hidden_layers  # embeddings, then 3 a layer
        assert {layer.intermediate.intermediate_act_fn for layer in main_layer.encoder.layer} == {gelu}

    other = TFBertModel(BertConfig(vocab_size=99, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, hidden_act="gelu_new"))
    kept = other.bert.encoder.layer[0].intermediate.intermediate_act_fn
    use_training_ops(other)
    assert other.bert.encoder.layer[0].intermediate.intermediate_act_fn is kept

    texts = tf.constant(["the quick brown fox", "a b"])
    labels = tf.constant([0, 1])

    def step():
        with tf.GradientTape() as tape:
            loss = tf_keras.losses.sparse_categorical_crossentropy(labels, classifier(texts, training=True),
                                                                   from_logits=True)
        return tape.gradient(loss, classifier.trainable_variables)

    def xla_calls(graph):
        functions = [graph.as_graph_def().library.function]
        return [f.signature.name for f in functions[0] if "_XlaMustCompile" in f.attr]

    assert xla_calls(tf.function(step).get_concrete_function().graph)
    assert not xla_calls(tf.function(lambda: classifier(texts)).get_concrete_function().graph)
