"""Task exports (question answering, entity tagging, fill-mask, text classification) against transformers'
pipelines on PyTorch with the same weights, computed live.

The checkpoints are tiny random BERTs (2 layers, hidden 32, the default vocabulary) made here with
transformers' PyTorch classes and `save_pretrained`. Their weights are drawn with numpy's seeded
generator, so they are the same on every machine. Random heads give nearly flat distributions, where
float noise could reorder candidates; each head is drawn wider (standard deviation 1, the MLM bias 2 (drawn for both of its tied names; the last one loaded is the one saved)),
so that candidates differ by far more than float32 noise. Each test says what it compares.
"""

import json
import random
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import debian_texts, run_python
from test_cli import assert_one_line_error, tfbert
from test_serving import c_runner, run_c_api  # noqa: F401 - c_runner is a fixture
from tfbert.errors import TfbertError
from tfbert.serving.export import export_saved_model
from tfbert.serving.op_check import check_serving
from tfbert.serving.task_export import build_task_module

TASK_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
TOPICS = ["games", "database", "sound"]
MLM_HEAD = {"cls.predictions.bias": 2.0, "cls.predictions.decoder.bias": 2.0}  # tied: drawn for both names


def _make_checkpoint(folder, model_class, vocab_file, seed, head=None, **config):
    """A `model_class` checkpoint saved by transformers, its weights drawn from numpy's RandomState(seed):
    N(0, 0.02) as BERT initialises them (LayerNorm 1 and 0, biases 0), the `head` parameters N(0, std)."""
    import torch
    from transformers import BertConfig, BertTokenizer

    model = model_class(BertConfig(vocab_size=30522, **TASK_BERT, **config)).eval()
    rng = np.random.RandomState(seed)
    state = {}
    for name, value in model.state_dict().items():
        if name in (head or {}):
            array = rng.normal(0.0, head[name], value.shape)
        elif "LayerNorm.weight" in name:
            array = np.ones(value.shape)
        elif name.endswith("bias") or "position_ids" in name or "token_type_ids" in name:
            array = np.zeros(value.shape) if value.dtype.is_floating_point else value.numpy()
        else:
            array = rng.normal(0.0, 0.02, value.shape)
        state[name] = torch.as_tensor(np.asarray(array), dtype=value.dtype)
    model.load_state_dict(state)
    model.save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab_file).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, vocab_file):
    from transformers import (BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
                              BertForTokenClassification, BertModel)

    root = tmp_path_factory.mktemp("task-checkpoints")
    labels = dict(id2label=dict(enumerate(NER_LABELS)), label2id={label: i for i, label in enumerate(NER_LABELS)})
    topics = dict(id2label=dict(enumerate(TOPICS)), label2id={label: i for i, label in enumerate(TOPICS)})
    return {
        "question-answering": _make_checkpoint(root / "qa", BertForQuestionAnswering, vocab_file, 1,
                                               {"qa_outputs.weight": 1.0}),
        "token-classification": _make_checkpoint(root / "ner", BertForTokenClassification, vocab_file, 2,
                                                 {"classifier.weight": 1.0}, **labels),
        "fill-mask": _make_checkpoint(root / "mlm", BertForMaskedLM, vocab_file, 3, MLM_HEAD),
        "text-classification": _make_checkpoint(root / "topics", BertForSequenceClassification, vocab_file, 4,
                                                {"classifier.weight": 1.0}, **topics),
        "encoder": _make_checkpoint(root / "base", BertModel, vocab_file, 5),
    }


def pipeline_for(task, folder, **kwargs):
    from transformers import (AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                              AutoModelForTokenClassification, BertTokenizerFast, pipeline)

    model_class = {"question-answering": AutoModelForQuestionAnswering, "fill-mask": AutoModelForMaskedLM,
                   "token-classification": AutoModelForTokenClassification,
                   "text-classification": AutoModelForSequenceClassification}[task]
    return pipeline(task, model=model_class.from_pretrained(folder), tokenizer=BertTokenizerFast.from_pretrained(folder),
                    **kwargs)


