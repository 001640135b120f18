"""prune_heads: equal to PyTorch BertModel with those heads masked (head_mask), smaller, exportable."""


import numpy as np
import pytest
import tensorflow as tf

from conftest import SEED_SENTENCE
from tfbert.models.classifier import BertClassifier, build_classifier, load_classifier, save_classifier
from tfbert.models.encoder import build_encoder
from tfbert.errors import TfbertError
from tfbert.serving.export import export_saved_model
from tfbert.models.surgery import prune_heads

HEADS = {0: [1, 3], 1: [0]}
TEXTS = [SEED_SENTENCE, "a second, somewhat longer text about Debian packages and their descriptions", ""]


def torch_states(folder, texts, head_mask=None, prune=None):
    import torch
    from transformers import BertModel, BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(folder))
    model = BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    if prune:
        model.prune_heads(prune)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**batch, head_mask=None if head_mask is None else torch.tensor(head_mask))
    return outputs.last_hidden_state.numpy(), outputs.pooler_output.numpy(), batch["attention_mask"].numpy()


def test_pruned_equals_pytorch_with_head_mask(tiny_checkpoint):
    encoder = build_encoder(str(tiny_checkpoint))
    pruned = prune_heads(encoder, HEADS)
    head_mask = np.ones([2, 4], np.float32)
    for layer, heads in HEADS.items():
        head_mask[layer, heads] = 0
    masked, masked_pooled, mask = torch_states(tiny_checkpoint, TEXTS, head_mask=head_mask)
    torch_pruned, _, _ = torch_states(tiny_checkpoint, TEXTS, prune=HEADS)
    ours = pruned(tf.constant(TEXTS))
    hidden = ours["last_hidden_state"].numpy()
    valid = mask[:, :, None].astype(bool)
    difference = np.abs(np.where(valid, hidden - masked, 0)).max()
    print(f"pruned vs PyTorch head_mask: max abs difference {difference:.3g}")
    assert difference <= 3e-6  # docs/surgery.md: at most 3e-6
    assert np.abs(ours["pooled_output"].numpy() - masked_pooled).max() <= 3e-6
    assert np.abs(np.where(valid, hidden - torch_pruned, 0)).max() <= 3e-6  # and PyTorch's own pruning
    unpruned = encoder(tf.constant(TEXTS))["last_hidden_state"].numpy()
    assert np.abs(np.where(valid, unpruned - masked, 0)).max() > 1e-3  # the heads did matter
    assert pruned.count_params() < encoder.count_params()
    assert encoder.get_layer("bert").config.pruned_heads == {}  # the original is untouched


def test_pruned_classifier_round_trips_and_exports(tmp_path, tiny_checkpoint):
    import tensorflow_text  # noqa: F401

    classifier = build_classifier(str(tiny_checkpoint), labels=["a", "b", "c"])
    pruned = prune_heads(classifier, {1: [0, 1, 2]})
    texts = tf.constant(TEXTS)
    np.testing.assert_allclose(pruned(texts).numpy().shape, (3, 3))
    revived = BertClassifier.from_config(pruned.get_config())
    revived.set_weights(pruned.get_weights())
    np.testing.assert_allclose(revived(texts).numpy(), pruned(texts).numpy(), atol=1e-6)
    loaded = load_classifier(save_classifier(pruned, tmp_path / "pruned"))
    np.testing.assert_allclose(loaded(texts).numpy(), pruned(texts).numpy(), atol=1e-6)

    full = export_saved_model(classifier, tmp_path / "full", warmup=False)
    small = export_saved_model(pruned, tmp_path / "small", warmup=False)
    size = lambda path: sum(f.stat().st_size for f in (path / "variables").iterdir())  # noqa: E731
    assert size(small) < size(full)
    exported = tf.saved_model.load(str(small)).signatures["serving_default"](text=texts)
    np.testing.assert_allclose(exported["logits"].numpy(), pruned(texts).numpy(), atol=1e-5)


@pytest.mark.parametrize("heads,pattern", [
    ({5: [0]}, "layer 5 does not exist"),
    ({0: [4]}, "head 4 of layer 0 does not exist"),
    ({0: [0, 1, 2, 3]}, "would leave it without attention"),
    ([0, 1], "heads must be a dict"),
])
def test_prune_errors(tiny_checkpoint, heads, pattern):
    with pytest.raises(TfbertError, match=pattern):
        prune_heads(build_encoder(str(tiny_checkpoint)), heads)


def test_pruning_twice_is_refused(tiny_checkpoint):
    pruned = prune_heads(build_encoder(str(tiny_checkpoint)), {0: [0]})
    with pytest.raises(TfbertError, match="already pruned"):
        prune_heads(pruned, {0: [1]})
