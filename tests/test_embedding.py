"""Sentence embeddings: tfbert.embed and the `embed` signature against PyTorch BertModel, mean-pooled."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import debian_texts, read_jsonl, shared_file
from tfbert.embedding import embed
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
    assert cosine.min() >= 0.99999, texts[int(np.argmin(cosine))]
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
