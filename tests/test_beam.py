"""The Beam pipeline (RunInference on an export) on the DirectRunner: Parquet and TFRecord outputs."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from conftest import debian_texts
from tfbert.models.embedding import embed

import apache_beam as beam  # the test extra installs the beam extra's packages  # noqa: E402
from tfbert.jobs import beam as tfbert_beam  # noqa: E402


@pytest.fixture(scope="module")
def texts():
    return debian_texts("dev", 60) + ["", "The quick brown fox jumps over the lazy dog fox"]


def test_jsonl_to_parquet_with_ids(tiny_export, tiny_encoder, texts, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"key": f"doc-{i}", "body": t}) + "\n" for i, t in enumerate(texts)),
                      encoding="utf-8")
    tfbert_beam.main(["--input", str(corpus), "--output", str(tmp_path / "out" / "embeddings"),
                      "--saved-model", str(tiny_export.parent), "--column", "body", "--id-column", "key",
                      "--batch-size", "8", "--runner", "DirectRunner"])
    shards = sorted((tmp_path / "out").glob("embeddings-*-of-*.parquet"))
    assert shards
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    assert sorted(row["id"] for row in rows) == sorted(f"doc-{i}" for i in range(len(texts)))
    expected = embed(texts, tiny_encoder)
    for row in rows:
        i = int(row["id"].split("-")[1])
        assert row["text"] == texts[i]
        np.testing.assert_allclose(row["embedding"], expected[i], atol=1e-5)


def test_text_files_to_tfrecord(tiny_export, tiny_encoder, texts, tmp_path):
    halves = [texts[: len(texts) // 2], texts[len(texts) // 2:]]  # a glob over two files
    for n, half in enumerate(halves):
        (tmp_path / f"part-{n}.txt").write_text("".join(f"{t}\n" for t in half), encoding="utf-8")
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        tfbert_beam.build_pipeline(pipeline, str(tmp_path / "part-*.txt"), str(tmp_path / "out" / "embeddings"),
                                   str(tiny_export), output_format="tfrecord", batch_size=16)
    records = tf.data.TFRecordDataset([str(p) for p in sorted((tmp_path / "out").glob("*.tfrecord"))])
    found = {}
    for record in records.as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        found[features["text"].bytes_list.value[0].decode("utf-8")] = np.asarray(features["embedding"].float_list.value)
    assert len(found) == len(set(texts))
    expected = embed(texts, tiny_encoder)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(found[text], expected[i], atol=1e-5)


def test_mistakes(tiny_export, tmp_path):
    with pytest.raises(ValueError, match="without the text field 'text'"):
        tfbert_beam.parse_jsonl('{"body": "x"}')
    with pytest.raises(ValueError, match="neither a SavedModel folder"):
        tfbert_beam.EmbedModelHandler(str(tmp_path)).load_model()
    with pytest.raises(ValueError, match="text files have no id field"):
        tfbert_beam.build_pipeline(beam.Pipeline(), "x.txt", "out", str(tiny_export), id_column="id", width=32)
    with pytest.raises(ValueError, match="has no .classify. signature"):
        tfbert_beam.EmbedModelHandler(str(tiny_export), signature="classify").load_model()


def test_sort_by_length_orders_each_buffer_and_keeps_windows():
    from apache_beam.transforms.window import GlobalWindow, IntervalWindow

    sorter = tfbert_beam.SortByLength(buffer_size=4)
    sorter.start_bundle()
    records = [(f"id-{i}", "x" * length) for i, length in enumerate([9, 1, 5, 3, 7, 2, 8])]
    windows = [GlobalWindow(), IntervalWindow(0, 10)]
    emitted = []
    for i, record in enumerate(records):
        emitted += list(sorter.process(record, window=windows[i % 2], timestamp=i))
    assert [len(w.value[1]) for w in emitted] == [1, 3, 5, 9]  # the first full buffer, sorted
    emitted += list(sorter.finish_bundle())
    assert [len(w.value[1]) for w in emitted] == [1, 3, 5, 9, 2, 7, 8]  # then the bundle's rest
    assert sorted(w.value for w in emitted) == sorted(records)  # every record once
    for w in emitted:
        i = int(w.value[0].split("-")[1])
        assert w.windows == [windows[i % 2]] and w.timestamp == i  # each keeps its own window and time


def test_multi_process_direct_runner_embeds_every_record_once(tiny_export, tiny_encoder, texts, tmp_path):
    """Two worker processes: every record comes out exactly once, embedded as `tfbert.embed` embeds it."""
    from apache_beam.options.pipeline_options import PipelineOptions

    corpus = tmp_path / "corpus.jsonl"
    records = [{"id": f"doc-{i}", "text": text} for i, text in enumerate(texts * 3)]  # duplicate texts, distinct ids
    corpus.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                               "--direct_num_workers=2"])
    with beam.Pipeline(options=options) as pipeline:
        tfbert_beam.build_pipeline(pipeline, str(corpus), str(tmp_path / "out" / "embeddings"), str(tiny_export),
                                   id_column="id", batch_size=8)
    rows = [row for shard in sorted((tmp_path / "out").glob("embeddings-*.parquet"))
            for row in pq.read_table(shard).to_pylist()]
    assert sorted(row["id"] for row in rows) == sorted(record["id"] for record in records)  # each exactly once
    expected = embed(texts, tiny_encoder)
    for row in rows:
        i = int(row["id"].split("-")[1]) % len(texts)
        assert row["text"] == texts[i]
        np.testing.assert_allclose(row["embedding"], expected[i], atol=1e-5)
