"""Pre-training: dynamic masking, the sentence-pair stream, the MLM + NSP model, and `tfbert pretrain`."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import SEED_SENTENCE, shared_file
from tfbert.corpus import IS_NEXT, IS_RANDOM, sentence_pairs
from tfbert.errors import TfbertError
from tfbert.pretraining import IGNORE, build_pretrainer, mask_tokens

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


def pretrain_command(corpus, out, *extra):
    return [sys.executable, "-m", "tfbert", "pretrain", "--corpus", str(corpus), "--config", "tiny", "--out", str(out),
            "--steps", "30", "--checkpoint-every", "10", "--batch-size", "8", "--max-length", "48", "--eval-steps", "3",
            "--verbose", "2", "--learning-rate", "1e-3", *extra]


@pytest.mark.slow  # minutes of subprocess training: `pytest -m slow` (see README)
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

    from tfbert.encoder import build_encoder

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
    assert difference <= 1e-4

    from test_cli import tfbert

    exported = tfbert("export", "--model", out, "--out-dir", tmp_path / "saved_models")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout.strip() == str(tmp_path / "saved_models" / "tiny-debian" / "1")
