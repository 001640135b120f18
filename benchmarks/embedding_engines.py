"""Sentence-embedding speed of four engines on the default checkpoint, in one run, on the same texts.

Engines (each returns mean-pooled, L2-normalised sentence embeddings, from raw strings):
- tfbert: the exported SavedModel's `embed` signature (in-graph tokenizer, in-graph length groups),
  loaded with tensorflow + tensorflow_text as a server loads it;
- tfbert-nogroups: the same export's reusable `__call__` (one padded batch, no length groups);
- classic: transformers' Python `BertTokenizer` + PyTorch `BertModel` (the seed recipe), mean pooling in torch;
- classic-groups: the same, with the batch split into the length groups tfbert's `embed` uses;
- hf-tf: transformers' `TFBertTokenizer` + `TFBertModel` in one tf.function graph;
- onnxruntime: the same PyTorch weights exported to ONNX (torch.onnx, opset 17), run by ONNX Runtime
  (all graph optimisations) after `BertTokenizerFast`, as optimum does;
- onnxruntime-groups: the same, with tfbert's length groups.
The `-groups` peers get the advantage tfbert's `embed` has (the same rule: sort the batch by token count,
split it into up to 4 groups of at least 8 texts when that cuts the padded tokens by a fifth), so that a
ratio against them measures the engines, not the batching.

Measured in rounds: each engine in turn runs a block of the same batches (4 batches of 32, or 25 single
texts), so that the machine's noise falls on all of them. Blocks rather than single calls, because
ONNX Runtime's and PyTorch's worker threads spin for a while after each call (their defaults) and
would slow whichever engine ran right after them.
- throughput at batch 32 on a mixed-length corpus (Debian descriptions of 1 to 500+ tokens, in corpus
  order): sentences/s and tokens/s (real tokens, no padding);
- latency at batch 1: p50 and p99 over single texts;
- embedding a 10,000-text corpus: `tfbert embed-corpus` (the export, length-sorted batches of 32)
  against each engine looping over the corpus in batches of 32, in file order and sorted by length
  (as sentence-transformers' `encode` sorts);
- the tokenizer alone at batch 1 (the export's `tokenize` signature), p50;
- achieved GFLOP/s (the model's multiply-adds on real tokens x 2, over wall time) against the float32
  matmul peak of this machine measured in the same run.
Every engine's embeddings are checked against the classic recipe's (min cosine).

usage: python benchmarks/embedding_engines.py [--texts 1024] [--latency-texts 300] [--corpus 10000]
       [--engines tfbert,tfbert-nogroups,classic,classic-groups,hf-tf,onnxruntime,onnxruntime-groups]
       [--corpus-engines classic,onnxruntime] [--out benchmarks/results/embedding_engines.json]
Needs the test and bench extras: python -m pip install -e '.[test,bench]'
"""

import argparse
import json
import os
import pathlib
import random
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from machine import machine_info  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TFBERT_SHARED", REPO.parent / "shared"))
MAX_LENGTH = 512
THREADS = os.cpu_count()