def questions_and_contexts(count, seed=0):
    """Real contexts: Debian descriptions, one in four several descriptions long (several windows)."""
    texts = debian_texts("dev")
    rng = random.Random(seed)
    questions = ["what does it do?", "Which library does this package provide?", "who maintains it", "why?",
                 "What is the name of the tool that converts files?"]
    contexts = [" ".join(rng.sample(texts, 6)) if i % 4 == 0 else rng.choice(texts) for i in range(count)]
    return [rng.choice(questions) for _ in contexts], contexts


def compare_answers(outputs, expected, top_k):
    """(mismatches, max score difference) between the export's outputs and the pipeline's answers."""
    mismatches, worst = [], 0.0
    for i, answers in enumerate(expected):
        answers = answers if isinstance(answers, list) else [answers]
        for j, answer in enumerate(answers):
            ours = {k: (v[i] if top_k == 1 else v[i][j]) for k, v in outputs.items()}
            ours["answer"] = ours["answer"].decode() if isinstance(ours["answer"], bytes) else ours["answer"]
            if (ours["answer"], int(ours["start"]), int(ours["end"])) != (answer["answer"], answer["start"], answer["end"]):
                mismatches.append((i, j, ours, answer))
            else:
                worst = max(worst, abs(float(ours["score"]) - answer["score"]))
    return mismatches, worst


# Loading ----------------------------------------------------------------------------------------------------

def test_task_comes_from_architectures_and_a_missing_head_is_an_error(checkpoints):
    from tfbert.checkpoints.checkpoint import load_checkpoint
    from tfbert.models.tasks import checkpoint_task

    assert {task: checkpoint_task(load_checkpoint(str(folder))) for task, folder in checkpoints.items()} == {
        task: task for task in checkpoints}
    with pytest.raises(TfbertError, match=r"has no question-answering head .*qa_outputs.*--task encoder"):
        build_task_module(str(checkpoints["encoder"]), "question-answering")
    with pytest.raises(TfbertError, match="not a task checkpoint"):
        build_task_module(str(checkpoints["encoder"]))
    with pytest.raises(TfbertError, match="aggregation_strategy must be one of"):
        build_task_module(str(checkpoints["token-classification"]), aggregation_strategy="longest")
    with pytest.raises(TfbertError, match="must be more than the stride"):
        build_task_module(str(checkpoints["question-answering"]), max_length=64, doc_stride=60)
    with pytest.raises(TfbertError, match=r"ignore_labels \['X'\] are not labels or tags"):
        build_task_module(str(checkpoints["token-classification"]), ignore_labels=["X"])


def test_token_classifier_without_an_o_label_exports(tmp_path, vocab_file):
    """A tagger whose config keeps transformers' default labels (LABEL_0, LABEL_1): nothing is ignored."""
    from transformers import BertForTokenClassification

    folder = _make_checkpoint(tmp_path / "tagger", BertForTokenClassification, vocab_file, 7, {"classifier.weight": 1.0})
    module = build_task_module(str(folder))
    assert module.labels == ["LABEL_0", "LABEL_1"]
    outputs = module.signatures()["serving_default"](text=tf.constant(["two words"]))
    assert outputs["num_entities"].numpy().tolist() == [2]  # every token, none ignored


def test_pretraining_checkpoint_serves_its_mlm_head(tmp_path, vocab_file):
    from transformers import BertForPreTraining

    folder = _make_checkpoint(tmp_path / "pretraining", BertForPreTraining, vocab_file, 3, MLM_HEAD)
    module = build_task_module(str(folder))
    text = ["the package provides a [MASK] library for sound output ."]
    outputs = module.signatures()["serving_default"](text=tf.constant(text))
    expected = pipeline_for("fill-mask", folder)(text[0])
    assert outputs["token"].numpy()[0, 0].tolist() == [p["token"] for p in expected]
    assert module.task == "fill-mask"


