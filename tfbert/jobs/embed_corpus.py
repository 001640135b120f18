"""`embed_corpus`: sentence embeddings of a whole corpus file, in chunks that survive a killed run.

    input (.txt, .csv, .tsv, .jsonl, .tfrecord[.gz]) -> chunks of `chunk_size` records -> inside a
    chunk, batches of texts of similar length -> OUTPUT.partial/chunk-N.npz -> OUTPUT (.npy or .parquet)

Each finished chunk is written atomically to a work folder beside the output; a run started again with
the same arguments skips the chunks it finds there. The output appears (atomically) only when every
chunk is done, and the work folder is then deleted.
"""

import dataclasses
import io
import json
import logging
import os
import pathlib
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from tfbert import defaults
from tfbert.errors import TfbertError, check_positive_int
from tfbert.files import write_atomic, write_json
from tfbert.jobs.corpus_files import input_format, read_corpus
from tfbert.models.embedding import embed_batches, embedder
from tfbert.models.encoder import build_encoder
from tfbert.serving.loading import SavedModelEmbedder

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = (".npy", ".parquet")
_MANIFEST = "manifest.json"


@dataclasses.dataclass
class CorpusResult:
    """What `embed_corpus` did.

    Attributes:
        output: pathlib.Path. The file written.
        count: int. Texts embedded (rows of the output).
        width: int. Embedding size.
        resumed_texts: int. Texts a previous, interrupted run had already embedded.
        seconds: float. Wall time of this run.
        embed_seconds: float. The part of it spent embedding (after loading the model).
    """

    output: pathlib.Path
    count: int
    width: int
    resumed_texts: int
    seconds: float
    embed_seconds: float


def _chunks(records, chunk_size):
    ids, texts = [], []
    for record_id, text in records:
        ids.append(record_id)
        texts.append(text)
        if len(texts) == chunk_size:
            yield ids, texts
            ids, texts = [], []
    if texts:
        yield ids, texts


def _chunk_path(work_dir, number):
    return work_dir / f"chunk-{number:06d}.npz"


def _save_chunk(path, ids, embeddings):
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.asarray(ids), embeddings=embeddings)
    write_atomic(path, buffer.getvalue())


def _load_chunk(path):
    with np.load(path) as chunk:
        return chunk["ids"], chunk["embeddings"]


def _write_npy(output, chunk_files, count, width):
    temporary = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=(count, width))
        start = 0
        for path in chunk_files:
            embeddings = _load_chunk(path)[1]
            array[start:start + len(embeddings)] = embeddings
            start += len(embeddings)
        array.flush()
        del array
        os.replace(temporary, output)
    finally:
        if temporary.exists():
            temporary.unlink()


def _write_parquet(output, chunk_files, width, string_ids):
    schema = pa.schema([("id", pa.string() if string_ids else pa.int64()),
                        ("embedding", pa.list_(pa.float32(), width))])
    temporary = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with pq.ParquetWriter(temporary, schema) as writer:
            for path in chunk_files:
                ids, embeddings = _load_chunk(path)
                vectors = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1), pa.float32()), width)
                ids = pa.array(ids.tolist(), schema.field("id").type)
                writer.write_table(pa.Table.from_arrays([ids, vectors], schema=schema))
        os.replace(temporary, output)
    finally:
        if temporary.exists():
            temporary.unlink()


def _progress(total, initial, enabled):
    return tqdm(total=total, initial=initial, unit="text", unit_scale=True, smoothing=0.1, dynamic_ncols=True,
                disable=not enabled, file=sys.stderr, desc="embedding")


def _manifest(path, fmt, column, id_column, engine, chunk_size, count, width):
    stat = path.stat()
    return {"input": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": fmt,
            "column": None if fmt == "text" else column, "id_column": id_column, "engine": engine,
            "chunk_size": chunk_size, "count": count, "width": width}


def _check_resume(work_dir, manifest, output):
    previous = json.loads((work_dir / _MANIFEST).read_text(encoding="utf-8"))
    changed = [key for key in manifest if previous.get(key) != manifest[key]]
    if changed:
        details = ", ".join(f"{key}: {previous.get(key)!r} then, {manifest[key]!r} now" for key in changed)
        raise TfbertError(
            f"{work_dir} holds an unfinished run of {output} with other settings or input ({details}). Run the same "
            "command again to finish it, or pass --restart / restart=True to discard it."
        )


