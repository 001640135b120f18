"""build_encoder against transformers' PyTorch BertModel fed the reference tokenizer's ids."""

import numpy as np
import pytest
import tensorflow as tf
import torch

from conftest import debian_texts
from tfbert.errors import TfbertError
from tfbert.models.backbone import BertBackbone
from tfbert.models.encoder import BertEncoder, build_encoder
from tfbert.models.pooling import Pooling
from tfbert.text.tokenizer import BertTokenizerLayer

# The README claims float32 noise, about 3e-6 measured (benchmarks/results/parity.json): a bound of
# the same order, with room for other CPUs' kernels.
TOLERANCE = 2e-5


def mixed_length_texts():
    texts = debian_texts("dev")
    by_length = sorted(texts, key=len)
    # Shortest, longest (truncated at 512 tokens) and a spread between: real texts of mixed lengths.
    picks = [by_length[i] for i in np.linspace(0, len(by_length) - 1, 10).astype(int)]
    return picks + ["", "Ünïcödé, CJK 中文 and emoji 🙂 too. " * 40]


def torch_outputs(torch_reference, texts, pairs=None):
    tokenizer, model = torch_reference
    batch = tokenizer(texts, pairs, padding=True, truncation="longest_first", max_length=512, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return batch, out


def max_diff_over_tokens(ours, theirs, mask):
    valid = np.asarray(mask, bool)
    return float(np.abs(np.asarray(ours)[valid] - np.asarray(theirs)[valid]).max())


def test_hidden_states_equal_pytorch(default_encoder, torch_reference):
    texts = mixed_length_texts()
    ours = default_encoder(tf.constant(texts))
    batch, theirs = torch_outputs(torch_reference, texts)
    assert ours["last_hidden_state"].shape == tuple(batch["input_ids"].shape) + (384,)  # dynamic: longest in batch
    diff = max_diff_over_tokens(ours["last_hidden_state"], theirs.last_hidden_state, batch["attention_mask"])
    assert diff <= TOLERANCE, diff
    assert np.abs(ours["pooled_output"].numpy() - theirs.pooler_output.numpy()).max() <= TOLERANCE


def test_pairs_equal_pytorch(default_encoder, torch_reference):
    texts = mixed_length_texts()
    pairs = texts[::-1]
    tokenizer_layer = default_encoder.get_layer("tokenizer")
    bert = default_encoder.get_layer("bert")
    tokens = tokenizer_layer((tf.constant(texts), tf.constant(pairs)))
    ours = bert(**tokens).last_hidden_state.numpy()
    batch, theirs = torch_outputs(torch_reference, texts, pairs)
    np.testing.assert_array_equal(tokens["input_ids"].numpy(), batch["input_ids"].numpy())
    np.testing.assert_array_equal(tokens["token_type_ids"].numpy(), batch["token_type_ids"].numpy())
    assert max_diff_over_tokens(ours, theirs.last_hidden_state, batch["attention_mask"]) <= TOLERANCE


def test_sentence_embedding_matches_sentence_transformers_pooling(default_encoder, torch_reference):
    texts = mixed_length_texts()
    tokens = default_encoder.get_layer("tokenizer")(tf.constant(texts))
    hidden = default_encoder(tf.constant(texts))["last_hidden_state"]
    ours = Pooling("mean", normalize=True)({"last_hidden_state": hidden, "attention_mask": tokens["attention_mask"]}).numpy()
    batch, theirs = torch_outputs(torch_reference, texts)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((theirs.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9))
    cosine = (ours * reference.numpy()).sum(-1)
    assert cosine.min() >= 0.999999, cosine.min()


def test_graph_and_predict(default_encoder):
    texts = tf.constant(["graph mode", "and eager mode give the same"])
    eager = default_encoder(texts)["last_hidden_state"].numpy()
    graph = tf.function(default_encoder)(texts)["last_hidden_state"].numpy()
    # Graph and eager pick different float32 kernels: equal up to float32 rounding.
    np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-5)
    predicted = default_encoder.predict(tf.data.Dataset.from_tensor_slices(texts).batch(2), verbose=0)
    np.testing.assert_allclose(predicted["last_hidden_state"], eager, rtol=1e-5, atol=1e-5)


def test_max_length_is_checked(tiny_checkpoint):
    with pytest.raises(TfbertError, match=r"max_length must be between 3 and 128 .* received max_length=1000"):
        build_encoder(str(tiny_checkpoint), max_length=1000)


def test_encoder_config_round_trips(tiny_checkpoint):
    """KerasHub's serialization test: from_config(get_config()) gives the same config, the checkpoint's
    name included, and the revived model has the same parts by type."""
    encoder = build_encoder(str(tiny_checkpoint), max_length=16)
    config = encoder.get_config()
    revived = BertEncoder.from_config(config)
    assert isinstance(revived, BertEncoder) and revived.checkpoint_name == encoder.checkpoint_name == tiny_checkpoint.name
    assert isinstance(revived.tokenizer, BertTokenizerLayer) and isinstance(revived.bert, BertBackbone)
    strip = lambda c: {k: v for k, v in c.items() if k != "layers"}  # noqa: E731 - layers' build configs differ
    assert strip(revived.get_config()) == strip(config)
    assert [layer["config"] for layer in revived.get_config()["layers"] if layer["class_name"] != "BertBackbone"] == \
        [layer["config"] for layer in config["layers"] if layer["class_name"] != "BertBackbone"]
    text = tf.constant(["a b c", "the quick brown fox"])
    revived.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(revived(text)["last_hidden_state"].numpy(), encoder(text)["last_hidden_state"].numpy())


@pytest.mark.parametrize("mode", ["pooled", "cls", "mean"])
@pytest.mark.parametrize("normalize", [False, True])
def test_pooling_modes(mode, normalize):
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 4, 3)).astype(np.float32)
    pooled = rng.normal(size=(2, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int32)
    layer = Pooling(mode, normalize=normalize)
    ours = layer({"last_hidden_state": hidden, "pooled_output": pooled, "attention_mask": mask}).numpy()
    expected = {"pooled": pooled, "cls": hidden[:, 0],
                "mean": np.stack([hidden[0, :3].mean(0), hidden[1, :2].mean(0)])}[mode]
    if normalize:
        expected = expected / np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    assert Pooling.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(TfbertError, match="mode must be one of"):
        Pooling("max")
