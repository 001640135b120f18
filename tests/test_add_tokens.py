"""add_tokens: transformers' `add_tokens` + `resize_token_embeddings`, with the tokenizer in the graph.

References are computed live: transformers' Python BertTokenizer after the same `add_tokens` calls,
and PyTorch BertModel on a folder written by tfbert.
"""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

from conftest import SEED_IDS, SEED_SENTENCE, debian_texts, read_jsonl, run_python, shared_file, valid_ids
from tfbert.models.classifier import build_classifier, load_classifier, save_classifier
from tfbert.models.encoder import build_encoder
from tfbert.errors import TfbertError
from tfbert.serving.export import export_saved_model
from tfbert.models.surgery import add_tokens

# Domain words, one already in the vocabulary ("the": it keeps its id but is no longer split, so
# "other" becomes o + the + r), mixed case (lower-cased when the tokenizer is), accents, Greek
# with a final sigma, punctuation inside tokens, a dotted capital I (two characters when lower-cased).
NEW_TOKENS = ["Kubernetes", "k8s", "the", "[ENT]", "naïve", "ΟΔΟΣ", "GNU/Linux", "e-mail", "İstanbul", "dockerfile"]
SPECIAL_TOKENS = ["<X>", "[unused1]"]
OTHER_TEXT = ["Kubernetès", "KUBERNETES", "kuber\x00netes", "<x>", "[ent", "k8", "thethe", "doCKerFILE"]


def reference_tokenizer(vocab_file, do_lower_case=True, special=True):
    from transformers import BertTokenizer

    reference = BertTokenizer(vocab_file, do_lower_case=do_lower_case)
    reference.add_tokens(NEW_TOKENS)
    if special:
        reference.add_tokens(SPECIAL_TOKENS, special_tokens=True)
    return reference


def texts_with_tokens(count, seed=0):
    """Real texts with the tokens (and near misses) inserted at random, with punctuation or glued to words."""
    rng = random.Random(seed)
    texts = []
    for text in debian_texts("dev", count):
        words = text.split(" ")
        for _ in range(4):
            word = rng.choice(NEW_TOKENS + SPECIAL_TOKENS + [t.upper() for t in NEW_TOKENS] + OTHER_TEXT)
            words.insert(rng.randrange(len(words) + 1), word + rng.choice(["", "", ",", "s", "-x", ")"]))
        texts.append(" ".join(words))
        texts.append("".join(words[:10]))  # tokens glued to their neighbours
    return texts


@pytest.fixture(scope="module")
def added_encoders(tiny_checkpoint):
    cache = {}

    def get(do_lower_case=True):
        if do_lower_case not in cache:
            encoder = build_encoder(str(tiny_checkpoint), max_length=128, do_lower_case=do_lower_case)
            cache[do_lower_case] = encoder, add_tokens(add_tokens(encoder, NEW_TOKENS), SPECIAL_TOKENS, special_tokens=True)
        return cache[do_lower_case]

    return get


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_ids_equal_the_reference_after_add_tokens(added_encoders, vocab_file, do_lower_case):
    _, encoder = added_encoders(do_lower_case)
    reference = reference_tokenizer(vocab_file, do_lower_case)
    tokenizer = encoder.get_layer("tokenizer")
    assert tokenizer.vocabulary_size == len(reference)
    inserted = texts_with_tokens(150)
    corpus = inserted + [case["text"] for case in read_jsonl(shared_file("data", "tokenizer-cases.jsonl"))]
    ours = valid_ids(tokenizer(tf.constant(corpus)))
    theirs = [reference(t, truncation=True, max_length=128)["input_ids"] for t in corpus]
    mismatches = [i for i in range(len(corpus)) if ours[i] != theirs[i]]
    assert not mismatches, f"{len(mismatches)}/{len(corpus)} differ; first {corpus[mismatches[0]]!r}"
    new_ids = set(range(30522, len(reference)))
    assert sum(bool(new_ids & set(ids)) for ids in ours[:len(inserted)]) > len(inserted) // 2  # the new tokens are used


