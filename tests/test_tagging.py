"""Entity tagging: conlleval's entity counting, CoNLL/JSONL readers, token labels as transformers' recipe
makes them, the Hugging Face layout save, and `tfbert finetune --task token-classification` end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python, shared_file
from test_classifier import without_build_config
from test_cli import assert_one_line_error, tfbert
from test_finetune import kill_after_first_epoch
from tfbert.errors import TfbertError
from tfbert.jobs.entity_scores import entity_spans, score_entities
from tfbert.jobs.tagged_text import encode_tags, read_tagged, tag_names
from tfbert.jobs.tagging import tagging_features
from tfbert.models.token_classifier import IGNORED, build_token_classifier


def wnut(split, count=None):
    sentences = read_tagged(shared_file("data", "wnut17", f"{split}.conll"))
    if count:
        for field in ("words", "tags", "lines"):
            setattr(sentences, field, getattr(sentences, field)[:count])
    return sentences


# ---------------------------------------------------------------------------------------------- scoring

def test_entity_scores_equal_seqevals_documented_example():
    """seqeval's README: f1 0.50; MISC precision, recall, f1 0 (support 1), PER 1 (support 1), micro avg 0.50."""
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    scores = score_entities(y_true, y_pred)
    assert (scores.precision, scores.recall, scores.f1, scores.gold) == (0.5, 0.5, 0.5, 2)
    assert (scores.by_type["MISC"].f1, scores.by_type["MISC"].gold) == (0.0, 1)
    assert (scores.by_type["PER"].precision, scores.by_type["PER"].recall, scores.by_type["PER"].f1) == (1.0, 1.0, 1.0)
    # seqeval's get_entities docstring.
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]


def test_entity_scores_follow_conllevals_documented_example():
    """conlleval's output example (CoNLL-2000): predictions that open a chunk with I-NP, as IOB1 does,
    make the same chunks as the corpus' B-NP, so each of the five phrases is correct."""
    gold = [["B-NP", "B-NP", "I-NP", "I-NP", "O"], ["B-NP", "B-VP", "B-NP", "I-NP"]]
    guessed = [["I-NP", "B-NP", "I-NP", "I-NP", "O"], ["I-NP", "B-VP", "B-NP", "I-NP"]]
    scores = score_entities(gold, guessed)
    assert (scores.gold, scores.predicted, scores.correct) == (5, 5, 5)


@pytest.mark.parametrize("tags, spans", [
    (["I-PER", "I-PER", "B-PER"], [("PER", 0, 1), ("PER", 2, 2)]),  # IOB1: B- splits two entities of one type
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),  # a type change ends a chunk, starts another
    (["O", "I-PER", "O", "I-PER"], [("PER", 1, 1), ("PER", 3, 3)]),  # I- after O opens a chunk
    (["B-creative-work", "I-creative-work"], [("creative-work", 0, 1)]),  # types may hold hyphens
    (["B-PER"], [("PER", 0, 0)]),
    ([], []),
])
def test_entity_spans_follow_conllevals_chunk_rules(tags, spans):
    assert entity_spans(tags) == spans


def test_entity_scores_count_exact_matches_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    scores = score_entities(gold, [["B-PER", "O", "O", "B-ORG"]])  # a cut PER and a wrong type: nothing correct
    assert (scores.gold, scores.predicted, scores.correct, scores.f1) == (2, 2, 0, 0.0)
    with pytest.raises(ValueError, match="sentence 0 has 4 gold tags but 3 predicted"):
        score_entities(gold, [["O", "O", "O"]])


# ---------------------------------------------------------------------------------------------- reading

def test_conll_and_jsonl_files_read_alike(tmp_path):
    conll = tmp_path / "train.conll"
    conll.write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n \nPeter\tB-PER\nBlackburn\tI-PER\n",
                     encoding="utf-8")
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}\n\n'
                     '{"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}\n', encoding="utf-8")
    read = [read_tagged(conll), read_tagged(jsonl)]
    for sentences in read:
        assert sentences.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
        assert sentences.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert read[0].lines == [[3, 4], [6, 7]]
    assert tag_names(read[0]) == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_iob1_is_read_as_iob2(tmp_path):
    path = tmp_path / "iob1.conll"
    path.write_text("Peter I-PER\nBlackburn I-PER\nJohn B-PER\nsaid O\nBonn I-LOC\n", encoding="utf-8")
    assert read_tagged(path, "iob1").tags == [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]


