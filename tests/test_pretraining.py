"""Pre-training: dynamic masking, the sentence-pair stream, the MLM + NSP model, and `tfbert pretrain`."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import SEED_SENTENCE, TINY_BERT, shared_file
from tfbert.jobs.sentence_pairs import IS_NEXT, IS_RANDOM, sentence_pairs
from tfbert.errors import TfbertError
from tfbert.models.pretrainer import IGNORE, build_pretrainer, mask_tokens

CLS, SEP, PAD, MASK, UNK = 101, 102, 0, 103, 100


def test_masking_proportions_and_specials():
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(400, 128)).astype(np.int32)
    mask = np.ones_like(ids)
    ids[:, 0], ids[:, 60], ids[:, 61] = CLS, SEP, UNK
    ids[:, 100:], mask[:, 100:] = PAD, 0
    specials = tf.constant([PAD, UNK, CLS, SEP, MASK])
    masked, labels = (t.numpy() for t in mask_tokens(tf.constant(ids), tf.constant(mask), specials, 30522, MASK))
    selected = labels != IGNORE
    candidates = (mask == 1) & ~np.isin(ids, [CLS, SEP, UNK])
    assert not (selected & ~candidates).any()  # specials and padding are never selected
    assert (labels[selected] == ids[selected]).all()
    assert abs(selected.sum() / candidates.sum() - 0.15) < 0.01
    became_mask = (masked == MASK) & selected
    unchanged = (masked == ids) & selected
    assert abs(became_mask.sum() / selected.sum() - 0.8) < 0.02
    assert abs(unchanged.sum() / selected.sum() - 0.1) < 0.02
    assert abs((selected & ~became_mask & ~unchanged).sum() / selected.sum() - 0.1) < 0.02
    assert (masked[~selected] == ids[~selected]).all()
    again = mask_tokens(tf.constant(ids), tf.constant(mask), specials, 30522, MASK)[1].numpy()
    assert (again != labels).any()  # drawn anew at every call


def test_sentence_pairs_are_true_continuations_or_from_another_document(tmp_path):
    rng = np.random.default_rng(5)
    documents = [[f"document {d} sentence {i}." for i in range(rng.integers(1, 9))] for d in range(600)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(document) for document in documents) + "\n", encoding="utf-8")
    budget = 70  # characters: two or three of these sentences

    def where(segment):
        """[(document, index)] of the sentences of a segment."""
        parts = [p.split() for p in segment.rstrip(".").split(". ")]
        return [(int(p[1]), int(p[3])) for p in parts]

    pairs = [(where(f["text"].numpy().decode()), where(f["text_pair"].numpy().decode()), int(label))
             for f, label in sentence_pairs(corpus, seed=3, random_buffer=100, segment_chars=budget)]
    assert sorted(first[0][0] for first, _, _ in pairs) == [d for d, doc in enumerate(documents) if len(doc) >= 2]
    randoms = sum(label == IS_RANDOM for _, _, label in pairs)
    assert 0.4 < randoms / len(pairs) < 0.6
    for first, second, label in pairs:
        for segment in (first, second):
            assert len({d for d, _ in segment}) == 1  # one document...
            assert [i for _, i in segment] == list(range(segment[0][1], segment[-1][1] + 1))  # ...consecutive sentences
            assert len(segment) == 1 or sum(len(f"document {d} sentence {i}.") + 1 for d, i in segment) <= budget
        document, end = first[-1]
        if label == IS_NEXT:
            assert second[0] == (document, end + 1)  # B starts right after A
        else:
            assert second[0][0] != document
    lengths = {len(first) + len(second) for first, second, _ in pairs}
    assert max(lengths) >= 4  # segments hold several sentences

    def documents_of(split):
        return {where(f["text"].numpy().decode())[0][0] for f, _ in sentence_pairs(corpus, split, holdout_every=4)}

    train, heldout = documents_of("train"), documents_of("heldout")
    assert heldout and train and not (train & heldout)
    assert all(d % 4 == 0 for d in heldout)


def test_real_corpus_pairs(tmp_path):
    pairs = list(sentence_pairs(shared_file("data", "debian-descriptions.txt"), "train").take(4000))
    labels = [int(label) for _, label in pairs]
    assert 0.45 < sum(labels) / len(labels) < 0.55
    assert all(f["text"].numpy().strip() and f["text_pair"].numpy().strip() for f, _ in pairs)


def test_corpus_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(TfbertError, match="is empty"):
        sentence_pairs(tmp_path / "empty.txt")
    with pytest.raises(TfbertError, match="does not exist"):
        sentence_pairs(tmp_path / "missing.txt")


def test_continued_pretraining_from_a_checkpoint_trains(tiny_checkpoint):
    pretrainer = build_pretrainer(model=str(tiny_checkpoint), max_length=32)
    pretrainer.compile(optimizer="adam")
    texts = {"text": tf.constant(["the quick brown fox", "a database server"] * 8),
             "text_pair": tf.constant(["jumps over the lazy dog", "for sql queries"] * 8)}
    dataset = tf.data.Dataset.from_tensor_slices((texts, tf.constant([0, 1] * 8))).batch(8)
    history = pretrainer.fit(dataset, epochs=2, verbose=0).history
    assert set(history) == {"loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"}
    assert all(np.isfinite(v).all() for v in history.values())


def topic_corpus(path, vocab_file, topics=4, words_per_topic=10, documents=3000, seed=0):
    """A corpus on which next-sentence prediction is learnable: each document is written in the words of
    one topic, and topics share no word. A true continuation is always on the pair's topic; a random
    document is off it 1 - 1/topics of the time, so an ideal model scores 1 - 0.5 / topics."""
    rng = random.Random(seed)
    vocabulary = open(vocab_file, encoding="utf-8").read().split("\n")
    words = [w for w in vocabulary[2000:12000] if w.isascii() and w.isalpha() and len(w) >= 4]  # whole words
    rng.shuffle(words)
    groups = [words[i * words_per_topic:(i + 1) * words_per_topic] for i in range(topics)]
    lines = []
    for _ in range(documents):
        group = rng.choice(groups)
        for _ in range(rng.randint(3, 6)):
            lines.append(" ".join(rng.choice(group) for _ in range(rng.randint(5, 9))) + ".")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_nsp_learns_on_a_corpus_built_to_be_learnable(tmp_path, vocab_file):
    """`pretrain` on a topic corpus: a tiny BERT from scratch learns NSP on held-out documents.

    On the Debian corpus a random second segment is another package description, close to the true
    continuation, and NSP stays near chance for a small model (benchmarks/README.md). Here the
    classifier must compare the topics of the two segments: held-out accuracy must rise from chance
    (0.5) to near the ceiling (0.875 with 4 topics).
    """
    from tfbert.jobs.pretrain import pretrain

    corpus = topic_corpus(tmp_path / "topics.txt", vocab_file)
    config = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=128)
    result = pretrain(str(corpus), str(tmp_path / "out"), config=config, steps=1000, checkpoint_every=250,
                      max_length=64, learning_rate=1e-3, eval_steps=20, verbose=0)
    by_round = [round(h["nsp_accuracy"], 3) for h in result.history]
    print(f"NSP accuracy by round of 250 steps: {by_round}; held out: {result.heldout['nsp_accuracy']:.3f}")
    assert by_round[0] < 0.6  # it starts at chance
    assert result.heldout["nsp_accuracy"] >= 0.78, (by_round, result.heldout)


def pretrain_command(corpus, out, *extra):
    return [sys.executable, "-m", "tfbert", "pretrain", "--corpus", str(corpus), "--config", "tiny", "--out", str(out),
            "--steps", "30", "--checkpoint-every", "10", "--batch-size", "8", "--max-length", "48", "--eval-steps", "3",
            "--verbose", "2", "--learning-rate", "1e-3", *extra]


@pytest.mark.slow  # minutes of subprocess training; runs in the suite and in CI
def test_pretrain_cli_resumes_and_writes_a_hugging_face_checkpoint(tmp_path):
    lines = open(shared_file("data", "debian-descriptions.txt"), encoding="utf-8").read().split("\n")[:3000]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "tiny-debian"
    command = pretrain_command(corpus, out)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = out / ".pretrain-state" / "history.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if history.is_file() and json.loads(history.read_text())[-1]["round"] == 1 and \
                list((out / ".pretrain-state" / "backup").rglob("checkpoint")):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    first = process.communicate()[0]
    assert process.returncode == -signal.SIGKILL, first[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed after round 1" in resumed.stdout
    assert "Epoch 1/3" not in resumed.stdout and "Epoch 2/3" in resumed.stdout
    assert [h["round"] for h in json.loads(history.read_text())] == [1, 2, 3]
    assert "held-out: " in resumed.stdout and resumed.stdout.strip().endswith(str(out))

    # transformers' PyTorch BertModel reads the folder; tfbert's encoder on it gives the same states.
    import torch
    from transformers import BertForPreTraining, BertModel, BertTokenizer

    from tfbert.models.encoder import build_encoder

    texts = [SEED_SENTENCE, "a debian package", ""]
    BertForPreTraining.from_pretrained(str(out))  # the heads load too
    batch = BertTokenizer.from_pretrained(str(out))(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = BertModel.from_pretrained(str(out)).eval()(**batch).last_hidden_state.numpy()
    outputs = build_encoder(str(out))(tf.constant(texts))
    mask = batch["attention_mask"].numpy().astype(bool)
    ours = outputs["last_hidden_state"].numpy()[:, :mask.shape[1]]
    difference = np.abs(np.where(mask[:, :, None], ours - reference, 0)).max()
    print(f"pre-trained checkpoint, tfbert vs PyTorch BertModel: max abs difference {difference:.3g}")
    assert difference <= 1e-5  # docs/pretraining.md: at most 1e-5

    from test_cli import tfbert

    exported = tfbert("export", "--model", out, "--out-dir", tmp_path / "saved_models")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout.strip() == str(tmp_path / "saved_models" / "tiny-debian" / "1")


@pytest.fixture(scope="module")
def tiny_pretraining_checkpoint(tmp_path_factory, vocab_file):
    """A random 2-layer PyTorch BertForPreTraining (MLM and NSP heads included), saved as transformers saves it."""
    import torch
    from transformers import BertConfig, BertForPreTraining, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-pretraining")
    torch.manual_seed(1)
    model = BertForPreTraining(BertConfig(vocab_size=30522, **TINY_BERT)).eval()
    with torch.no_grad():  # a fresh head's bias is 0: make it count, so that loading it is checked
        model.cls.predictions.bias.normal_(0, 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab_file).save_pretrained(folder)
    return folder


PAIRS = ([SEED_SENTENCE, "a database server for sql queries", "Ünïcödé and 中文", ""],
         ["a debian package", "it stores [MASK] tables on disk", "the second segment", "and a long one " * 8])


def torch_pretraining_logits(folder, texts, pairs):
    import torch
    from transformers import BertForPreTraining, BertTokenizer

    batch = BertTokenizer.from_pretrained(str(folder))(texts, pairs, padding=True, return_tensors="pt")
    model, info = BertForPreTraining.from_pretrained(str(folder), output_loading_info=True)
    with torch.no_grad():
        outputs = model.eval()(**batch)
    return batch, outputs.prediction_logits.numpy(), outputs.seq_relationship_logits.numpy(), model, info


def pretrainer_logits(pretrainer, texts, pairs):
    tokens = pretrainer.tokenizer((tf.constant(texts), tf.constant(pairs)))
    mlm, nsp = pretrainer.heads(tokens)
    return tokens, mlm.numpy(), nsp.numpy()


def assert_logits_equal(pretrainer, folder, bound):
    """MLM logits (every real token) and NSP logits of tfbert and PyTorch BertForPreTraining on the same ids."""
    batch, torch_mlm, torch_nsp, _, _ = torch_pretraining_logits(folder, *PAIRS)
    tokens, mlm, nsp = pretrainer_logits(pretrainer, *PAIRS)
    np.testing.assert_array_equal(tokens["input_ids"].numpy(), batch["input_ids"].numpy())
    np.testing.assert_array_equal(tokens["token_type_ids"].numpy(), batch["token_type_ids"].numpy())
    valid = batch["attention_mask"].numpy().astype(bool)
    mlm_difference = float(np.abs(mlm[valid] - torch_mlm[valid]).max())
    nsp_difference = float(np.abs(nsp - torch_nsp).max())
    print(f"pre-training heads vs PyTorch BertForPreTraining: MLM {mlm_difference:.3g}, NSP {nsp_difference:.3g}")
    assert mlm_difference <= bound and nsp_difference <= bound
    return tokens, mlm


def test_pretraining_heads_load_and_equal_pytorch(tiny_pretraining_checkpoint):
    pretrainer = build_pretrainer(model=str(tiny_pretraining_checkpoint), max_length=64)
    tokens, mlm = assert_logits_equal(pretrainer, tiny_pretraining_checkpoint, 1e-5)
    # Training projects the selected positions only: the same logits as the full projection there.
    positions = tf.constant([[0, 1], [1, 3], [3, 20], [2, 0]], tf.int64)
    selected, _ = pretrainer.heads(tokens, positions)
    np.testing.assert_allclose(selected.numpy(), tf.gather_nd(mlm, positions).numpy(), rtol=0, atol=1e-6)
    # Fresh heads would give other logits: the loaded ones differ from a freshly initialised pretrainer's.
    fresh = build_pretrainer(config=TINY_BERT, max_length=64)
    assert np.abs(pretrainer_logits(fresh, *PAIRS)[1] - mlm).max() > 0.1


def test_trained_heads_save_for_pytorch(tiny_pretraining_checkpoint, tmp_path):
    from tfbert.models.pretrainer import save_pretrained
    from tfbert.models.weights import pytorch_state_dict

    tf_keras.utils.set_random_seed(0)
    pretrainer = build_pretrainer(model=str(tiny_pretraining_checkpoint), max_length=64)
    pretrainer.compile(optimizer=tf_keras.optimizers.Adam(3e-3))
    features = {"text": tf.constant(PAIRS[0] * 4), "text_pair": tf.constant(PAIRS[1] * 4)}
    batch = tf.data.Dataset.from_tensors((features, tf.constant([0, 1, 0, 1] * 4)))

    def mean_metrics():  # masking is drawn anew at each call: average over many draws
        runs = [pretrainer.evaluate(batch, verbose=0, return_dict=True) for _ in range(8)]
        return {name: np.mean([run[name] for run in runs]) for name in runs[0]}

    before = mean_metrics()
    pretrainer.fit(batch.repeat(40), epochs=1, verbose=0)
    after = mean_metrics()
    print(f"fixed batch, 40 steps: loss {before['loss']:.3f} -> {after['loss']:.3f}, "
          f"NSP accuracy {before['nsp_accuracy']:.3f} -> {after['nsp_accuracy']:.3f}")
    assert after["loss"] < 0.6 * before["loss"] and after["mlm_loss"] < before["mlm_loss"]
    assert after["nsp_loss"] < 0.5 * before["nsp_loss"] and after["nsp_accuracy"] == 1.0  # both heads learn

    folder = save_pretrained(pretrainer, tmp_path / "trained")
    _, _, _, model, info = torch_pretraining_logits(folder, *PAIRS)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == [], info
    ours = pytorch_state_dict(pretrainer.model)
    theirs = {k: v.numpy() for k, v in model.state_dict().items()}
    assert any(k.startswith("cls.predictions.transform") for k in theirs) and "cls.seq_relationship.weight" in theirs
    for name, value in theirs.items():
        # PyTorch ties the decoder to the word embeddings and its bias to cls.predictions.bias.
        source = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                  "cls.predictions.decoder.bias": "cls.predictions.bias"}.get(name, name)
        np.testing.assert_array_equal(value, ours[source], err_msg=name)
    assert_logits_equal(pretrainer, folder, 1e-5)  # the trained heads, read back by PyTorch