def read_documents():
    """Debian long descriptions, one text a document (sentences joined): 1 to 500+ tokens."""
    documents, current = [], []
    with open(SHARED / "data" / "debian-descriptions.txt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                documents.append(" ".join(current))
                current = []
    if current:
        documents.append(" ".join(current))
    return documents


def length_groups(lengths, groups=None, min_group_size=None):
    """Row indices of each length group, by the rule of tfbert's `embed_in_length_groups` (and its
    constants, so the peers' groups cannot drift from tfbert's); None: one batch."""
    from tfbert.models.length_groups import GROUPS, MIN_GROUP_SIZE

    groups = GROUPS if groups is None else groups
    min_group_size = MIN_GROUP_SIZE if min_group_size is None else min_group_size
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    size = max(min_group_size, -(-len(lengths) // groups))
    parts = [order[start:start + size] for start in range(0, len(lengths), size)]
    grouped_tokens = sum(len(rows) * int(lengths[rows].max()) for rows in parts)
    return parts if grouped_tokens * 5 <= len(lengths) * int(lengths.max()) * 4 else None


def run_in_groups(run, batch, grouped):
    """run(dict of [batch, seq] arrays) -> [batch, width], on each length group's rows trimmed to its longest."""
    lengths = np.asarray(batch["attention_mask"]).sum(1)
    parts = length_groups(lengths) if grouped else None
    if parts is None:
        return run(batch)
    result = None
    for rows in parts:
        longest = int(lengths[rows].max())
        part = run({name: value[rows][:, :longest] for name, value in batch.items()})
        if result is None:
            result = np.zeros((len(lengths), part.shape[1]), np.float32)
        result[rows] = part
    return result


def mean_pool_numpy(hidden, mask):
    mask = mask[:, :, None].astype(np.float32)
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class Tfbert:
    name = "tfbert SavedModel"

    def __init__(self, folder):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        self.tf = tf
        self.loaded = tf.saved_model.load(str(folder))
        self.signature = self.loaded.signatures["embed"]

    def __call__(self, texts):
        return self.signature(text=self.tf.constant(texts))["sentence_embedding"].numpy()


class TfbertNoGroups(Tfbert):
    name = "tfbert SavedModel, no length groups"

    def __call__(self, texts):
        # The reusable __call__ computes the same embedding on the whole batch, padded once.
        return self.loaded(self.tf.constant(texts), training=False)["sentence_embedding"].numpy()


class Classic:
    name = "classic recipe (PyTorch)"

    def __init__(self, folder, grouped=False):
        import torch
        from transformers import BertModel, BertTokenizer

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.tokenizer = BertTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder).eval()
        self.grouped = grouped
        if grouped:
            self.name += ", length groups"

    def _embed(self, batch):
        torch = self.torch
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"][:, :, None].to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def __call__(self, texts):
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        return run_in_groups(self._embed, dict(batch), self.grouped)


class HfTensorflow:
    name = "HF TFBertTokenizer + TFBertModel"

    def __init__(self, folder):
        import tensorflow as tf
        from transformers import TFBertTokenizer

        from tfbert.checkpoints.checkpoint import load_checkpoint
        from tfbert.models.pooling import Pooling
        from tfbert.models.weights import load_bert_model

        self.tf = tf
        tokenizer = TFBertTokenizer.from_pretrained(folder, padding="longest", truncation=True, max_length=MAX_LENGTH)
        model = load_bert_model(load_checkpoint(folder))  # transformers' TFBertModel, weights from safetensors
        pooling = Pooling("mean", normalize=True)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def run(text):
            tokens = tokenizer(text)
            hidden = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           token_type_ids=tokens["token_type_ids"], training=False).last_hidden_state
            return pooling({"last_hidden_state": hidden, "attention_mask": tokens["attention_mask"]})

        self.run = run

    def __call__(self, texts):
        return self.run(self.tf.constant(texts)).numpy()


def onnx_export(folder, path):
    """transformers' PyTorch BertModel of `folder` as ONNX (torch.onnx, opset 17), batch and sequence
    dynamic, outputs last_hidden_state and pooler_output; -> path."""
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(folder).eval()
    sample = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(model, (sample, sample, torch.zeros_like(sample)), str(path), input_names=names,
                      output_names=["last_hidden_state", "pooler_output"], opset_version=17, dynamo=False,
                      dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names},
                                    "last_hidden_state": {0: "batch", 1: "seq"}, "pooler_output": {0: "batch"}})
    return path


