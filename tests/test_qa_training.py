"""Fine-tuning extractive question answering: SQuAD readers and scores, training windows as transformers'
recipe labels them, the Hugging Face layout save, and `tfbert finetune --task question-answering` end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, SHARED, run_python
from test_cli import assert_one_line_error, tfbert
from tfbert.errors import TfbertError
from tfbert.jobs.qa_features import qa_windows
from tfbert.jobs.squad import read_squad
from tfbert.jobs.squad_metrics import normalize_answer, squad_scores


@pytest.fixture(scope="module")
def debian_squad(tmp_path_factory):
    """A SQuAD 2.0 set built from Debian descriptions by tools/make_squad_debian.py (10% impossible)."""
    folder = tmp_path_factory.mktemp("debian-squad")
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_squad_debian.py"), str(folder), "--train", "160",
                             "--dev", "40", "--unanswerable", "0.1", "--corpus",
                             str(SHARED / "data" / "debian-descriptions.txt")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


# ---------------------------------------------------------------------------------------------- scores

def test_squad_scores_follow_the_official_script():
    # Hugging Face's squad metric card: a prediction equal to the reference scores 100 and 100.
    assert squad_scores(["1976"], [["1976"]]) == {"exact_match": 100.0, "f1": 100.0, "count": 1}
    # The official normalisation: lower case, no punctuation, no articles, single spaces.
    assert normalize_answer("The  Cat, the hat!") == "cat hat"
    # Token F1 by the official formula: "cat sat" against "cat sat on mat": precision 1, recall 1/2.
    scores = squad_scores(["the cat sat"], [["a cat sat on the mat", "dog"]])
    assert scores["exact_match"] == 0.0 and abs(scores["f1"] - 100 * 2 / 3) < 1e-9
    # SQuAD 2.0: an impossible question is right only when answered with nothing.
    scores = squad_scores(["", "something", "1976"], [[], [], ["1976"]])
    assert (scores["exact_match"], scores["no_answer_exact_match"], scores["has_answer_f1"]) == (200 / 3, 50.0, 100.0)


# ---------------------------------------------------------------------------------------------- reading

def test_squad_json_and_jsonl_read_alike(tmp_path):
    context = "Alice wrote tfbert in 2026."
    squad = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Who wrote tfbert?", "answers": [{"text": "Alice", "answer_start": 0}]},
        {"id": "q2", "question": "Who wrote Keras?", "answers": [], "is_impossible": True}]}]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad), encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text(
        json.dumps({"id": "q1", "question": "Who wrote tfbert?", "context": context,
                    "answers": {"text": ["Alice"], "answer_start": [0]}}) + "\n"
        + json.dumps({"id": "q2", "question": "Who wrote Keras?", "context": context,
                      "answers": {"text": [], "answer_start": []}}) + "\n", encoding="utf-8")
    for name in ("dev.json", "dev.jsonl"):
        read = read_squad(tmp_path / name)
        assert read.ids == ["q1", "q2"] and read.answers == [[("Alice", 0)], []]
        assert read.contexts == [context, context]


@pytest.mark.parametrize("record, message", [
    ({"question": "Who?", "context": "Alice wrote it.", "answers": {"text": ["Alice"], "answer_start": [3]}},
     r"bad\.jsonl:1: the answer 'Alice' is not at answer_start 3 of its context \(the context holds 'ce wr' there\)"),
    ({"question": "Who?", "answers": {"text": [], "answer_start": []}}, r"bad\.jsonl:1: each line needs \"question\" and \"context\""),
    ({"question": "Who?", "context": "x", "answers": {"text": ["x"], "answer_start": []}}, r"of equal lengths"),
])
def test_bad_answers_are_refused_with_file_and_line(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(TfbertError, match=message):
        read_squad(path)


# ---------------------------------------------------------------------------------------------- windows

def reference_windows(tokenizer, questions, contexts, answers, max_length, stride):
    """transformers' question-answering recipe (run_qa.py's prepare_train_features), live, line for line."""
    encoded = tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
    windows = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        input_ids = encoded["input_ids"][i]
        sequence_ids = encoded.sequence_ids(i)
        answer = answers[encoded["overflow_to_sample_mapping"][i]]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        if answer is None:
            windows.append((input_ids, cls_index, cls_index))
            continue
        start_char, end_char = answer[1], answer[1] + len(answer[0])
        token_start_index = 0
        while sequence_ids[token_start_index] != 1:
            token_start_index += 1
        token_end_index = len(input_ids) - 1
        while sequence_ids[token_end_index] != 1:
            token_end_index -= 1
        if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
            windows.append((input_ids, cls_index, cls_index))
            continue
        while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
            token_start_index += 1
        start = token_start_index - 1
        while offsets[token_end_index][1] >= end_char:
            token_end_index -= 1
        windows.append((input_ids, start, token_end_index + 1))
    return windows


@pytest.mark.parametrize("max_length, stride, max_question_length", [(384, 128, 64), (64, 16, 24)])
def test_windows_and_answer_positions_equal_transformers_recipe(default_checkpoint, debian_squad, max_length, stride,
                                                                max_question_length):
    """The recipe keeps whole questions; the generated questions are shorter than max_question_length, so
    tfbert's question cut (the pipeline's max_question_len) leaves them whole too."""
    from transformers import BertTokenizerFast

    data = read_squad(debian_squad / "train.json")
    answers = [a[0] if a else None for a in data.answers]
    reference = reference_windows(BertTokenizerFast(str(default_checkpoint.vocab_file), do_lower_case=True),
                                  data.questions, data.contexts, answers, max_length, stride)
    windows = qa_windows(default_checkpoint.build_tokenizer(max_length), data.questions, data.contexts, answers,
                         doc_stride=stride, max_question_length=max_question_length)
    ours = [(windows.tokens["input_ids"][i, :windows.lengths[i]].tolist(), int(windows.start_positions[i]),
             int(windows.end_positions[i])) for i in range(len(windows))]
    assert len(ours) == len(reference)
    # The recipe's start loop does not stop at the context's end: when an answer starts in a window's
    # last context token, it runs on over [SEP] (offsets (0, 0)) and labels [SEP]. tfbert labels the
    # token that holds the answer's first character. Every other window must be equal.
    quirks = [(a, b) for a, b in zip(ours, reference) if a != b and b[1] == len(b[0]) - 1 and a[1] == b[1] - 1
              and a[0] == b[0] and a[2] == b[2]]
    assert sum(a != b for a, b in zip(ours, reference)) == len(quirks)
    print(f"{len(ours)} windows equal; {len(quirks)} where the recipe labels [SEP] as the start")
    answered = windows.start_positions > 0
    assert answered.sum() > len(data) // 2  # most windows hold their answer
    if max_length == 64:
        assert len(windows) > 2 * len(data)  # long contexts really were cut into windows


# ---------------------------------------------------------------------------------------------- model

SAVED_ANSWERER = """
import sys, json, torch
from transformers import BertForQuestionAnswering, BertTokenizer
folder, pairs = sys.argv[1], json.loads(sys.argv[2])
model = BertForQuestionAnswering.from_pretrained(folder).eval()
tokenizer = BertTokenizer.from_pretrained(folder)
with torch.no_grad():
    out = model(**tokenizer([q for q, _ in pairs], [c for _, c in pairs], padding=True, return_tensors="pt"))