def test_added_tokens_are_kept_whole_and_text_without_them_is_unchanged(added_encoders, vocab_file):
    encoder, added = added_encoders(True)
    tokenizer = added.get_layer("tokenizer")
    reference = reference_tokenizer(vocab_file)
    ids = valid_ids(tokenizer(tf.constant(["Deploy it on KUBERNETES with a Dockerfile", SEED_SENTENCE])))
    assert ids[0][4] == reference.convert_tokens_to_ids("kubernetes") == 30522
    assert ids[0][-2] == reference.convert_tokens_to_ids("dockerfile") > 30522
    assert ids[1] == SEED_IDS
    texts = [t for t in debian_texts("dev", 600) if not any(w.lower() in t.lower() for w in NEW_TOKENS + SPECIAL_TOKENS)]
    assert len(texts) > 100
    before, after = encoder(tf.constant(texts)), added(tf.constant(texts))
    assert valid_ids(encoder.get_layer("tokenizer")(tf.constant(texts))) == valid_ids(tokenizer(tf.constant(texts)))
    for name in ("last_hidden_state", "pooled_output"):
        assert np.abs(before[name].numpy() - after[name].numpy()).max() <= 1e-6
    old = encoder.get_layer("bert").bert.embeddings.weight.numpy()
    new = added.get_layer("bert").bert.embeddings.weight.numpy()
    assert new.shape == (len(reference), old.shape[1])
    np.testing.assert_array_equal(new[:30522], old)
    np.testing.assert_allclose(new[30522:], np.repeat(old.mean(axis=0, keepdims=True), len(reference) - 30522, axis=0),
                               rtol=1e-5, atol=1e-7)
    assert encoder.get_layer("bert").config.vocab_size == 30522  # the original is unchanged


def test_slow_trie_divergence_is_a_transformers_bug(added_encoders, vocab_file):
    """Where tfbert and the Python tokenizer differ: overlapping added tokens that defeat its trie.

    transformers' `Trie.split` (4.57) cuts "bxax-a" into ["b", "x", "ax-a"] for the tokens "axa" and
    "x": its lookahead resumes the failed partial match "ax" after the "-" and returns "ax-a", which
    holds the added token "x" unsplit. tfbert splits leftmost-longest, as transformers' own fast
    tokenizer (Rust, Aho-Corasick) does; on text where the trie works, the three agree.
    """
    from transformers import BertTokenizer, BertTokenizerFast

    tokens = ["axa", "x"]
    slow = BertTokenizer(vocab_file)
    slow.add_tokens(tokens)
    fast = BertTokenizerFast(vocab_file=vocab_file)
    fast.add_tokens(tokens)
    encoder = add_tokens(added_encoders(True)[0], tokens)
    text = "bxax-a"
    assert slow.tokens_trie.split(text) == ["b", "x", "ax-a"]  # "x" left inside a piece: the bug
    ours = valid_ids(encoder.get_layer("tokenizer")(tf.constant([text])))[0]
    assert ours == fast(text)["input_ids"] != slow(text)["input_ids"]
    for text in ["an axa and an x", "xaxa axax", "taxable box"]:
        assert valid_ids(encoder.get_layer("tokenizer")(tf.constant([text])))[0] == slow(text)["input_ids"] == fast(text)["input_ids"]


