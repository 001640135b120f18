"""Corpus files for embedding, read as (id, text) records in file order: .txt (one text a line), .csv,
.tsv, .jsonl, and .tfrecord[.gz] (tf.train.Example with a bytes feature)."""

import pathlib

import tensorflow as tf

from tfbert.errors import TfbertError
from tfbert.jobs.records import read_records

INPUT_FORMATS = {".txt": "text", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".tfrecord": "tfrecord",
                 ".tfrecords": "tfrecord"}


def input_format(path):
    """The format of an input file, from its suffix (a trailing .gz is allowed for TFRecord)."""
    path = pathlib.Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"] and suffixes[-2:-1] in ([".tfrecord"], [".tfrecords"]):
        return "tfrecord"
    fmt = INPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TfbertError(f"{path}: unknown input format {path.suffix!r}; use .txt (one text a line), .csv, .tsv, "
                          ".jsonl or .tfrecord (tf.train.Example, optionally .tfrecord.gz).")
    return fmt


def read_corpus(path, column="text", id_column=None):
    """(id, text) for each record of a corpus file, in file order.

    Args:
        path: str. The corpus; its suffix picks the format. In a .txt file every line is a text (blank
            lines too, so that row N of the output is line N+1). CSV, TSV and JSONL name the text by
            column; TFRecord files hold tf.train.Example records with a bytes feature.
        column: str. The text column or feature (not used for .txt). Defaults to "text".
        id_column: str. A column or feature to copy as each row's id (as a string). Defaults to None:
            the id is the record's 0-based position.

    Yields:
        (id, text): id is str (from id_column) or int (the position); text is str.
    """
    path = pathlib.Path(path)
    fmt = input_format(path)
    if not path.is_file():
        raise TfbertError(f"{path} does not exist.")
    if fmt == "text":
        if id_column is not None:
            raise TfbertError("a .txt corpus has no columns, so id_column does not apply: the id is the line's position.")
        yield from _text_lines(path)
    elif fmt == "tfrecord":
        yield from _tfrecord_texts(path, column, id_column)
    else:
        yield from _table_texts(path, fmt, column, id_column)


def _text_lines(path):
    with open(path, "rb") as f:
        for index, line in enumerate(f):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TfbertError(f"{path}:{index + 1}: not UTF-8 ({e.reason} at byte {e.start} of the line).") from e
            yield index, text.rstrip("\n").rstrip("\r")


def _table_texts(path, fmt, column, id_column):
    wanted = [column] + ([id_column] if id_column is not None else [])
    rows = read_records(path, fmt)
    index = 0
    try:
        if fmt != "jsonl":
            header_line, header = next(rows, (None, None))
            if header is None:
                return
            missing = [c for c in wanted if c not in header]
            if missing:
                raise TfbertError(f"{path}:{header_line}: no column {missing[0]!r}; the header has {list(header)}. "
                                  "Pick columns with --column / --id-column.")
        for line, row in rows:
            missing = [c for c in wanted if c not in row]
            if missing:
                raise TfbertError(f"{path}:{line}: no field {missing[0]!r}; this record has {sorted(row)}. "
                                  "Pick columns with --column / --id-column.")
            text = row[column]
            if not isinstance(text, str):
                raise TfbertError(f"{path}:{line}: {column!r} must be text; found {text!r}.")
            yield (index if id_column is None else str(row[id_column])), text
            index += 1
    except UnicodeDecodeError as e:
        raise TfbertError(f"{path}: not UTF-8 ({e.reason} at byte {e.start}).") from e


def _feature_value(path, index, example, name):
    features = example.features.feature
    if name not in features:
        raise TfbertError(f"{path}: record {index} has no feature {name!r}; it has {sorted(features)}. "
                          "Pick features with --column / --id-column.")
    feature = features[name]
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if len(values) != 1:
        raise TfbertError(f"{path}: record {index}: feature {name!r} must hold one value; it holds {len(values)}.")
    value = values[0]
    # Invalid UTF-8 becomes U+FFFD, as the tokenizer treats it.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _tfrecord_texts(path, column, id_column):
    compression = "GZIP" if path.suffix.lower() == ".gz" else ""
    records = tf.data.TFRecordDataset(str(path), compression_type=compression)
    try:
        for index, record in enumerate(records.as_numpy_iterator()):
            try:
                example = tf.train.Example.FromString(record)
            except Exception as e:  # protobuf's DecodeError; its class depends on the protobuf backend
                raise TfbertError(f"{path}: record {index} is not a tf.train.Example ({e}).") from e
            text = _feature_value(path, index, example, column)
            if not isinstance(text, str):
                raise TfbertError(f"{path}: record {index}: feature {column!r} must be a bytes feature (text); "
                                  f"found {text!r}.")
            yield (index if id_column is None else str(_feature_value(path, index, example, id_column))), text
    except tf.errors.DataLossError as e:
        raise TfbertError(f"{path}: corrupt or truncated TFRecord file ({e.message.splitlines()[0]}).") from e