def embed_corpus(input_path, output, model=None, saved_model=None, column="text", id_column=None, batch_size=defaults.BATCH_SIZE,
                 chunk_size=defaults.EMBED_CHUNK_SIZE, max_length=None, overwrite=False, restart=False, progress=True):
    """Embeds every text of a corpus file; writes the embeddings in the corpus's order.

    Args:
        input_path: str. The corpus (see `read_corpus` for the formats).
        output: str. A .npy file (float32 [texts, hidden], row N = record N) or a .parquet file (columns
            `id` and `embedding`, a fixed-size list of float32).
        model: str or tf_keras.Model. A checkpoint (preset, folder, hub id) or a model from
            `tfbert.build_encoder`. Defaults to the default checkpoint.
        saved_model: str. An encoder export to run instead of model (its `embed` signature).
        column: str. The text column or feature. Defaults to "text".
        id_column: str. A column to copy into the Parquet `id` column. Defaults to None (the record's
            position).
        batch_size: int. Texts a batch. Defaults to 32.
        chunk_size: int. Records a chunk: the unit of resuming, and the window inside which texts are
            sorted by length so that batches pad little. Defaults to 4096.
        max_length: int. Tokens a text, longer texts are truncated (with model only). Defaults to the
            checkpoint's max_position_embeddings.
        overwrite: bool. Replace an existing output. Defaults to False.
        restart: bool. Discard the chunks of an unfinished run instead of resuming it. Defaults to False.
        progress: bool. Show a progress bar (rate and ETA) on stderr. Defaults to True.

    Returns:
        CorpusResult.
    """
    started = time.monotonic()
    input_path, output = pathlib.Path(input_path), pathlib.Path(output)
    fmt = input_format(input_path)
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise TfbertError(f"{output}: unknown output format {output.suffix!r}; use .npy or .parquet.")
    if output.suffix.lower() == ".npy" and id_column is not None:
        raise TfbertError("a .npy output holds only the embeddings (row N = record N); write a .parquet file to keep "
                          f"the ids of {id_column!r}.")
    check_positive_int("batch_size", batch_size)
    check_positive_int("chunk_size", chunk_size)
    if saved_model is not None and (model is not None or max_length is not None):
        raise TfbertError("pass either a checkpoint (model, max_length) or an export (saved_model), not both: the "
                          "export has its own weights and max_length.")
    if output.exists() and not overwrite:
        raise TfbertError(f"{output} already exists; pass --overwrite / overwrite=True to replace it.")
    count = sum(1 for _ in read_corpus(input_path, column, id_column))  # also checks the columns up front
    output.parent.mkdir(parents=True, exist_ok=True)
    for stale in output.parent.glob(f".{output.name}.tmp-*"):  # left by a run killed while writing the output
        stale.unlink()
    work_dir = output.with_name(output.name + ".partial")
    if restart and work_dir.exists():
        shutil.rmtree(work_dir)

    if saved_model is not None:
        # Resolved once: a newer version appearing later must not be mixed in.
        function = SavedModelEmbedder(saved_model)
        engine = f"saved_model:{pathlib.Path(function.folder).resolve()}"
    else:
        encoder = build_encoder(model, max_length=max_length) if model is None or isinstance(model, str) else model
        function = embedder(encoder)
        engine = f"model:{model if isinstance(model, str) or model is None else encoder.name}:" \
                 f"{encoder.tokenizer.max_length}"
    manifest = _manifest(input_path, fmt, column, id_column, engine, chunk_size, count, function.width)
    if (work_dir / _MANIFEST).is_file():
        _check_resume(work_dir, manifest, output)
    else:
        work_dir.mkdir(exist_ok=True)
        write_json(work_dir / _MANIFEST, manifest)

    chunk_count = -(-count // chunk_size)
    done = [n for n in range(chunk_count) if _chunk_path(work_dir, n).is_file()]
    resumed = sum(min(chunk_size, count - n * chunk_size) for n in done)
    if done:
        logger.warning("resuming: %d of %d chunks (%d texts) already embedded in %s", len(done), chunk_count, resumed,
                       work_dir)
    embedding_started = time.monotonic()
    with _progress(count, resumed, progress) as bar:
        for number, (ids, texts) in enumerate(_chunks(read_corpus(input_path, column, id_column), chunk_size)):
            path = _chunk_path(work_dir, number)
            if path.is_file():
                continue
            embeddings = embed_batches(function, texts, batch_size, on_batch=bar.update)
            _save_chunk(path, ids, embeddings)
    chunk_files = [_chunk_path(work_dir, n) for n in range(chunk_count)]
    if output.suffix.lower() == ".npy":
        _write_npy(output, chunk_files, count, function.width)
    else:
        _write_parquet(output, chunk_files, function.width, string_ids=id_column is not None)
    shutil.rmtree(work_dir)
    finished = time.monotonic()
    return CorpusResult(output, count, function.width, resumed, finished - started, finished - embedding_started)