def test_added_tokens_fine_tune_save_and_export(tmp_path, tiny_checkpoint, vocab_file):
    classifier = build_classifier(str(tiny_checkpoint), labels=["other", "containers"])
    classifier = add_tokens(classifier, NEW_TOKENS)
    texts = ["runs pods on kubernetes", "a k8s operator", "Kubernetes controller", "a dockerfile linter",
             "a text editor", "an image viewer", "a font package", "a music player"] * 4
    labels = [1, 1, 1, 1, 0, 0, 0, 0] * 4
    embeddings = classifier.get_layer("bert").bert.embeddings.weight
    before = embeddings.numpy()[30522].copy()
    classifier.compile(train_steps=20, learning_rate=1e-3)
    history = classifier.fit(tf.data.Dataset.from_tensor_slices((texts, labels)).batch(8).repeat(5), epochs=1, verbose=0)
    assert np.abs(embeddings.numpy()[30522] - before).max() > 1e-4  # the new token's embedding trains
    assert np.isfinite(history.history["loss"][0])
    saved = load_classifier(save_classifier(classifier, tmp_path / "saved"))
    probe = tf.constant(["kubernetes and k8s", SEED_SENTENCE])
    np.testing.assert_allclose(saved(probe).numpy(), classifier(probe).numpy(), atol=1e-6)
    path = export_saved_model(classifier, tmp_path / "models" / "containers")
    reference = reference_tokenizer(vocab_file, special=False)
    vocabulary = (path / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocabulary == [reference.convert_ids_to_tokens(i) for i in range(len(reference))]
    assert vocabulary[30522] == "kubernetes"
    code = """
import json, sys
import tensorflow as tf, tensorflow_text
model = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
tokens = model.signatures["tokenize"](text=texts)
out = model.signatures["serving_default"](text=texts)
print(json.dumps({"ids": [r[m == 1].tolist() for r, m in zip(tokens["input_ids"].numpy(), tokens["attention_mask"].numpy())],
                  "logits": out["logits"].numpy().tolist()}))
"""
    probes = texts_with_tokens(10, seed=3) + [SEED_SENTENCE]
    result = run_python(code, path, json.dumps(probes))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = [reference(t, truncation=True, max_length=128)["input_ids"] for t in probes]
    assert served["ids"] == expected
    assert served["ids"][-1] == SEED_IDS
    np.testing.assert_allclose(served["logits"], classifier(tf.constant(probes)).numpy(), atol=1e-5)


def test_pretrainer_with_added_tokens_writes_a_transformers_folder(tmp_path, vocab_file):
    import torch
    from transformers import BertModel, BertTokenizer

    from tfbert.models.pretrainer import build_pretrainer, save_pretrained

    pretrainer = build_pretrainer(config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 64, "max_position_embeddings": 128}, max_length=64)
    pretrainer({"text": tf.constant(["a"]), "text_pair": tf.constant(["b"])})
    pretrainer = add_tokens(add_tokens(pretrainer, NEW_TOKENS), SPECIAL_TOKENS, special_tokens=True)
    assert pretrainer.model.config.vocab_size == len(reference_tokenizer(vocab_file))
    folder = save_pretrained(pretrainer, tmp_path / "hf")
    assert json.loads((folder / "added_tokens.json").read_text())["kubernetes"] == 30522
    texts = texts_with_tokens(40, seed=5)
    # transformers reads the added tokens back...
    reference = BertTokenizer.from_pretrained(str(folder))
    assert len(reference) == pretrainer.model.config.vocab_size
    expected = [reference(t, truncation=True, max_length=64)["input_ids"] for t in texts]
    assert valid_ids(pretrainer.tokenizer(tf.constant(texts))) == expected
    # ...and so does tfbert, from the same folder; PyTorch's hidden states agree with ours.
    encoder = build_encoder(str(folder), max_length=64)
    assert valid_ids(encoder.get_layer("tokenizer")(tf.constant(texts))) == expected
    batch = reference(texts[:8], truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = BertModel.from_pretrained(str(folder)).eval()(**batch).last_hidden_state.numpy()
    ours = encoder(tf.constant(texts[:8]))["last_hidden_state"].numpy()
    mask = batch["attention_mask"].numpy()[:, :, None].astype(bool)
    assert np.abs(np.where(mask, ours - states, 0)).max() <= 1e-5  # float32 noise


def test_pretrain_with_added_tokens_learns_them_and_refuses_another_list_on_resume(tmp_path):
    from transformers import BertTokenizer

    from tfbert.jobs.pretrain import pretrain

    lines = open(shared_file("data", "debian-descriptions.txt"), encoding="utf-8").read().split("\n")[:1500]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 64}
    tokens = ["debian", "exim4", "grub", "kubernetes", "dockerfile"]  # frequent in the corpus; absent from it
    out = tmp_path / "tiny"
    kwargs = dict(config=config, steps=4, batch_size=8, max_length=64, checkpoint_every=2, eval_steps=1, verbose=0)
    result = pretrain(corpus, out, add_tokens=tokens, **kwargs)
    reference = BertTokenizer.from_pretrained(str(out))
    assert reference.tokenize("Debian grub on Kubernetes") == ["debian", "grub", "on", "kubernetes"]
    assert [reference.convert_tokens_to_ids(t) for t in tokens] == list(range(30522, 30527))
    embeddings = result.pretrainer.model.bert.embeddings.weight.numpy()
    assert embeddings.shape[0] == 30527
    # All new rows start as the mean. Tokens the model never reads keep equal rows (the tied output
    # layer moves them alike); tokens it reads move apart.
    np.testing.assert_allclose(embeddings[30525], embeddings[30526], atol=1e-7)
    assert max(np.abs(embeddings[i] - embeddings[30526]).max() for i in (30522, 30523, 30524)) > 1e-4

    (out / ".pretrain-state" / "finished.json").unlink()  # as if killed before the end
    with pytest.raises(TfbertError, match="add_tokens"):
        pretrain(corpus, out, add_tokens=["other"], **kwargs)


@pytest.mark.parametrize("tokens, message", [
    ([3], "tokens must be strings"),
    (["two\nlines"], "line break"),
])
def test_add_tokens_errors(added_encoders, tokens, message):
    with pytest.raises(TfbertError, match=message):
        add_tokens(added_encoders(True)[0], tokens)


def test_add_tokens_needs_a_tfbert_model():
    import tf_keras

    with pytest.raises(TfbertError, match="build_encoder, build_classifier or build_pretrainer"):
        add_tokens(tf_keras.Sequential([tf_keras.layers.Dense(1)]), ["x"])


def test_added_token_options_transformers_cannot_express_are_refused(tmp_path, tiny_checkpoint):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["added_tokens_decoder"]["30522"] = {"content": "foo", "lstrip": True, "rstrip": False, "single_word": False,
                                               "normalized": True, "special": False}
    path.write_text(json.dumps(config))
    with pytest.raises(TfbertError, match="lstrip"):
        build_encoder(str(folder))
