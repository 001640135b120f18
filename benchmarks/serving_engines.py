"""Serving speed of every engine a tfbert user would otherwise pick, on the same batches of raw strings.

Issue 16's benchmark. Every engine starts from raw strings and returns BERT's `last_hidden_state` and
`pooled_output` for the default checkpoint (max_length 512), the tokenizer included:
- tfbert float32: the default export's `serving_default`, loaded as TF Serving loads it
  (`tf.compat.v1.saved_model.load` into a `Session`, so Grappler's and oneDNN's rewrites are a server's);
- tfbert bfloat16: the same, exported with `precision="bfloat16"`;
- PyTorch float32: transformers' `BertModel` after `AutoTokenizer` (the fast, Rust tokenizer);
- PyTorch bfloat16: the same inside `torch.autocast("cpu", dtype=torch.bfloat16)`;
- ONNX Runtime float32: the same weights exported by `torch.onnx` (opset 17), all graph optimisations,
  after the fast tokenizer;
- ONNX Runtime int8: that model through `onnxruntime.quantization.quantize_dynamic` (int8 weights).

Workloads (Debian descriptions, shuffled with a fixed seed; the same texts for every engine):
- batch 32, mixed lengths: batches in corpus order, padded to their longest, as a server's batches come;
- batch 32, same length: batches of texts with (nearly) equal token counts, taken across the range of
  lengths, so padding is no factor;
  each on whole long descriptions (1 to 512 tokens) and on their first sentences;
- batch 32, new batches: mixed lengths as above, but each round on texts no round has seen, so that
  every batch brings token counts (matrix shapes) the engine may not have met: a server's steady state,
  where kernels compiled for a shape (oneDNN's primitives) are reused only if the shape comes back;
- batch 1: single texts of both kinds, p50 and p99 latency.
Engines run in turns, each a whole workload (or a block of 25 single texts), for 3 rounds; batch 32
reports the best round (texts/s), batch 1 the percentiles over all rounds. Every engine's outputs are
compared with the classic recipe's (Python `BertTokenizer`, PyTorch `BertModel`, float32) on the same
batch: the largest difference of a real token's hidden state, the smallest cosine of mean-pooled
sentence embeddings, and the batches where the engine's tokenizer gave other tokens. The result also records the
machine (CPU model and flags), the library versions, and the machine's matmul speed in float32 and
bfloat16 (TensorFlow and PyTorch, BERT's shapes), which says what bfloat16 can gain on this CPU.

`--tf-threads INTRA,INTER` gives the tfbert engines' Sessions the thread settings of TF Serving's
`--tensorflow_intra_op_parallelism` and `--tensorflow_inter_op_parallelism` (default 0,0: TensorFlow's own,
as many threads as cores for each). `--tf-threads 1,2` on 2 cores runs each op on one core and two at once:
the setting tfbert's exports are made for (tfbert.models.streams). The other engines keep their own settings.

`--exports NAME=FOLDER,...` adds exports already on disk (a SavedModel version folder, say one written
by an earlier commit of tfbert) as engines of their own, so that a change is measured against what it
changes in the same run.

usage: python benchmarks/serving_engines.py [--engines tfbert,tfbert-bf16,torch,torch-bf16,ort,ort-int8]
       [--exports NAME=FOLDER,...] [--tf-threads 0,0] [--texts 256] [--latency-texts 100] [--rounds 3]
       [--out benchmarks/results/serving_engines.json]
Needs the bench extra: python -m pip install -e '.[test,bench]'
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

from embedding_engines import mean_pool_numpy, onnx_export, onnx_session  # noqa: E402
from machine import machine_info  # noqa: E402
from profile_serving import matmul_speed as tensorflow_matmul_speed  # noqa: E402
from profile_serving import text_kinds  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
MAX_LENGTH = 512
THREADS = os.cpu_count()
NEW_BATCHES = "new batches"
ENGINES = ("tfbert", "tfbert-bf16", "torch", "torch-bf16", "ort", "ort-int8")
TF_THREADS = {"intra_op_parallelism_threads": 0, "inter_op_parallelism_threads": 0}  # main() sets --tf-threads


class TfbertServing:
    """A tfbert export's `serving_default` in a TF1 Session, as TF Serving runs it."""

    def __init__(self, export, name):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops, as a server's build does)

        self.name = name
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=tf.compat.v1.ConfigProto(**TF_THREADS))
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(self.session, ["serve"], str(export))
        signature = meta_graph.signature_def["serving_default"]
        self.feed = signature.inputs["text"].name
        self.fetches = [signature.outputs["last_hidden_state"].name, signature.outputs["pooled_output"].name]

    def __call__(self, texts):
        return self.session.run(self.fetches, {self.feed: texts})