def onnx_session(path):
    """An ONNX Runtime session on the CPU, all graph optimisations, a thread a core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntime:
    name = "ONNX Runtime"

    def __init__(self, folder, work, grouped=False):
        from transformers import BertTokenizerFast

        self.session = onnx_session(onnx_export(folder, pathlib.Path(work) / "bert.onnx"))
        self.tokenizer = BertTokenizerFast.from_pretrained(folder)
        self.grouped = grouped
        if grouped:
            self.name += ", length groups"

    def _embed(self, feeds):
        hidden = self.session.run(["last_hidden_state"], feeds)[0]
        return mean_pool_numpy(hidden, feeds["attention_mask"])

    def __call__(self, texts):
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
        return run_in_groups(self._embed, feeds, self.grouped)


def matmul_peak(seconds=3.0):
    """Float32 GFLOP/s of a 2048 x 2048 matmul, the best of TensorFlow (oneDNN) and NumPy (OpenBLAS)."""
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    best = {}
    for name, fn in {"tensorflow": lambda: tf.linalg.matmul(ta, ta).numpy(), "numpy": lambda: a @ a}.items():
        ta = tf.constant(a)
        fn()
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            runs += 1
        best[name] = 2 * 2048 ** 3 * runs / (time.perf_counter() - start) / 1e9
    return best


def model_flops(lengths, config):
    """Multiply-adds x 2 of BERT's encoder on sequences of the given lengths (no padding)."""
    hidden, intermediate, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    total = 0
    for length in lengths:
        projections = 4 * length * hidden * hidden + 2 * length * hidden * intermediate
        attention = 2 * length * length * hidden
        total += 2 * layers * (projections + attention)
    return total