# Question answering -----------------------------------------------------------------------------------------

def test_question_answering_defaults_equal_the_pipeline(checkpoints):
    """Default options (384-token windows, stride 128, top 1, max_answer_len 15), 24 questions."""
    module = build_task_module(str(checkpoints["question-answering"]))
    questions, contexts = questions_and_contexts(24)
    outputs = {k: v.numpy() for k, v in module.signatures()["serving_default"](
        question=tf.constant(questions), context=tf.constant(contexts)).items()}
    pipe = pipeline_for("question-answering", checkpoints["question-answering"])
    expected = [pipe(question=q, context=c) for q, c in zip(questions, contexts)]
    mismatches, worst = compare_answers(outputs, expected, 1)
    print(f"question answering, defaults: {len(expected)} answers compared, {len(mismatches)} differ, "
          f"max score difference {worst:.2g}")
    assert not mismatches and worst < 1e-5


def test_question_answering_windows_top_k_and_no_answer_equal_the_pipeline(checkpoints):
    """Short windows (64 tokens, stride 16), so that most contexts take several; top 3 with the empty answer."""
    options = dict(max_length=64, doc_stride=16, top_k=3, handle_impossible_answer=True, max_answer_len=8,
                   max_question_length=16, max_windows=64)
    module = build_task_module(str(checkpoints["question-answering"]), **options)
    questions, contexts = questions_and_contexts(16, seed=1)
    outputs = {k: v.numpy() for k, v in module.signatures()["serving_default"](
        question=tf.constant(questions), context=tf.constant(contexts)).items()}
    pipe = pipeline_for("question-answering", checkpoints["question-answering"])
    expected = [pipe(question=q, context=c, max_seq_len=64, doc_stride=16, top_k=3, handle_impossible_answer=True,
                     max_answer_len=8) for q, c in zip(questions, contexts)]
    windows = module.tokenizer.tokenize_windows(tf.constant(questions), tf.constant(contexts), 16, 16, 64)["pair"]
    assert np.bincount(windows.numpy()).max() >= 10  # the long contexts took many windows
    mismatches, worst = compare_answers(outputs, expected, 3)
    print(f"question answering, windows: {3 * len(expected)} answers compared, {len(mismatches)} differ, "
          f"max score difference {worst:.2g}")
    assert not mismatches and worst < 1e-5
    assert outputs["answer"].shape == (16, 3)


def test_question_answering_bad_input_is_answered_or_refused_clearly(checkpoints):
    module = build_task_module(str(checkpoints["question-answering"]), max_length=64, doc_stride=16,
                               max_question_length=16, max_windows=4)
    answer = module.signatures()["serving_default"]
    huge = " ".join(debian_texts("dev", 400))  # about 40,000 tokens: 4 windows are searched, the rest is not
    outputs = answer(question=tf.constant(["", "what?", "what?", "what?"]),
                     context=tf.constant(["Alice wrote it.", "", huge, b"caf\xe9 \xff ol\xc3\xa9"]))
    answers = [a.decode() for a in outputs["answer"].numpy()]
    assert answers[0] and answers[1] == "" and outputs["score"].numpy()[1] == 0.0
    assert 0 < outputs["end"].numpy()[2] < len(" ".join(debian_texts("dev", 20)))  # within the first windows
    context = b"caf\xe9 \xff ol\xc3\xa9".decode("utf-8", errors="replace")  # offsets count the repaired text
    assert answers[3] == context[outputs["start"].numpy()[3]:outputs["end"].numpy()[3]]
    empty = answer(question=tf.constant([], tf.string), context=tf.constant([], tf.string))
    assert all(v.shape[0] == 0 for v in empty.values())
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        answer(question=tf.constant(["a", "b"]), context=tf.constant(["c"]))


# Token classification ---------------------------------------------------------------------------------------

NER_TEXTS = debian_texts("dev", 12) + ["Café naïve Ünïcödé 中文字符 😀 ☃\u0378 x", "", "don't stop-believing, O'Neil!",
                                       "Linus Torvalds wrote Linux in Helsinki."]