@pytest.mark.parametrize("text, scheme, message", [
    ("Peter B-PER\nsaid O\nBonn I-LOC\n", "iob2", r"bad\.conll:3: 'I-LOC' after 'O': in IOB2 an entity starts with B-LOC.*--tag-scheme iob1"),
    ("Bonn I-LOC\n", "iob2", r"bad\.conll:1: 'I-LOC' after the sentence's start"),
    ("said O\nBonn B-LOC\n", "iob1", r"bad\.conll:2: 'B-LOC' does not follow a LOC word: in IOB1"),
    ("Peter PER\n", "iob2", r"bad\.conll:1: tag 'PER' is not O, B-<type> or I-<type>"),
    ("Peter\n", "iob2", r"bad\.conll:1: expected a word and its tag"),
    ("\n\n", "iob2", r"bad\.conll has no tagged sentences"),
])
def test_bad_tags_are_refused_with_file_and_line(tmp_path, text, scheme, message):
    path = tmp_path / "bad.conll"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TfbertError, match=message):
        read_tagged(path, scheme)


def test_bad_jsonl_and_unknown_dev_tags_are_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"tokens": ["a", "b"], "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(TfbertError, match=r"bad\.jsonl:1: 2 tokens but 1 tags"):
        read_tagged(path)
    path.write_text('{"tokens": ["a"], "tags": [0]}\n', encoding="utf-8")
    with pytest.raises(TfbertError, match=r"bad\.jsonl:1: .*lists of strings \(tag names, not ids\)"):
        read_tagged(path)
    dev = tmp_path / "dev.conll"
    dev.write_text("Bonn B-LOC\n\nACME B-ORG\nrises O\n", encoding="utf-8")
    with pytest.raises(TfbertError, match=r"dev\.conll:3: tag 'B-ORG' has a type the training data does not have \(LOC\)"):
        encode_tags(read_tagged(dev), ["O", "B-LOC", "I-LOC"])


# ---------------------------------------------------------------------------------------------- token labels

def reference_labels(tokenizer, words, tags, label_all_tokens, b_to_i):
    """transformers' token-classification recipe (run_ner.py's tokenize_and_align_labels), live."""
    encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=256)
    labels, previous = [], None
    for word in encoding.word_ids():
        if word is None:
            labels.append(IGNORED)
        elif word != previous:
            labels.append(tags[word])
        else:
            labels.append(b_to_i[tags[word]] if label_all_tokens else IGNORED)
        previous = word
    return encoding["input_ids"], labels


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_token_labels_equal_transformers_recipe(default_checkpoint, label_all_tokens):
    """Words joined and split by the in-graph tokenizer get the labels transformers' fast tokenizer
    gives the same words (is_split_into_words), on 600 WNUT-17 sentences (emoji, URLs, hashtags)."""
    from transformers import BertTokenizerFast

    sentences = wnut("train", 600)
    labels = tag_names(sentences)
    ids = encode_tags(sentences, labels)
    b_to_i = [labels.index("I-" + name[2:]) if name.startswith("B-") else i for i, name in enumerate(labels)]
    reference = BertTokenizerFast(str(default_checkpoint.vocab_file), do_lower_case=True)
    tokenizer = default_checkpoint.build_tokenizer(256)
    features = tagging_features(tokenizer, sentences.words, ids, labels, label_all_tokens)
    tokens = tokenizer(tf.constant(features.texts))
    differ = 0
    for row, (words, tags) in enumerate(zip(sentences.words, ids)):
        input_ids, expected = reference_labels(reference, words, tags, label_all_tokens, b_to_i)
        length = features.lengths[row]
        ours = tokens["input_ids"][row, :length].numpy().tolist(), features.labels[row, :length].tolist()
        differ += ours != (input_ids, expected)
    assert differ == 0
    assert (features.labels[:, 1:] != IGNORED).sum() > 6000  # real labels, not all ignored


# ---------------------------------------------------------------------------------------------- models

