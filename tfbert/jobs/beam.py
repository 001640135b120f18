"""Embedding a corpus with Apache Beam: RunInference on an encoder export, to Parquet or TFRecord.

    text files / JSONL -> (id, text) -> sorted by length within bundles
    -> RunInference(KeyedModelHandler(EmbedModelHandler)) -> rows
    -> WriteToParquet (id, text, embedding) | WriteToTFRecord (tf.train.Example)

Runs on any Beam runner: the DirectRunner on one machine, Dataflow, Flink or Spark for more (see the
README). Each worker loads the export once (`tf.saved_model.load` reads local, gs:// or hdfs:// paths)
and needs only tensorflow and tensorflow_text to run it.

Why not Beam's own `TFModelHandlerTensor`: it loads models with `tf.keras.models.load_model`, which
(Keras 3 in TensorFlow 2.21) cannot load a plain SavedModel, and its module imports tensorflow_hub,
which fails to import on this stack (it needs `pkg_resources`, gone from setuptools >= 81).

usage: python -m tfbert.beam  (or python -m tfbert.jobs.beam) --input 'corpus/*.txt' --output out/embeddings --saved-model DIR
       [--format parquet|tfrecord] [--column text] [--id-column id] [--batch-size 32] [Beam options...]
Needs the beam extra: python -m pip install 'tfbert[beam]'
"""

import argparse
import json
import logging
import sys

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.windowed_value import WindowedValue

from tfbert.errors import TfbertError
from tfbert.serving.loading import SavedModelEmbedder, load_export

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "tfrecord")
INPUT_FORMATS = ("text", "jsonl")


class EmbedModelHandler(ModelHandler):
    """A RunInference model handler for a tfbert encoder export: texts (str) in, sentence embeddings out.

    Args:
        saved_model: str. The export: a version folder or a model folder (its latest version); local
            or any filesystem TensorFlow reads (gs://, hdfs://, s3:// with tensorflow-io).
        signature: str. The signature to run. Defaults to "embed".
        output_key: str. Its output to return. Defaults to "sentence_embedding".
        min_batch_size, max_batch_size: int. The batches Beam forms. Defaults to 1 and 32.
    """

    def __init__(self, saved_model, signature="embed", output_key="sentence_embedding", min_batch_size=1,
                 max_batch_size=32):
        super().__init__()
        self._saved_model = str(saved_model)
        self._signature = signature
        self._output_key = output_key
        self._batch = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def load_model(self):
        loaded, folder = load_export(self._saved_model, signature=self._signature)
        logger.info("loaded %s", folder)
        return loaded

    def run_inference(self, batch, model, inference_args=None):
        texts = [text if isinstance(text, (str, bytes)) else str(text) for text in batch]
        outputs = model.signatures[self._signature](text=tf.constant(texts, tf.string))[self._output_key].numpy()
        return [PredictionResult(example, vector) for example, vector in zip(batch, outputs)]

    def batch_elements_kwargs(self):
        return self._batch

    def get_num_bytes(self, batch):
        return sum(len(text) for text in batch)

    def get_metrics_namespace(self):
        return "tfbert"


def parse_text(line):
    """(id, text) of a text file's line: no id."""
    return None, line


def parse_jsonl(line, column="text", id_column=None):
    """(id, text) of a JSONL line: the text field, and the id field as a string (None without id_column)."""
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get(column), str):
        raise ValueError(f"a JSONL record without the text field {column!r}: {line[:200]!r}")
    if id_column is not None and id_column not in record:
        raise ValueError(f"a JSONL record without the id field {id_column!r}: {line[:200]!r}")
    return (None if id_column is None else str(record[id_column])), record[column]


def to_row(keyed_result):
    (record_id, text), result = keyed_result
    return {"id": record_id, "text": text, "embedding": np.asarray(result.inference, np.float32).tolist()}


