"""Labelled text for fine-tuning: CSV, TSV and JSONL readers, label ids, and length-bucketed tf.data batches.

Mistakes in the data are reported with the file and line: a missing column, an empty file, a row
without a label, a dev label the training data never had.
"""

import csv
import dataclasses
import json
import logging
import math
import pathlib

import numpy as np
import tensorflow as tf

from tfbert.errors import TfbertError

logger = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
MULTI_LABEL_SEPARATOR = "|"


@dataclasses.dataclass
class Examples:
    """Texts and raw labels read from a file.

    Attributes:
        texts: list of lists of str, one list per text column (1 column, or 2 for pairs).
        labels: list of raw label values (str; float for regression; list of str for multi_label).
        lines: list of int, the source line of each example.
        source: str. The file read.
    """

    texts: list
    labels: list
    lines: list
    source: str

    def __len__(self):
        return len(self.labels)


def _rows(path, fmt):
    """(line number, dict) per record; the line is where the record starts."""
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TfbertError(f"{path}:{line_number}: not a JSON object ({e.msg}).") from e
                if not isinstance(row, dict):
                    raise TfbertError(f"{path}:{line_number}: each line must be a JSON object; found {type(row).__name__}.")
                yield line_number, row
        return
    with open(path, encoding="utf-8", newline="") as f:
        # TSV files (GLUE and friends) do not quote fields; CSV files do.
        reader = csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ",",
                                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
        if reader.fieldnames is None:
            return
        yield 1, {name: name for name in reader.fieldnames}  # the header, for column checks
        start = reader.line_num + 1
        for row in reader:
            if None in row:  # more fields than the header
                raise TfbertError(f"{path}:{start}: {len(reader.fieldnames) + len(row[None])} fields, but the header has "
                                  f"{len(reader.fieldnames)}.")
            yield start, row
            start = reader.line_num + 1


def read_examples(path, text_columns=("text",), label_column="label", task="classification"):
    """Reads labelled texts from a .csv, .tsv or .jsonl file.

    Args:
        path: str. The file; its suffix picks the format.
        text_columns: sequence of str. One text column, or two for sentence pairs. Defaults to ("text",).
        label_column: str. Defaults to "label".
        task: str. "classification" (labels are names), "multi_label" (a JSON list, or names separated
            by "|" in CSV/TSV) or "regression" (numbers).

    Returns:
        Examples.

    Raises:
        TfbertError: unreadable or empty file, a missing column, a missing or malformed label.
    """
    path = pathlib.Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TfbertError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv or .jsonl.")
    text_columns = [text_columns] if isinstance(text_columns, str) else list(text_columns)
    if not 1 <= len(text_columns) <= 2:
        raise TfbertError(f"text_columns must name one column, or two for sentence pairs; received {text_columns}.")
    if not path.is_file():
        raise TfbertError(f"{path} does not exist.")
    texts, labels, lines = [[] for _ in text_columns], [], []
    rows = _rows(path, fmt)
    try:
        if fmt != "jsonl":
            header_line, header = next(rows, (None, None))
            if header is None:
                raise TfbertError(f"{path} is empty: expected a header line, then one example a line.")
            missing = [c for c in [*text_columns, label_column] if c not in header]
            if missing:
                raise TfbertError(f"{path}:{header_line}: no column {missing[0]!r}; the header has {list(header)}. "
                                  "Pick columns with --text-column / --label-column.")
        for line, row in rows:
            for column in [*text_columns, label_column]:
                if column not in row:
                    raise TfbertError(f"{path}:{line}: no field {column!r}; this record has {sorted(row)}.")
            for values, column in zip(texts, text_columns):
                value = row[column]
                if not isinstance(value, str):
                    raise TfbertError(f"{path}:{line}: {column!r} must be text; found {value!r}.")
                values.append(value)
            labels.append(_parse_label(row[label_column], task, f"{path}:{line}", label_column))
            lines.append(line)
    except UnicodeDecodeError as e:
        raise TfbertError(f"{path} is not UTF-8 text ({e}).") from e
    if not labels:
        raise TfbertError(f"{path} has no examples.")
    return Examples(texts, labels, lines, str(path))