print(json.dumps({"start": out.start_logits.tolist(), "end": out.end_logits.tolist()}))
"""


def test_question_answerer_saves_for_pytorch(tmp_path, tiny_checkpoint):
    from tfbert.models.question_answerer import BertQuestionAnswerer, build_question_answerer
    from tfbert.models.transformers_layout import save_transformers

    answerer = build_question_answerer(str(tiny_checkpoint), max_length=64)
    rebuilt = BertQuestionAnswerer.from_config(answerer.get_config())
    assert rebuilt.get_config()["span_predictor"]["config"] == answerer.get_config()["span_predictor"]["config"]
    pairs = [["Who wrote it?", "Alice wrote the program in 2026."], ["When?", "In 2026."]]
    folder = save_transformers(answerer, tmp_path / "answerer")
    result = run_python(SAVED_ANSWERER, folder, json.dumps(pairs))
    assert result.returncode == 0, result.stderr[-3000:]
    reference = json.loads(result.stdout)
    tokens = answerer.tokenizer((tf.constant([q for q, _ in pairs]), tf.constant([c for _, c in pairs])))
    ours = answerer(tokens)
    np.testing.assert_allclose(ours["start_logits"].numpy(), np.asarray(reference["start"]), atol=1e-5)
    np.testing.assert_allclose(ours["end_logits"].numpy(), np.asarray(reference["end"]), atol=1e-5)
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]


# ---------------------------------------------------------------------------------------------- the command

EXPORT_VERSUS_PIPELINE = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401
from transformers import pipeline
folder, export, questions, contexts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
served = tf.saved_model.load(export).signatures["serving_default"](question=tf.constant(questions), context=tf.constant(contexts))
ours = [a.decode() for a in served["answer"].numpy()]
qa = pipeline("question-answering", model=folder, framework="pt")
reference = [qa(question=q, context=c, max_seq_len=128, doc_stride=32, handle_impossible_answer=True)["answer"]
             for q, c in zip(questions, contexts)]
print(json.dumps({"ours": ours, "differ": sum(a != b for a, b in zip(ours, reference))}))
"""