def to_example(row):
    feature = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["text"].encode("utf-8")])),
               "embedding": tf.train.Feature(float_list=tf.train.FloatList(value=row["embedding"]))}
    if row["id"] is not None:
        feature["id"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["id"].encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class SortByLength(beam.DoFn):
    """Re-emits (id, text) records sorted by text length, `buffer_size` at a time within each bundle, so
    that RunInference's batches (consecutive elements of a bundle) hold texts of similar length and the
    encoder computes less padding, as `tfbert embed-corpus` batches by length. Characters stand in for
    tokens. Each record keeps its own window and timestamp.

    Args:
        buffer_size: int. Records sorted together; a bundle's last ones at its end. Defaults to 1024.
    """

    def __init__(self, buffer_size=1024):
        super().__init__()
        self._buffer_size = buffer_size

    def start_bundle(self):
        self._buffer = []

    def process(self, record, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        self._buffer.append(WindowedValue(record, timestamp, [window]))
        if len(self._buffer) >= self._buffer_size:
            yield from self._flush()

    def finish_bundle(self):
        yield from self._flush()

    def _flush(self):
        buffer, self._buffer = self._buffer, []
        return sorted(buffer, key=lambda windowed: len(windowed.value[1]))


class EmbedTexts(beam.PTransform):
    """(id, text) pairs -> rows {"id", "text", "embedding"} through RunInference on an encoder export,
    with texts of similar length batched together (`SortByLength`)."""

    def __init__(self, saved_model, batch_size=32, sort_buffer=1024):
        super().__init__()
        self._handler = KeyedModelHandler(EmbedModelHandler(saved_model, max_batch_size=batch_size))
        self._sort_buffer = sort_buffer

    def expand(self, records):
        return (records
                | "SortByLength" >> beam.ParDo(SortByLength(self._sort_buffer))
                | "KeyByRecord" >> beam.Map(lambda record: (record, record[1]))
                | "RunInference" >> RunInference(self._handler)
                | "ToRows" >> beam.Map(to_row))


def build_pipeline(pipeline, input_pattern, output_prefix, saved_model, output_format="parquet", column="text",
                   id_column=None, batch_size=32, width=None, input_format=None):
    """Adds read -> embed -> write to a Beam pipeline; returns the write's result.

    Args:
        pipeline: beam.Pipeline.
        input_pattern: str. Text files (one text a line) or JSONL files (one JSON object a line), a glob.
        output_prefix: str. Output shards are OUTPUT_PREFIX-SSSSS-of-NNNNN.parquet / .tfrecord.
        saved_model: str. The encoder export.
        output_format: str. "parquet" (columns id, text, embedding) or "tfrecord" (tf.train.Example with
            features text, embedding and, with id_column, id). Defaults to "parquet".
        column: str. The JSONL text field. Defaults to "text".
        id_column: str. A JSONL field copied as the row's id. Defaults to None (no id).
        batch_size: int. Largest RunInference batch. Defaults to 32.
        width: int. Embedding size, for the Parquet schema. Defaults to None (read from the export).
        input_format: str. "text" or "jsonl". Defaults to "jsonl" when the pattern ends with .jsonl,
            else "text".
    """
    if output_format not in FORMATS:
        raise TfbertError(f"output_format must be one of {', '.join(FORMATS)}; received {output_format!r}.")
    if input_format is None:
        input_format = "jsonl" if str(input_pattern).endswith(".jsonl") else "text"
    if input_format not in INPUT_FORMATS:
        raise TfbertError(f"input_format must be one of {', '.join(INPUT_FORMATS)}; received {input_format!r}.")
    if input_format == "text" and id_column is not None:
        raise TfbertError("text files have no id field; use JSONL input for id_column.")
    parse = beam.Map(parse_jsonl, column=column, id_column=id_column) if input_format == "jsonl" else beam.Map(parse_text)
    rows = (pipeline
            | "Read" >> beam.io.ReadFromText(input_pattern)
            | "Parse" >> parse
            | "Embed" >> EmbedTexts(saved_model, batch_size))
    if output_format == "tfrecord":
        return (rows | "ToExample" >> beam.Map(to_example)
                | "Write" >> beam.io.WriteToTFRecord(output_prefix, file_name_suffix=".tfrecord"))
    if width is None:
        width = SavedModelEmbedder(saved_model).width
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("embedding", pa.list_(pa.float32(), width))])
    return rows | "Write" >> beam.io.WriteToParquet(output_prefix, schema, file_name_suffix=".parquet")


def build_parser():
    """The command line of `python -m tfbert.beam`; arguments it does not know are Beam pipeline options."""
    parser = argparse.ArgumentParser(prog="python -m tfbert.beam",
                                     description="Embed a text or JSONL corpus with RunInference on a tfbert export.")
    parser.add_argument("--input", required=True, help="text files (one text a line) or JSONL files, a glob")
    parser.add_argument("--output", required=True, help="output prefix: OUTPUT-SSSSS-of-NNNNN.parquet or .tfrecord")
    parser.add_argument("--saved-model", required=True, help="the encoder export (version or model folder, local or gs://)")
    parser.add_argument("--format", default="parquet", choices=FORMATS, help="output format (default: parquet)")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, help="default: jsonl for *.jsonl, else text")
    parser.add_argument("--column", default="text", help="JSONL text field (default: text)")
    parser.add_argument("--id-column", help="JSONL field copied as the row's id")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def main(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    try:
        # Checked here, once, so that a wrong path fails in one line before any worker starts.
        width = SavedModelEmbedder(args.saved_model).width
        with beam.Pipeline(options=PipelineOptions(beam_args, save_main_session=False)) as pipeline:
            build_pipeline(pipeline, args.input, args.output, args.saved_model, args.format, args.column,
                           args.id_column, args.batch_size, width=width, input_format=args.input_format)
    except TfbertError as e:
        print(f"tfbert.beam: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