def test_token_classifier_round_trips_its_config(tiny_checkpoint):
    model = build_token_classifier(str(tiny_checkpoint), labels=["O", "B-LOC", "I-LOC"])
    rebuilt = type(model).from_config(model.get_config())
    assert (json.dumps(without_build_config(rebuilt.get_config()), sort_keys=True)
            == json.dumps(without_build_config(model.get_config()), sort_keys=True))
    assert rebuilt.labels == ["O", "B-LOC", "I-LOC"]
    with pytest.raises(TfbertError, match="has no token-classification head; pass labels"):
        build_token_classifier(str(tiny_checkpoint))


SAVED_TAGGER = """
import sys, json, torch
from transformers import BertForTokenClassification, BertTokenizer
folder, texts = sys.argv[1], json.loads(sys.argv[2])
model = BertForTokenClassification.from_pretrained(folder).eval()
tokenizer = BertTokenizer.from_pretrained(folder)
with torch.no_grad():
    logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
print(json.dumps({"logits": logits.tolist(), "id2label": model.config.id2label}))
"""


def test_token_classifier_saves_for_pytorch(tmp_path, tiny_checkpoint):
    """save_transformers writes BertForTokenClassification that PyTorch loads in a fresh process, with
    equal logits; build_token_classifier on that folder keeps the head and its labels."""
    from tfbert.models.transformers_layout import save_transformers

    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    model = build_token_classifier(str(tiny_checkpoint), labels=labels)
    texts = ["Flights from Bonn to New York", "Peter Blackburn", ""]
    folder = save_transformers(model, tmp_path / "tagger")
    result = run_python(SAVED_TAGGER, folder, json.dumps(texts))
    assert result.returncode == 0, result.stderr[-3000:]
    reference = json.loads(result.stdout)
    assert reference["id2label"] == {str(i): label for i, label in enumerate(labels)}
    ours = model(tf.constant(texts)).numpy()
    np.testing.assert_allclose(ours, np.asarray(reference["logits"]), atol=1e-5)
    reloaded = build_token_classifier(str(folder))
    assert reloaded.labels == labels
    np.testing.assert_allclose(reloaded(tf.constant(texts)).numpy(), ours, atol=1e-6)


SAVED_CLASSIFIERS = """
import sys, json, torch
from transformers import BertForSequenceClassification, BertTokenizer
texts, results = json.loads(sys.argv[1]), {}
for folder in sys.argv[2:]:
    model, tokenizer = BertForSequenceClassification.from_pretrained(folder).eval(), BertTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    results[folder] = [logits.tolist(), model.config.problem_type]
print(json.dumps(results))
"""


def test_classifier_saves_for_pytorch_only_with_pooled_output(tmp_path, tiny_checkpoint):
    from tfbert.models.classifier import build_classifier, load_classifier, save_classifier
    from tfbert.models.transformers_layout import save_transformers

    texts = ["a game of chess", "a database server"]
    problem_types = {"classification": "single_label_classification", "multi_label": "multi_label_classification",
                     "regression": "regression"}
    classifiers, folders = {}, []
    for task, labels in (("classification", ["games", "database"]), ("multi_label", ["x", "y", "z"]), ("regression", None)):
        classifiers[task] = build_classifier(str(tiny_checkpoint), labels=labels, task=task, pooling="pooled")
        folders.append(str(save_transformers(classifiers[task], tmp_path / task)))
    # Read back from a Keras folder (as `tfbert finetune` reads its best epoch), its BERT weights lose a
    # name level; the Hugging Face folder must not.
    classifiers["reloaded"] = load_classifier(save_classifier(classifiers["classification"], tmp_path / "keras"))
    folders.append(str(save_transformers(classifiers["reloaded"], tmp_path / "reloaded")))
    problem_types["reloaded"] = problem_types["classification"]
    result = run_python(SAVED_CLASSIFIERS, json.dumps(texts), *folders)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = json.loads(result.stdout)
    for (task, classifier), folder in zip(classifiers.items(), folders):
        logits, problem_type = reference[folder]
        assert problem_type == problem_types[task]
        np.testing.assert_allclose(classifier(tf.constant(texts)).numpy(), np.asarray(logits), atol=1e-5)
    mean = build_classifier(str(tiny_checkpoint), labels=["games", "database"], pooling="mean")
    with pytest.raises(TfbertError, match="pools with 'mean', and transformers has no class for that.*--pooling pooled"):
        save_transformers(mean, tmp_path / "mean")


# ---------------------------------------------------------------------------------------------- the command

