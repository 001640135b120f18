"""Sentence embeddings: tfbert.embed and the `embed` signature against PyTorch BertModel, mean-pooled."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import debian_texts, read_jsonl, shared_file
from tfbert.models.embedding import embed
from tfbert.errors import TfbertError


def reference_embeddings(torch_reference, texts, batch_size=32):
    """PyTorch BertModel on the reference tokenizer's ids, mean-pooled over the attention mask, L2-normalised."""
    import torch

    tokenizer, model = torch_reference
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"][:, :, None].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(rows)


def test_embed_equals_the_reference_on_a_real_corpus(default_encoder, torch_reference):
    texts = debian_texts("dev") + [c["text"] for c in read_jsonl(shared_file("data", "tokenizer-cases.jsonl"))][:200]
    ours = embed(texts, default_encoder)
    theirs = reference_embeddings(torch_reference, texts)
    cosine = np.sum(ours * theirs, axis=1)
    print(f"embed vs PyTorch: min cosine {cosine.min():.8f} over {len(texts)} texts")
    assert cosine.min() >= 0.999999, (cosine.min(), texts[int(np.argmin(cosine))])  # benchmarks/README.md: 0.99999976 measured
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_embed_signature_equals_embed(default_export, default_encoder):
    import tensorflow_text  # noqa: F401

    _, path = default_export
    texts = debian_texts("dev", 40)
    served = tf.saved_model.load(str(path)).signatures["embed"](text=tf.constant(texts))["sentence_embedding"].numpy()
    np.testing.assert_allclose(served, embed(texts, default_encoder), atol=1e-5)


def test_embed_errors(default_encoder):
    with pytest.raises(TfbertError, match="list of strings"):
        embed("one text", default_encoder)
    with pytest.raises(TfbertError, match="batch_size"):
        embed(["a"], default_encoder, batch_size=0)


def test_length_groups_equal_one_padded_batch(default_encoder):
    from tfbert.models.length_groups import embed_in_length_groups
    from tfbert.models.pooling import Pooling

    dev = debian_texts("dev")
    texts = dev[:20] + ["a", "two words", ""] + [" ".join(dev[20:30])]  # one text far longer than the rest
    tokenizer, bert = default_encoder.get_layer("tokenizer"), default_encoder.get_layer("bert")
    calls = []

    def embed_tokens(tokens):
        calls.append(tokens["input_ids"].shape)
        hidden = bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                      token_type_ids=tokens["token_type_ids"], training=False).last_hidden_state
        return Pooling("mean", normalize=True)({"last_hidden_state": hidden, "attention_mask": tokens["attention_mask"]})

    tokens = tokenizer(tf.constant(texts))
    grouped = embed_in_length_groups(embed_tokens, tokens, 384).numpy()
    # 24 texts: 3 groups of 8 (the minimum), each padded to its own longest text.
    assert [shape[0] for shape in calls] == [8, 8, 8]
    assert sum(shape[0] * shape[1] for shape in calls) < 0.8 * tokens["input_ids"].shape[0] * tokens["input_ids"].shape[1]
    single = embed_tokens(tokens).numpy()
    np.testing.assert_allclose(grouped, single, atol=1e-5)
    # A batch of texts of about the same number of tokens runs as one.
    lengths = tokenizer(tf.constant(dev))["attention_mask"].numpy().sum(1)
    similar = [dev[i] for i in np.argsort(lengths, kind="stable")[200:232]]
    calls.clear()
    embed_in_length_groups(embed_tokens, tokenizer(tf.constant(similar)), 384)
    assert len(calls) == 1