def ner_outputs(module, texts):
    return {k: v.numpy() for k, v in module.signatures()["serving_default"](text=tf.constant(texts)).items()}


def compare_entities(outputs, expected, strategy):
    mismatches, worst, count = [], 0.0, 0
    key = "entity" if strategy == "none" else "entity_group"
    for i, entities in enumerate(expected):
        if outputs["num_entities"][i] != len(entities):
            mismatches.append((i, "count", outputs["num_entities"][i], len(entities)))
            continue
        for j, entity in enumerate(entities):
            count += 1
            ours = (outputs["entity"][i][j].decode(), outputs["word"][i][j].decode(), outputs["start"][i][j],
                    outputs["end"][i][j])
            if ours != (entity[key], entity["word"], entity["start"], entity["end"]) or (
                    strategy == "none" and outputs["index"][i][j] != entity["index"]):
                mismatches.append((i, j, ours, entity))
            else:
                worst = max(worst, abs(float(outputs["score"][i][j]) - float(entity["score"])))
    return mismatches, worst, count


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_equals_the_pipeline(checkpoints, strategy):
    module = build_task_module(str(checkpoints["token-classification"]), aggregation_strategy=strategy)
    outputs = ner_outputs(module, NER_TEXTS)
    pipe = pipeline_for("token-classification", checkpoints["token-classification"], aggregation_strategy=strategy)
    mismatches, worst, count = compare_entities(outputs, [pipe(text) for text in NER_TEXTS], strategy)
    print(f"token classification, {strategy}: {count} entities compared, {len(mismatches)} differ, "
          f"max score difference {worst:.2g}")
    assert count > 50 and not mismatches and worst < 1e-5
    assert {k: v.dtype.name for k, v in outputs.items() if k != "entity" and k != "word"} == {  # as the docs say
        "score": "float32", "start": "int32", "end": "int32", "num_entities": "int32",
        **({"index": "int32"} if strategy == "none" else {})}
    empty = module.signatures()["serving_default"](text=tf.constant([], tf.string))
    assert all(v.shape[0] == 0 for v in empty.values())


# Fill-mask --------------------------------------------------------------------------------------------------

def masked_texts(count, seed=0):
    """Debian descriptions with one to three words replaced by [MASK]."""
    rng = random.Random(seed)
    texts = []
    for text in debian_texts("dev", count):
        words = text[:200].split(" ")
        for _ in range(rng.choice([1, 1, 2, 3])):
            words[rng.randrange(len(words))] = "[MASK]"
        texts.append(" ".join(words))
    return texts + ["it's a [MASK], isn't it?"]


def test_fill_mask_equals_the_pipeline(checkpoints):
    module = build_task_module(str(checkpoints["fill-mask"]))
    texts = masked_texts(16)
    outputs = {k: v.numpy() for k, v in module.signatures()["serving_default"](text=tf.constant(texts)).items()}
    pipe = pipeline_for("fill-mask", checkpoints["fill-mask"])
    mismatches, worst, count = [], 0.0, 0
    for i, text in enumerate(texts):
        expected = pipe(text)
        expected = [expected] if isinstance(expected[0], dict) else expected
        assert outputs["num_masks"][i] == len(expected)
        for m, predictions in enumerate(expected):
            for j, p in enumerate(predictions):
                count += 1
                ours = (int(outputs["token"][i, m, j]), outputs["token_str"][i, m, j].decode(),
                        outputs["sequence"][i, m, j].decode())
                if ours != (p["token"], p["token_str"], p["sequence"]):
                    mismatches.append((i, m, j, ours, p))
                worst = max(worst, abs(float(outputs["score"][i, m, j]) - p["score"]))
    print(f"fill-mask: {count} predictions compared, {len(mismatches)} differ, max score difference {worst:.2g}")
    assert count > 100 and not mismatches and worst < 1e-5
    assert outputs["token"].shape == (len(texts), 3, 5)


