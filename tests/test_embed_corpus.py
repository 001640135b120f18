"""`embed_corpus` / `tfbert embed-corpus`: every input format, both outputs, order, resume after a kill, errors."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from conftest import debian_texts, read_jsonl, shared_file
from tfbert.jobs.corpus_files import read_corpus
from tfbert.jobs.embed_corpus import embed_corpus
from tfbert.models.embedding import embed
from tfbert.errors import TfbertError


@pytest.fixture(scope="module")
def texts():
    """Real texts of very different lengths (so that sorting by length reorders them), some empty or odd."""
    cases = [c["text"] for c in read_jsonl(shared_file("data", "tokenizer-cases.jsonl"))[:40]]
    corpus = debian_texts("dev", 40) + [text.replace("\n", " ").replace("\r", " ") for text in cases] + ["", "short"]
    return corpus


def _write_tfrecord(path, texts, compression=None):
    with tf.io.TFRecordWriter(str(path), options=compression) as writer:
        for i, text in enumerate(texts):
            features = {"body": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")])),
                        "key": tf.train.Feature(int64_list=tf.train.Int64List(value=[1000 + i]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def _write_inputs(folder, texts):
    (folder / "corpus.txt").write_text("".join(f"{t}\n" for t in texts), encoding="utf-8")
    with open(folder / "corpus.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "description"])
        writer.writerows([f"pkg-{i}", t] for i, t in enumerate(texts))
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts))
    _write_tfrecord(folder / "corpus.tfrecord.gz", texts, "GZIP")


def _parquet(path):
    table = pq.read_table(path)
    return table["id"].to_pylist(), np.asarray(table["embedding"].to_pylist(), np.float32)


def test_every_format_in_corpus_order(tiny_encoder, texts, tmp_path):
    _write_inputs(tmp_path, texts)
    expected = embed(texts, tiny_encoder)
    # A chunk of 7 records: several chunks, a short last one, and length sorting inside each.
    run = dict(model=tiny_encoder, chunk_size=7, batch_size=4, progress=False)

    result = embed_corpus(tmp_path / "corpus.txt", tmp_path / "txt.npy", **run)
    assert (result.count, result.width, result.resumed_texts) == (len(texts), 32, 0)
    np.testing.assert_allclose(np.load(tmp_path / "txt.npy"), expected, atol=1e-6)

    embed_corpus(tmp_path / "corpus.csv", tmp_path / "csv.parquet", column="description", id_column="name", **run)
    ids, vectors = _parquet(tmp_path / "csv.parquet")
    assert ids == [f"pkg-{i}" for i in range(len(texts))]
    np.testing.assert_allclose(vectors, expected, atol=1e-6)

    embed_corpus(tmp_path / "corpus.jsonl", tmp_path / "jsonl.parquet", **run)  # ids: the record's position
    ids, vectors = _parquet(tmp_path / "jsonl.parquet")
    assert ids == list(range(len(texts)))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)

    embed_corpus(tmp_path / "corpus.tfrecord.gz", tmp_path / "tfrecord.parquet", column="body", id_column="key", **run)
    ids, vectors = _parquet(tmp_path / "tfrecord.parquet")
    assert ids == [str(1000 + i) for i in range(len(texts))]
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*tmp*"))


def test_saved_model_engine_equals_the_encoder(default_export, default_encoder, tmp_path):
    base, _ = default_export
    texts = debian_texts("dev", 20) + ["", "The quick brown fox jumps over the lazy dog fox"]
    (tmp_path / "corpus.txt").write_text("".join(f"{t}\n" for t in texts), encoding="utf-8")
    embed_corpus(tmp_path / "corpus.txt", tmp_path / "out.npy", saved_model=base, chunk_size=8, progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), embed(texts, default_encoder), atol=1e-5)


def _child_env():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def test_killed_run_resumes_and_loses_nothing(tiny_checkpoint, tiny_encoder, tmp_path):
    texts = [text for text in debian_texts("train", 900)]
    (tmp_path / "corpus.txt").write_text("".join(f"{t}\n" for t in texts), encoding="utf-8")
    output, work = tmp_path / "out.parquet", tmp_path / "out.parquet.partial"
    command = [sys.executable, "-m", "tfbert", "embed-corpus", "--input", str(tmp_path / "corpus.txt"), "--output",
               str(output), "--model", str(tiny_checkpoint), "--chunk-size", "50", "--batch-size", "8", "--no-progress"]
    first = subprocess.Popen(command, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list(work.glob("chunk-*.npz"))) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = sorted(work.glob("chunk-*.npz"))
    assert first.returncode == -signal.SIGKILL and 3 <= len(done) < 18 and not output.exists(), first.stderr.read()
    expected = embed(texts, tiny_encoder)
    # The killed run's chunks hold the right rows. Mark the first one (sign flipped) to see it reused, not redone.
    with np.load(done[0]) as chunk:
        np.testing.assert_allclose(chunk["embeddings"], expected[:50], atol=1e-5)
        marked = {"ids": chunk["ids"], "embeddings": -chunk["embeddings"]}
    with open(done[0], "wb") as f:
        np.savez(f, **marked)

    second = subprocess.run(command, env=_child_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert f"resuming: {len(done)} of 18 chunks ({50 * len(done)} texts)" in second.stderr
    assert f"({50 * len(done)} from the interrupted run)" in second.stderr
    ids, vectors = _parquet(output)
    assert ids == list(range(len(texts)))
    np.testing.assert_allclose(vectors[:50], -expected[:50], atol=1e-5)
    np.testing.assert_allclose(vectors[50:], expected[50:], atol=1e-5)
    assert not work.exists()


def test_errors(tiny_encoder, tmp_path):
    run = dict(model=tiny_encoder, progress=False)
    (tmp_path / "a.csv").write_text("title,body\nx,y\n", encoding="utf-8")
    with pytest.raises(TfbertError, match=r"a.csv:1: no column 'text'; the header has \['title', 'body'\]"):
        embed_corpus(tmp_path / "a.csv", tmp_path / "a.npy", **run)
    with pytest.raises(TfbertError, match="unknown input format '.xml'"):
        embed_corpus(tmp_path / "a.xml", tmp_path / "a.npy", **run)
    with pytest.raises(TfbertError, match="unknown output format '.csv'"):
        embed_corpus(tmp_path / "a.csv", tmp_path / "out.csv", column="body", **run)
    with pytest.raises(TfbertError, match="write a .parquet file to keep the ids"):
        embed_corpus(tmp_path / "a.csv", tmp_path / "a.npy", column="body", id_column="title", **run)
    (tmp_path / "bad.txt").write_bytes(b"fine\nnot \xff utf-8\n")
    with pytest.raises(TfbertError, match=r"bad.txt:2: not UTF-8"):
        embed_corpus(tmp_path / "bad.txt", tmp_path / "bad.npy", **run)
    (tmp_path / "mixed.jsonl").write_text('{"text": "a"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(TfbertError, match=r"mixed.jsonl:2: 'text' must be text; found 3"):
        embed_corpus(tmp_path / "mixed.jsonl", tmp_path / "mixed.npy", **run)
    _write_tfrecord(tmp_path / "r.tfrecord", ["a"])
    with pytest.raises(TfbertError, match=r"record 0 has no feature 'text'; it has \['body', 'key'\]"):
        list(read_corpus(tmp_path / "r.tfrecord"))

    embed_corpus(tmp_path / "a.csv", tmp_path / "a.npy", column="body", **run)
    with pytest.raises(TfbertError, match="already exists; pass --overwrite"):
        embed_corpus(tmp_path / "a.csv", tmp_path / "a.npy", column="body", **run)
    embed_corpus(tmp_path / "a.csv", tmp_path / "a.npy", column="body", overwrite=True, **run)

    # An unfinished run with other input is not mixed into a new one.
    (tmp_path / "b.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    work = tmp_path / "b.npy.partial"
    work.mkdir()
    (work / "manifest.json").write_text(json.dumps({"input": "elsewhere"}), encoding="utf-8")
    with pytest.raises(TfbertError, match="holds an unfinished run .* pass --restart"):
        embed_corpus(tmp_path / "b.txt", tmp_path / "b.npy", **run)
    embed_corpus(tmp_path / "b.txt", tmp_path / "b.npy", restart=True, **run)
    assert np.load(tmp_path / "b.npy").shape == (3, 32)
