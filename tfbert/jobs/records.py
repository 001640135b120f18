"""Records of a table file, one dict a record, with the line it starts on: CSV (quoted), TSV (unquoted, as
GLUE's files) and JSONL. The readers of labelled examples and of corpora both take them from here."""

import csv
import json

from tfbert.errors import TfbertError

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def read_records(path, fmt):
    """(line number, dict) per record; the line is where the record starts.

    For CSV and TSV the first item is the header, as {name: name} on line 1, for column checks.
    """
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