@pytest.mark.slow  # minutes of subprocess training; runs in the suite and in CI
def test_qa_finetune_exports_and_saves_for_transformers(tmp_path, tiny_checkpoint, debian_squad):
    """`tfbert finetune --task question-answering` on a Debian SQuAD 2.0 slice: dev EM and F1 each epoch,
    the best epoch's F1 equal to the export's answers scored again, and a transformers folder whose
    pipeline answers as the export does."""
    out = tmp_path / "saved_models"
    command = [sys.executable, "-m", "tfbert", "finetune", "--task", "question-answering", "--model", str(tiny_checkpoint),
               "--train", str(debian_squad / "train.json"), "--dev", str(debian_squad / "dev.json"),
               "--out-dir", str(out), "--name", "debian-qa", "--epochs", "2", "--batch-size", "16",
               "--max-length", "128", "--doc-stride", "32", "--learning-rate", "5e-3", "--verbose", "2"]
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_f1" in result.stdout and "val_exact_match" in result.stdout
    state = json.loads((out / ".finetune" / "debian-qa" / "state.json").read_text())
    f1 = [h["val_f1"] for h in state["history"]]
    assert state["best_metric"] == max(f1)
    export, folder = out / "debian-qa" / "1", out / "debian-qa" / "transformers"
    assert result.stdout.strip().endswith(str(export)) and f"transformers: {folder}" in result.stdout

    dev = read_squad(debian_squad / "dev.json")
    compared = run_python(EXPORT_VERSUS_PIPELINE, folder, export, json.dumps(dev.questions), json.dumps(dev.contexts))
    assert compared.returncode == 0, compared.stderr[-3000:]
    answers = json.loads(compared.stdout.strip().splitlines()[-1])
    print(f"dev F1 by epoch {f1}; export vs pipeline differ on {answers['differ']} of {len(dev)}")
    assert answers["differ"] == 0
    # The dev metric is the export's decoding: the export's answers score what fit logged for that epoch.
    assert abs(squad_scores(answers["ours"], dev.answer_texts)["f1"] - state["best_metric"]) < 1e-6


def test_qa_mistakes_are_one_line(tmp_path, tiny_checkpoint):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"question": "Who?", "context": "Alice.", "answers": {"text": ["Bob"], "answer_start": [0]}})
                   + "\n", encoding="utf-8")
    result = tfbert("finetune", "--task", "question-answering", "--model", tiny_checkpoint, "--train", bad, "--dev", bad,
                    "--out-dir", tmp_path / "out")
    assert_one_line_error(result, r"train\.jsonl:1: the answer 'Bob' is not at answer_start 0")
    result = tfbert("finetune", "--task", "token-classification", "--model", tiny_checkpoint, "--train", bad,
                    "--dev", bad, "--doc-stride", "64")
    assert_one_line_error(result, r"doc_stride apply to question-answering, not to task='token-classification'")