def write_conll(path, sentences):
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in zip(sentences.words, sentences.tags):
            f.write("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")
    return path


PIPELINE_VERSUS_EXPORT = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401
from transformers import pipeline
folder, export, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
reference = pipeline("token-classification", model=folder, aggregation_strategy="first", framework="pt")(texts)
served = tf.saved_model.load(export).signatures["serving_default"](text=tf.constant(texts))
ours = []
for row in range(len(texts)):
    count = int(served["num_entities"][row])
    ours.append([{"entity_group": served["entity_group"][row, i].numpy().decode(), "word": served["word"][row, i].numpy().decode(),
                  "start": int(served["start"][row, i]), "end": int(served["end"][row, i]),
                  "score": float(served["score"][row, i])} for i in range(count)])
differ = sum(len(a) != len(b) or any((x["entity_group"], x["word"], x["start"], x["end"]) !=
                                     (y["entity_group"], y["word"], y["start"], y["end"]) or abs(x["score"] - y["score"]) > 1e-4
                                     for x, y in zip(a, b)) for a, b in zip(ours, reference))
print(json.dumps({"differ": differ, "entities": sum(map(len, reference))}))
"""


@pytest.mark.slow  # minutes of subprocess training; runs in the suite and in CI
def test_tagger_finetune_resumes_exports_and_saves_for_transformers(tmp_path, tiny_checkpoint):
    """`tfbert finetune --task token-classification` on WNUT-17 slices: killed after epoch 1 and resumed,
    dev entity F1 each epoch, then an export and a transformers folder whose pipeline answers as the export."""
    data = tmp_path / "wnut17"
    data.mkdir()
    write_conll(data / "train.conll", wnut("train", 240))
    dev = wnut("dev", 64)
    write_conll(data / "dev.conll", dev)
    out = tmp_path / "saved_models"
    command = [sys.executable, "-m", "tfbert", "finetune", "--task", "token-classification", "--model", str(tiny_checkpoint),
               "--train", str(data / "train.conll"), "--dev", str(data / "dev.conll"), "--out-dir", str(out),
               "--epochs", "2", "--batch-size", "16", "--learning-rate", "5e-3", "--verbose", "2", "--patience", "2"]
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    work = out / ".finetune" / "wnut17"

    first_output = kill_after_first_epoch(command, env, work)
    assert "val_entity_f1" in first_output  # the progress bar shows the dev metric

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed after epoch 1" in resumed.stdout and "Epoch 1/2" not in resumed.stdout
    state = json.loads((work / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    f1 = [h["val_entity_f1"] for h in state["history"]]
    assert state["best_metric"] == max(f1) and state["best_epoch"] == 1 + int(np.argmax(f1))
    export, folder = out / "wnut17" / "1", out / "wnut17" / "transformers"
    assert resumed.stdout.strip().endswith(str(export))
    assert f"transformers: {folder}" in resumed.stdout
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"]["0"] == "O" and set(config["label2id"]) == set(tag_names(wnut("train", 240)))

    # transformers' pipeline (PyTorch) on the saved folder finds the export's entities in the dev texts.
    texts = [" ".join(words) for words in dev.words]
    compared = run_python(PIPELINE_VERSUS_EXPORT, folder, export, json.dumps(texts))
    assert compared.returncode == 0, compared.stderr[-3000:]
    counts = json.loads(compared.stdout.strip().splitlines()[-1])
    print(f"dev entity F1 by epoch {f1}; pipeline vs export: {counts}")
    assert counts["differ"] == 0


def test_tagger_mistakes_are_one_line(tmp_path, tiny_checkpoint):
    train = tmp_path / "train.conll"
    train.write_text("Bonn B-LOC\nis O\n", encoding="utf-8")
    dev = tmp_path / "dev.conll"
    dev.write_text("Bonn I-LOC\n", encoding="utf-8")
    result = tfbert("finetune", "--task", "token-classification", "--model", tiny_checkpoint, "--train", train,
                    "--dev", dev, "--out-dir", tmp_path / "out")
    assert_one_line_error(result, r"dev\.conll:1: 'I-LOC' after the sentence's start: in IOB2")
    result = tfbert("finetune", "--model", tiny_checkpoint, "--train", train, "--dev", train, "--tag-scheme", "iob1")
    assert_one_line_error(result, r"tag_scheme apply to token-classification, not to task='classification'")