def _parse_label(value, task, where, column):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise TfbertError(f"{where}: the label ({column!r}) is missing. Fill it in or drop the row.")
    if task == "regression":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TfbertError(f"{where}: a regression label must be a number; found {value!r}.") from None
        if not math.isfinite(number):
            raise TfbertError(f"{where}: a regression label must be finite; found {value!r}.")
        return number
    if task == "multi_label":
        if isinstance(value, list):
            return [str(v) for v in value]
        return [v.strip() for v in str(value).split(MULTI_LABEL_SEPARATOR) if v.strip()]
    if isinstance(value, (list, dict)):
        raise TfbertError(f"{where}: a classification label must be one name; found {value!r}.")
    return str(value).strip()


def label_names(examples, task="classification"):
    """The sorted label names of training examples (None for regression)."""
    if task == "regression":
        return None
    names = set()
    for label in examples.labels:
        names.update(label if task == "multi_label" else [label])
    return sorted(names)


def encode_labels(examples, labels, task="classification"):
    """Label ids (int32 [n]), multi-hot rows (float32 [n, labels]) or scores (float32 [n]).

    Raises:
        TfbertError: a label that is not among `labels`, with its file and line.
    """
    if task == "regression":
        return np.asarray(examples.labels, np.float32)
    index = {name: i for i, name in enumerate(labels)}

    def lookup(name, line):
        if name not in index:
            shown = ", ".join(map(repr, labels[:10])) + (", ..." if len(labels) > 10 else "")
            raise TfbertError(f"{examples.source}:{line}: label {name!r} is not one of the {len(labels)} training "
                              f"labels ({shown}). Fix the label, or add examples of it to the training data.")
        return index[name]

    if task == "multi_label":
        encoded = np.zeros([len(examples), len(labels)], np.float32)
        for row, (names, line) in enumerate(zip(examples.labels, examples.lines)):
            for name in names:
                encoded[row, lookup(name, line)] = 1.0
        return encoded
    return np.asarray([lookup(name, line) for name, line in zip(examples.labels, examples.lines)], np.int32)


def token_lengths(tokenizer, texts, chunk=512):
    """Tokens per example (special tokens included, after truncation), from the model's own tokenizer."""
    lengths = []
    for start in range(0, len(texts[0]), chunk):
        parts = [tf.constant(column[start:start + chunk]) for column in texts]
        tokens = tokenizer(tuple(parts) if len(parts) == 2 else parts[0])
        lengths.append(tf.reduce_sum(tokens["attention_mask"], axis=1).numpy())
    return np.concatenate(lengths) if lengths else np.zeros([0], np.int32)


def make_dataset(texts, labels, batch_size=32, lengths=None, shuffle=False, seed=0, window_batches=32):
    """A tf.data of (features, labels) batches of raw strings, for `model.fit` / `evaluate`.

    With `lengths`, batches are bucketed by length: the shuffled examples are taken `window_batches`
    batches at a time, sorted by length, cut into batches, and the batches shuffled again, so each
    batch holds texts of similar length and the in-graph padding (to the longest of the batch) stays
    small. The number of batches is still ceil(n / batch_size), so progress bars know the epoch's length.

    Args:
        texts: list of lists of str (one list per text column) or Examples.texts.
        labels: array [n] or [n, labels].
        batch_size: int. Defaults to 32.
        lengths: int array [n], e.g. from `token_lengths`. Defaults to None (no bucketing).
        shuffle: bool. Reshuffle every epoch. Defaults to False.
        seed: int. Shuffle seed. Defaults to 0.
        window_batches: int. Batches per sorting window. Defaults to 32.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TfbertError(f"batch_size must be a positive integer; received {batch_size!r}.")
    count = len(labels)
    names = ["text", "text_pair"][:len(texts)]
    features = {name: tf.constant(column, tf.string) for name, column in zip(names, texts)}
    columns = (features, tf.constant(labels))
    if lengths is None:
        dataset = tf.data.Dataset.from_tensor_slices(columns)
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    window = batch_size * window_batches
    dataset = tf.data.Dataset.from_tensor_slices((*columns, tf.constant(lengths, tf.int32)))
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)

    def sorted_batches(features, labels, lengths):
        order = tf.argsort(lengths, stable=True)
        features = {name: tf.gather(value, order) for name, value in features.items()}
        return tf.data.Dataset.from_tensor_slices((features, tf.gather(labels, order))).batch(batch_size)

    dataset = dataset.batch(window).flat_map(sorted_batches)
    if shuffle:
        dataset = dataset.shuffle(window_batches, seed=seed + 1, reshuffle_each_iteration=True)
    # Every window but the last gives window_batches full batches, so the count is exact.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE)

