"""Reading labelled text (CSV, TSV, JSONL), label ids, and length-bucketed batches."""

import csv
import json
import math

import numpy as np
import pytest

from conftest import shared_file
from tfbert.jobs import batching
from tfbert.jobs.examples import encode_labels, label_names, read_examples
from tfbert.errors import TfbertError

ROWS = [
    {"question": "Is it free?", "answer": 'Yes, "free" as in speech', "label": "yes"},
    {"question": "Does it run on Linux?", "answer": "It does, on any distribution", "label": "yes"},
    {"question": "Is there a GUI?", "answer": "No, a command line only", "label": "no"},
]


def write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path
    with open(path, "w", newline="", encoding="utf-8") as f:
        if fmt == "tsv":
            f.write("\t".join(rows[0]) + "\n")
            for row in rows:
                f.write("\t".join(str(v) for v in row.values()) + "\n")
        else:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_formats_read_the_same(tmp_path, fmt):
    examples = read_examples(write(tmp_path / f"d.{fmt}", ROWS, fmt), ["question", "answer"], "label")
    assert examples.texts == [[r["question"] for r in ROWS], [r["answer"] for r in ROWS]]
    assert examples.labels == ["yes", "yes", "no"]
    assert examples.lines == [2, 3, 4] if fmt != "jsonl" else [1, 2, 3]
    assert label_names(examples) == ["no", "yes"]
    assert encode_labels(examples, ["no", "yes"]).tolist() == [1, 1, 0]


def test_real_csv_with_quoted_multiline_fields(tmp_path):
    rows = [{"text": "first line\nsecond line, with a comma", "label": "a"}, {"text": "plain", "label": "b"},
            {"text": "after", "label": ""}]
    path = write(tmp_path / "d.csv", rows, "csv")
    with pytest.raises(TfbertError, match=r"d\.csv:5: the label \('label'\) is missing"):
        read_examples(path)  # the third record starts on line 5: the first spans two lines
    examples = read_examples(write(tmp_path / "ok.csv", rows[:2], "csv"))
    assert examples.texts[0][0] == rows[0]["text"] and examples.lines == [2, 4]


@pytest.mark.parametrize("content,fmt,pattern", [
    ("", "csv", r"e\.csv is empty"),
    ("text,label\n", "csv", r"e\.csv has no examples"),
    ("body,label\nx,a\n", "csv", r"e\.csv:1: no column 'text'; the header has \['body', 'label'\]"),
    ("text,label\nx,a\ny\n", "csv", r"e\.csv:3: the label \('label'\) is missing"),
    ("text,label\nx,a,extra\n", "csv", r"e\.csv:2: 3 fields, but the header has 2"),
    ('{"text": "x", "label": "a"}\n{"text": "y"}\n', "jsonl", r"e\.jsonl:2: no field 'label'"),
    ('{"text": "x", "label": null}\n', "jsonl", r"e\.jsonl:1: the label \('label'\) is missing"),
    ('{"text": 3, "label": "a"}\n', "jsonl", r"e\.jsonl:1: 'text' must be text"),
    ("not json\n", "jsonl", r"e\.jsonl:1: not a JSON object"),
    ("text\tlabel\n", "txt", r"unknown format '\.txt'"),
])
def test_malformed_input_names_file_and_line(tmp_path, content, fmt, pattern):
    path = tmp_path / f"e.{fmt}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TfbertError, match=pattern):
        read_examples(path)


def test_unknown_dev_label_names_file_and_line(tmp_path):
    train = read_examples(write(tmp_path / "train.csv", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}], "csv"))
    dev = read_examples(write(tmp_path / "dev.csv", [{"text": "a", "label": "x"}, {"text": "c", "label": "z"}], "csv"))
    with pytest.raises(TfbertError, match=r"dev\.csv:3: label 'z' is not one of the 2 training labels \('x', 'y'\)"):
        encode_labels(dev, label_names(train))


def test_multi_label_and_regression(tmp_path):
    rows = [{"text": "a", "label": "x|y"}, {"text": "b", "label": "y"}]
    examples = read_examples(write(tmp_path / "m.csv", rows, "csv"), task="multi_label")
    assert label_names(examples, "multi_label") == ["x", "y"]
    assert encode_labels(examples, ["x", "y"], "multi_label").tolist() == [[1, 1], [0, 1]]
    scores = read_examples(write(tmp_path / "r.jsonl", [{"text": "a", "label": 0.5}, {"text": "b", "label": "2"}], "jsonl"),
                                task="regression")
    assert encode_labels(scores, None, "regression").tolist() == [0.5, 2.0]
    with pytest.raises(TfbertError, match=r"r2\.jsonl:1: a regression label must be a number; found 'high'"):
        read_examples(write(tmp_path / "r2.jsonl", [{"text": "a", "label": "high"}], "jsonl"), task="regression")


def test_bucketed_batches_cover_every_example_once_with_less_padding(tiny_encoder):
    with open(shared_file("data", "debian-sections", "train.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:300]
    texts = [[r["text"] for r in rows]]
    labels = np.arange(len(rows), dtype=np.int32)  # the row number, to check texts and labels stay paired
    lengths = batching.token_lengths(tiny_encoder.get_layer("tokenizer"), texts)
    assert lengths.max() <= 128 and lengths.min() >= 2
    bucketed = batching.make_dataset(texts, labels, batch_size=16, lengths=lengths, shuffle=True, seed=3, window_batches=4)
    plain = batching.make_dataset(texts, labels, batch_size=16, shuffle=True, seed=3)
    assert bucketed.cardinality().numpy() == math.ceil(300 / 16)

    def padded_tokens(dataset):
        seen, padded = [], 0
        for features, batch_labels in dataset:
            ids = batch_labels.numpy()
            assert [texts[0][i] for i in ids] == [t.decode() for t in features["text"].numpy()]
            seen.extend(ids.tolist())
            padded += len(ids) * int(lengths[ids].max())
        return sorted(seen), padded

    for _ in range(2):  # two epochs: reshuffled, still each example once
        seen, bucketed_padding = padded_tokens(bucketed)
        assert seen == list(range(300))
    _, plain_padding = padded_tokens(plain)
    print(f"tokens incl. padding: bucketed {bucketed_padding}, random {plain_padding}, real {int(lengths.sum())}")
    assert bucketed_padding < 0.8 * plain_padding