def test_fill_mask_without_a_mask_returns_nothing(checkpoints):
    module = build_task_module(str(checkpoints["fill-mask"]), top_k=2)
    outputs = module.signatures()["serving_default"](text=tf.constant(["no mask here", ""]))
    assert outputs["num_masks"].numpy().tolist() == [0, 0] and outputs["token"].shape == (2, 0, 2)
    empty = module.signatures()["serving_default"](text=tf.constant([], tf.string))
    assert all(v.shape[0] == 0 for v in empty.values())
    many = " ".join(["[MASK]"] * 40)
    assert module.signatures()["serving_default"](text=tf.constant([many]))["num_masks"].numpy().tolist() == [40]


# Text classification ----------------------------------------------------------------------------------------

def test_text_classification_equals_the_pipeline(checkpoints):
    module = build_task_module(str(checkpoints["text-classification"]))
    texts = debian_texts("dev", 20) + [""]
    outputs = {k: v.numpy() for k, v in module.signatures()["serving_default"](text=tf.constant(texts)).items()}
    expected = pipeline_for("text-classification", checkpoints["text-classification"])(texts)
    assert [label.decode() for label in outputs["label"]] == [e["label"] for e in expected]
    np.testing.assert_allclose(outputs["score"], [e["score"] for e in expected], atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, atol=1e-5)  # softmax: 3 labels
    assert module.labels == TOPICS


@pytest.mark.parametrize("problem_type,num_labels,function", [("multi_label_classification", 3, "sigmoid"),
                                                              (None, 1, "sigmoid"), ("regression", 1, "none")])
def test_text_classification_function_follows_the_config(tmp_path, vocab_file, problem_type, num_labels, function):
    from transformers import BertForSequenceClassification

    folder = _make_checkpoint(tmp_path / "c", BertForSequenceClassification, vocab_file, 6, {"classifier.weight": 1.0},
                              num_labels=num_labels, problem_type=problem_type)
    module = build_task_module(str(folder))
    texts = debian_texts("dev", 5)
    outputs = module.signatures()["serving_default"](text=tf.constant(texts))
    expected = pipeline_for("text-classification", folder)(texts)
    assert module.options["function"] == function
    np.testing.assert_allclose(outputs["score"].numpy(), [e["score"] for e in expected], atol=1e-5)


# Exports, served as TF Serving serves them --------------------------------------------------------------------

FRESH_PROCESS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tensorflow-text ops

calls = json.loads(sys.argv[1])
report = {}
for task, (path, inputs) in calls.items():
    outputs = tf.saved_model.load(path).signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    report[task] = {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().reshape(-1).tolist()]
                    for k, v in outputs.items()}