def in_rounds(engines, batches, block):
    """Each engine runs `block` batches in turn until all are done; -> per-engine call times and outputs."""
    seconds = {key: [] for key in engines}
    outputs = {key: [] for key in engines}
    for start in range(0, len(batches), block):
        for key, engine in engines.items():
            for batch in batches[start:start + block]:
                began = time.perf_counter()
                outputs[key].append(engine(batch))
                seconds[key].append(time.perf_counter() - began)
    return seconds, outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1024, help="texts for the batch-32 throughput (default: 1024)")
    parser.add_argument("--latency-texts", type=int, default=300, help="single texts for the batch-1 latency")
    parser.add_argument("--corpus", type=int, default=10000, help="texts of the corpus-embedding run")
    parser.add_argument("--engines", default="tfbert,tfbert-nogroups,classic,classic-groups,hf-tf,onnxruntime,onnxruntime-groups")
    parser.add_argument("--corpus-engines", default="classic,onnxruntime",
                        help="engines that also loop over the whole corpus (each takes minutes)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embedding_engines.json"))
    args = parser.parse_args()

    import tensorflow as tf

    from tfbert.checkpoints.checkpoint import load_checkpoint
    from tfbert.jobs.embed_corpus import embed_corpus
    from tfbert.models.encoder import build_encoder
    from tfbert.serving.export import export_saved_model

    checkpoint = load_checkpoint()
    folder = str(checkpoint.folder)
    config = json.loads((checkpoint.folder / "config.json").read_text())
    documents = read_documents()
    random.Random(0).shuffle(documents)
    throughput_texts = documents[:args.texts]
    latency_texts = documents[args.texts:args.texts + args.latency_texts]
    corpus_texts = documents[:args.corpus]

    with tempfile.TemporaryDirectory() as work:
        export = export_saved_model(build_encoder(), pathlib.Path(work) / "minilm-l6-uncased", warmup=False)
        factories = {"tfbert": lambda: Tfbert(export), "tfbert-nogroups": lambda: TfbertNoGroups(export),
                     "classic": lambda: Classic(folder), "classic-groups": lambda: Classic(folder, grouped=True),
                     "hf-tf": lambda: HfTensorflow(folder), "onnxruntime": lambda: OnnxRuntime(folder, work),
                     "onnxruntime-groups": lambda: OnnxRuntime(folder, work, grouped=True)}
        engines = {key: factories[key]() for key in args.engines.split(",")}
        reference = engines.get("classic") or Classic(folder)
        tokenizer = reference.tokenizer
        lengths = [len(ids) for ids in tokenizer(throughput_texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]]
        report = {"machine": machine_info(), "args": vars(args),
                  "matmul_peak_gflops": matmul_peak(), "max_length": MAX_LENGTH,
                  "throughput_texts": len(throughput_texts), "mean_tokens": float(np.mean(lengths)),
                  "max_tokens": int(np.max(lengths)), "engines": {}}
        print(f"matmul peak: {report['matmul_peak_gflops']}", file=sys.stderr)
        batches = [throughput_texts[i:i + 32] for i in range(0, len(throughput_texts), 32)]
        flops = model_flops(lengths, config)

        # Batch 32; the first batch of each engine warms it up (graph building, allocators).
        for engine in engines.values():
            engine(batches[0])
        seconds, outputs = in_rounds(engines, batches, block=4)
        expected = np.concatenate(outputs["classic"]) if "classic" in outputs else reference(throughput_texts)
        for key in engines:
            embeddings = np.concatenate(outputs[key])
            total = float(np.sum(seconds[key]))
            report["engines"][key] = {
                "name": engines[key].name,
                "batch32_sentences_per_s": len(throughput_texts) / total,
                "batch32_tokens_per_s": sum(lengths) / total,
                "gflops": flops / total / 1e9,
                "min_cosine_vs_classic": float(np.sum(embeddings * expected, axis=1).min()),
            }
            print(key, report["engines"][key], file=sys.stderr)

        # Batch 1.
        latencies, _ = in_rounds(engines, [[text] for text in latency_texts], block=25)
        for key in engines:
            values = np.asarray(latencies[key]) * 1000
            report["engines"][key].update({"batch1_p50_ms": float(np.percentile(values, 50)),
                                           "batch1_p99_ms": float(np.percentile(values, 99))})
            print(key, "p50", np.percentile(values, 50), "p99", np.percentile(values, 99), file=sys.stderr)

        # The tokenizer alone at batch 1: the export's tokenize signature, in the same rounds.
        if "tfbert" in engines:
            tokenize = engines["tfbert"].loaded.signatures["tokenize"]
            tokenizer_only = {"tokenize": lambda texts: tokenize(text=tf.constant(texts))["input_ids"].numpy()}
            tokenize_seconds, _ = in_rounds(tokenizer_only, [[text] for text in latency_texts], block=25)
            report["tfbert_tokenize_batch1_p50_ms"] = float(np.percentile(np.asarray(tokenize_seconds["tokenize"]) * 1000, 50))
            print("tokenize p50", report["tfbert_tokenize_batch1_p50_ms"], file=sys.stderr)

        if not args.corpus:
            return finish(report, args.out)
        # A whole corpus: embed-corpus on the export, and each engine looping over batches of 32 in file order.
        corpus = pathlib.Path(work) / "corpus.txt"
        corpus.write_text("".join(text.replace("\n", " ") + "\n" for text in corpus_texts), encoding="utf-8")
        result = embed_corpus(corpus, pathlib.Path(work) / "corpus.npy", saved_model=export.parent, progress=False)
        report["corpus"] = {"texts": len(corpus_texts), "embed_corpus_s": result.seconds,
                            "embed_corpus_embedding_s": result.embed_seconds}
        print("embed-corpus", result.seconds, file=sys.stderr)
        for key in args.corpus_engines.split(","):
            engine = engines[key]
            start = time.perf_counter()
            for i in range(0, len(corpus_texts), 32):
                engine(corpus_texts[i:i + 32])
            report["corpus"][f"{key}_loop_s"] = time.perf_counter() - start
            # Sorted by length first, as sentence-transformers' encode does (the sort is timed too).
            start = time.perf_counter()
            ordered = sorted(corpus_texts, key=len)
            for i in range(0, len(ordered), 32):
                engine(ordered[i:i + 32])
            report["corpus"][f"{key}_sorted_loop_s"] = time.perf_counter() - start
            print(key, "corpus loop", report["corpus"][f"{key}_loop_s"], "sorted", report["corpus"][f"{key}_sorted_loop_s"],
                  file=sys.stderr)

    finish(report, args.out)


def finish(report, out):
    pathlib.Path(out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
