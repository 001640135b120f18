"""Labelled text for fine-tuning: CSV, TSV and JSONL readers, label names and label ids.

Mistakes in the data are reported with the file and line: a missing column, an empty file, a row
without a label, a dev label the training data never had.
"""

import dataclasses
import logging
import math
import pathlib

import numpy as np

from tfbert.errors import TfbertError
from tfbert.jobs.records import TABLE_FORMATS, read_records

logger = logging.getLogger(__name__)

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
    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TfbertError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv or .jsonl.")
    text_columns = [text_columns] if isinstance(text_columns, str) else list(text_columns)
    if not 1 <= len(text_columns) <= 2:
        raise TfbertError(f"text_columns must name one column, or two for sentence pairs; received {text_columns}.")
    if not path.is_file():
        raise TfbertError(f"{path} does not exist.")
    texts, labels, lines = [[] for _ in text_columns], [], []
    rows = read_records(path, fmt)
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