report["modules"] = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tfbert", "transformers", "tf_keras", "torch"))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory, checkpoints):
    """One export a task: question answering through the command line (with a task flag), the others
    with the Python API."""
    root = tmp_path_factory.mktemp("task-exports")
    result = tfbert("export", "--model", checkpoints["question-answering"], "--out-dir", root, "--name", "qa",
                    "--top-k", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    paths = {"question-answering": result.stdout.strip()}
    options = {"token-classification": dict(aggregation_strategy="simple")}
    for task in ("token-classification", "fill-mask", "text-classification"):
        module = build_task_module(str(checkpoints[task]), **options.get(task, {}))
        paths[task] = str(export_saved_model(module, root / task))
    return paths


def task_inputs():
    questions, contexts = questions_and_contexts(6, seed=2)
    return {"question-answering": {"question": questions, "context": contexts},
            "token-classification": {"text": NER_TEXTS[-4:] + debian_texts("dev", 3)},
            "fill-mask": {"text": masked_texts(5, seed=3)},
            "text-classification": {"text": debian_texts("dev", 6)}}


def test_task_exports_serve_in_a_fresh_process_like_the_pipelines(exports, checkpoints):
    inputs = task_inputs()
    result = run_python(FRESH_PROCESS, json.dumps({task: (exports[task], inputs[task]) for task in exports}))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] == []  # only tensorflow and tensorflow_text
    qa = inputs["question-answering"]
    expected = [pipeline_for("question-answering", checkpoints["question-answering"])(question=q, context=c, top_k=2)
                for q, c in zip(qa["question"], qa["context"])]
    served = {k: np.array(v, dtype=object).reshape(len(expected), 2) for k, v in report["question-answering"].items()}
    assert compare_answers(served, expected, 2)[0] == []
    ner = report["token-classification"]
    expected = [pipeline_for("token-classification", checkpoints["token-classification"], aggregation_strategy="simple")(t)
                for t in inputs["token-classification"]["text"]]
    flat = [(e["entity_group"], e["word"], e["start"], e["end"]) for entities in expected for e in entities]
    width = max(ner["num_entities"])
    served = [(ner["entity"][i * width + j], ner["word"][i * width + j], ner["start"][i * width + j], ner["end"][i * width + j])
              for i, n in enumerate(ner["num_entities"]) for j in range(n)]
    assert served == flat and len(flat) > 10
    expected = [pipeline_for("fill-mask", checkpoints["fill-mask"])(t) for t in inputs["fill-mask"]["text"]]
    expected = [e if isinstance(e[0], list) else [e] for e in expected]
    assert sorted(p["sequence"] for e in expected for m in e for p in m) == sorted(
        s for s in report["fill-mask"]["sequence"] if s)
    expected = pipeline_for("text-classification", checkpoints["text-classification"])(inputs["text-classification"]["text"])
    assert report["text-classification"]["label"] == [e["label"] for e in expected]


def test_text_classification_exports_in_bfloat16(tmp_path, checkpoints, exports):
    """A bfloat16 task export stores the model's weights once, though two signatures (single texts and
    pairs) compute with them, and scores as its float32 export does within bfloat16 rounding."""
    from test_inference import bfloat16_weight_constants

    module = build_task_module(str(checkpoints["text-classification"]))
    bfloat16 = export_saved_model(module, tmp_path / "bf16", precision="bfloat16", warmup=False)
    assert bfloat16_weight_constants(bfloat16) == 8 * TASK_BERT["num_hidden_layers"]
    texts = tf.constant(debian_texts("dev", 8))
    half, full = (tf.saved_model.load(str(path)).signatures for path in (bfloat16, exports["text-classification"]))
    for name, inputs in (("serving_default", {"text": texts}), ("classify_pair", {"text": texts, "text_pair": texts[::-1]})):
        difference = np.abs(half[name](**inputs)["probabilities"].numpy() - full[name](**inputs)["probabilities"].numpy())
        assert 0 < difference.max() <= 0.02, name  # bfloat16 rounding: computed in bfloat16, and close


def test_task_export_under_a_global_mixed_policy_computes_in_float32(tmp_path, checkpoints, exports):
    """A task module built while Keras' global policy is mixed_bfloat16 exports in float32 all the same."""
    from tfbert.models.precision import training_precision

    with training_precision("bfloat16"):
        module = build_task_module(str(checkpoints["text-classification"]))
        exported = export_saved_model(module, tmp_path / "under-policy", warmup=False)
    texts = tf.constant(debian_texts("dev", 8))
    mixed, full = (tf.saved_model.load(str(path)).signatures["serving_default"]
                   for path in (exported, exports["text-classification"]))
    np.testing.assert_allclose(mixed(text=texts)["probabilities"].numpy(), full(text=texts)["probabilities"].numpy(),
                               atol=1e-6)