class Torch:
    def __init__(self, folder, bfloat16=False):
        import torch
        from transformers import AutoTokenizer, BertModel

        torch.set_num_threads(THREADS)
        self.torch, self.bfloat16 = torch, bfloat16
        self.name = "PyTorch, autocast bfloat16" if bfloat16 else "PyTorch float32"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder).eval()

    def __call__(self, texts):
        torch = self.torch
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            outputs = self.model(**batch)
        return outputs.last_hidden_state.float().numpy(), outputs.pooler_output.float().numpy()


class OnnxRuntime:
    def __init__(self, folder, model_path, name):
        from transformers import AutoTokenizer

        self.session = onnx_session(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.name = name

    def __call__(self, texts):
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
        return self.session.run(["last_hidden_state", "pooler_output"], feeds)


def build_engines(keys, folder, work, exports=()):
    import tfbert

    engines, encoder = {}, None
    for named in exports:
        name, _, path = named.partition("=")
        engines[f"export:{name}"] = TfbertServing(path, f"tfbert export {name} ({path})")
    for key in keys:
        if key.startswith("tfbert"):
            encoder = encoder or tfbert.build_encoder()
            precision = "bfloat16" if key.endswith("bf16") else "float32"
            export = tfbert.export_saved_model(encoder, pathlib.Path(work) / key, version=1, warmup=False,
                                               precision=precision)
            engines[key] = TfbertServing(export, f"tfbert export, {precision}")
        elif key.startswith("torch"):
            engines[key] = Torch(folder, bfloat16=key.endswith("bf16"))
        elif key.startswith("ort"):
            path = pathlib.Path(work) / "bert.onnx"
            if not path.exists():
                onnx_export(folder, path)
            name = "ONNX Runtime float32"
            if key.endswith("int8"):
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantized = pathlib.Path(work) / "bert-int8.onnx"
                quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
                path, name = quantized, "ONNX Runtime, dynamic int8"
            engines[key] = OnnxRuntime(folder, path, name)
        else:
            raise SystemExit(f"unknown engine {key!r}; choose from {', '.join(ENGINES)}")
    return engines


def workloads(tokenizer, texts_per_workload, latency_texts, rounds):
    """{name: list of batches (lists of texts)}: batch-32 workloads of both kinds and both length mixes,
    the new-batches ones (`rounds` times the texts: each round runs its own, see run_workload), and
    the batch-1 ones."""
    result = {}
    for kind, texts in text_kinds().items():
        random.Random(0).shuffle(texts)  # the same order for both kinds: a first sentence sits beside its text
        mixed = texts[:texts_per_workload]
        result[f"{kind}, mixed lengths, batch 32"] = [mixed[i:i + 32] for i in range(0, len(mixed), 32)]
        # Same length: sort a larger pool by token count; take runs of 32 spread evenly over the range.
        pool = texts[:8 * texts_per_workload]
        lengths = [len(ids) for ids in tokenizer(pool, truncation=True, max_length=MAX_LENGTH)["input_ids"]]
        ordered = [pool[i] for i in np.argsort(lengths, kind="stable")]
        starts = np.linspace(0, len(ordered) - 32, texts_per_workload // 32).astype(int)
        result[f"{kind}, same length, batch 32"] = [ordered[start:start + 32] for start in starts]
        single = texts[texts_per_workload:texts_per_workload + latency_texts]
        result[f"{kind}, batch 1"] = [[text] for text in single]
        unseen = texts[8 * texts_per_workload:8 * texts_per_workload + rounds * texts_per_workload]
        result[f"{kind}, {NEW_BATCHES}, batch 32"] = [unseen[i:i + 32] for i in range(0, len(unseen), 32)]
    return result


def check(outputs, reference, attention_mask):
    """(largest difference of a real token's hidden state, smallest cosine of mean-pooled embeddings)
    against the reference's outputs; None when the engine's tokenizer gave other tokens (another shape)."""
    hidden, expected = np.asarray(outputs[0], np.float32), reference[0]
    if hidden.shape != expected.shape:
        return None
    largest = float(np.abs((hidden - expected) * attention_mask[:, :, None]).max())
    cosines = np.sum(mean_pool_numpy(hidden, attention_mask) * mean_pool_numpy(expected, attention_mask), axis=1)
    return largest, float(cosines.min())


def run_workload(engines, reference, batches, rounds, new_batches=False):
    """Each engine in turn runs the workload (batch 32: all of it; batch 1: blocks of 25 texts), `rounds`
    times; the first round's outputs are checked against the reference's. new_batches: `batches` holds
    `rounds` equal parts, and each round runs its own, all of them checked."""
    single = len(batches[0]) == 1
    expected = [reference(batch) for batch in batches]
    per_round = len(batches) // rounds if new_batches else len(batches)
    block = 25 if single else per_round
    seconds = {key: [] for key in engines}  # batch 1: each call; batch 32: each round
    accuracy = {key: {"max_abs_diff": 0.0, "min_cosine": 1.0, "batches_with_other_tokens": 0} for key in engines}
    for round_ in range(rounds):
        first = round_ * per_round if new_batches else 0
        for start in range(first, first + per_round, block):
            for key, engine in engines.items():
                outputs, calls = [], []
                for batch in batches[start:start + block]:
                    began = time.perf_counter()
                    outputs.append(engine(batch))
                    calls.append(time.perf_counter() - began)
                seconds[key].extend(calls) if single else seconds[key].append(sum(calls))
                for index, output in enumerate(outputs if round_ == 0 or new_batches else [], start):
                    checked = check(output, expected[index][:2], expected[index][2])
                    if checked is None:
                        accuracy[key]["batches_with_other_tokens"] += 1
                        continue
                    accuracy[key]["max_abs_diff"] = max(accuracy[key]["max_abs_diff"], checked[0])
                    accuracy[key]["min_cosine"] = min(accuracy[key]["min_cosine"], checked[1])
    results = {}
    for key in engines:
        result = dict(accuracy[key])
        if single:
            milliseconds = np.asarray(seconds[key]) * 1000
            result.update({"p50_ms": float(np.percentile(milliseconds, 50)),
                           "p99_ms": float(np.percentile(milliseconds, 99)), "calls": len(milliseconds)})
        else:
            texts = sum(len(batch) for batch in batches[:per_round])
            result.update({"texts_per_s": texts / min(seconds[key]),
                           "texts_per_s_rounds": [texts / value for value in seconds[key]]})
        results[key] = result
    return results


class Reference:
    """The classic recipe the outputs are checked against: Python `BertTokenizer`, PyTorch `BertModel`,
    float32. -> (last_hidden_state, pooled_output, attention_mask)."""

    def __init__(self, folder):
        import torch
        from transformers import BertModel, BertTokenizer

        self.torch = torch
        self.tokenizer = BertTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder).eval()

    def __call__(self, texts):
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with self.torch.inference_mode():
            outputs = self.model(**batch)
        return outputs.last_hidden_state.numpy(), outputs.pooler_output.numpy(), batch["attention_mask"].numpy()


def matmul_speed(rounds=20):
    """GFLOP/s of matrix multiplication in float32 and bfloat16: TensorFlow's on BERT-like shapes
    (profile_serving.py's), PyTorch's on [4096, 1024] x [1024, 1024]."""
    import torch

    speeds = {f"tensorflow {shape}": speed for shape, speed in tensorflow_matmul_speed(rounds).items()}
    shape = (4096, 1024, 1024)
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(shape[:2]).to(dtype), torch.randn(shape[1:]).to(dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(rounds):
            a @ b
        seconds = (time.perf_counter() - start) / rounds
        speeds[f"torch {'x'.join(map(str, shape))} {str(dtype).split('.')[-1]}"] = round(
            2 * shape[0] * shape[1] * shape[2] / seconds / 1e9, 1)
    return speeds


def main():
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--exports", default="", help="NAME=FOLDER,...: SavedModel version folders to run too")
    parser.add_argument("--tf-threads", default="0,0", metavar="INTRA,INTER",
                        help="the tfbert Sessions' intra-op and inter-op threads, as TF Serving's flags (default: 0,0)")
    parser.add_argument("--texts", type=int, default=256, help="texts in each batch-32 workload (default: 256)")
    parser.add_argument("--latency-texts", type=int, default=100, help="single texts of each kind (default: 100)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving_engines.json"))
    args = parser.parse_args()
    TF_THREADS.update(zip(TF_THREADS, (int(value) for value in args.tf_threads.split(","))))
    # A Session's thread settings hold only in a process whose TensorFlow runtime they start (TF Serving's
    # case); here TensorFlow runs eagerly first (matmul speed, exports), so the environment sets them too.
    os.environ["TF_NUM_INTRAOP_THREADS"], os.environ["TF_NUM_INTEROP_THREADS"] = map(str, TF_THREADS.values())

    from transformers import AutoTokenizer

    from tfbert.checkpoints.checkpoint import load_checkpoint

    folder = str(load_checkpoint().folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    report = {"machine": machine_info(), "args": vars(args), "matmul_gflops": matmul_speed(), "workloads": {}}
    print(f"matmul GFLOP/s: {report['matmul_gflops']}", flush=True)
    loads = workloads(tokenizer, args.texts, args.latency_texts, args.rounds)
    with tempfile.TemporaryDirectory() as work:
        engines = build_engines([key for key in args.engines.split(",") if key], folder, work,
                                [named for named in args.exports.split(",") if named])
        reference = Reference(folder)
        report["engines"] = {key: engine.name for key, engine in engines.items()}
        for engine in engines.values():  # warm-up: graph rewrites, kernel and primitive creation
            warm_up = loads["long descriptions, mixed lengths, batch 32"][:1] + loads["first sentences, batch 1"][:10]
            for batch in warm_up:
                engine(batch)
        for load, batches in loads.items():
            report["workloads"][load] = run_workload(engines, reference, batches, args.rounds, NEW_BATCHES in load)
            print(load, json.dumps(report["workloads"][load]), flush=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