def test_task_exports_through_the_c_api_and_check_serving(c_runner, exports, tmp_path):  # noqa: F811
    import tensorflow_text  # noqa: F401

    inputs = task_inputs()
    for task, path in exports.items():
        request = {k: [t.encode() for t in v] for k, v in inputs[task].items()}
        # The same inputs as tf.Examples (serve_examples; the Classify API's classify for labels).
        examples = [tf.train.Example(features=tf.train.Features(feature={
            name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[values[i]])) for name, values in request.items()}
        )).SerializeToString() for i in range(len(next(iter(request.values()))))]
        calls = [("serving_default", request), ("serve_examples", {"examples": examples})]
        if task == "text-classification":
            calls.append(("classify", {"inputs": examples}))
        folder = tmp_path / task
        folder.mkdir()
        from_c, from_examples, *classified = run_c_api(c_runner, path, folder, calls)
        from_python = tf.saved_model.load(path).signatures["serving_default"](
            **{k: tf.constant(v) for k, v in request.items()})
        assert sorted(from_c) == sorted(from_python) == sorted(from_examples), task
        for name, value in from_python.items():
            assert from_c[name].shape == tuple(value.shape) and (from_c[name] == value.numpy()).all(), (task, name)
            assert (from_examples[name] == value.numpy()).all(), (task, name)
        if classified:
            assert (classified[0]["scores"] == from_python["probabilities"].numpy()).all()
            assert [row[i].decode() for row, i in zip(classified[0]["classes"], from_python["label_id"].numpy())] == \
                [label.decode() for label in from_python["label"].numpy()]
        report = check_serving(path)
        assert report["problems"] == [], (task, report["problems"])


def test_predict_prints_each_tasks_outputs(exports):
    result = tfbert("predict", "--saved-model", exports["question-answering"], "--json", "who wrote it?", "what?",
                    "--pair", "Alice wrote the program in 2019.", "--pair", "")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [sorted(row) for row in rows] == [["answer", "end", "score", "start"]] * 2
    assert "Alice wrote the program in 2019."[rows[0]["start"][0]:rows[0]["end"][0]] == rows[0]["answer"][0]
    assert rows[1]["answer"] == ["", ""]
    result = tfbert("predict", "--saved-model", exports["token-classification"], "--json", "Linus wrote Linux.", "")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows[0]["entity"]) == rows[0]["num_entities"] and rows[1]["entity"] == [] and rows[1]["num_entities"] == 0
    result = tfbert("predict", "--saved-model", exports["fill-mask"], "the [MASK] is here.")
    assert result.returncode == 0 and "token_str:" in result.stdout and "sequence:" in result.stdout
    assert_one_line_error(tfbert("predict", "--saved-model", exports["question-answering"], "who?"),
                          "takes question and context")


def rest_predictions(loaded, request):
    """TF Serving's REST answer (row format) to a request of `instances`, from the loaded export."""
    function = loaded.signatures[request.get("signature_name", "serving_default")]
    names = sorted(function.structured_input_signature[1])
    instances = request["instances"]
    columns = {n: [row if len(names) == 1 else row[n] for row in instances] for n in names}
    outputs = {k: v.numpy().tolist() for k, v in function(**{n: tf.constant(v) for n, v in columns.items()}).items()}
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(len(instances))]}


def assert_json_close(actual, expected, where=""):
    """Equal JSON, floats within the docs' 4 decimals."""
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), where
        for key in expected:
            assert_json_close(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_json_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert abs(actual - expected) <= 1e-4, (where, actual, expected)
    else:
        actual = actual.decode() if isinstance(actual, bytes) else actual
        assert actual == expected, (where, actual, expected)


@pytest.mark.parametrize("task", ["question-answering", "token-classification", "fill-mask", "text-classification"])
def test_docs_rest_examples_are_true(exports, task):
    """Each task page's REST request, answered by that task's export (the page says which options)."""
    import tensorflow_text  # noqa: F401

    from conftest import REPO

    page = (REPO / "docs" / f"{task}.md").read_text(encoding="utf-8")
    examples = re.findall(r"-d '(\{[^\n]*\})'\n```\n```json\n(.*?)\n```", page, flags=re.S)
    assert len(examples) == 1, task
    request, response = (json.loads(part) for part in examples[0])
    assert_json_close(rest_predictions(tf.saved_model.load(exports[task]), request), response, task)
