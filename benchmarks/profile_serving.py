"""Where `serving_default`'s time goes: op-level timing of an export as TF Serving runs it.

TF Serving loads a SavedModel into a TF1 `Session` (C++ `LoadSavedModel`) and calls a signature with
`Session::Run`. This benchmark does the same from Python (`tf.compat.v1.saved_model.load` into a
`Session`), so Grappler, the oneDNN rewrites and function inlining are the ones a server gets. It runs
`serving_default` on batches of real Debian descriptions, untraced for wall time, then with
`RunOptions.FULL_TRACE` for each op's time, and reports:
- wall time per call (p50), at each batch size and text kind;
- time by op type, and by stage (tokenizer, embeddings, each encoder part, pooler, other), in ms
  per call, summed over the two cores' work (so it can exceed wall time);
- the number of ops the executor runs per call, in all and by stage (per-op overhead weighs at batch 1);
- the fused ops present in the graph that runs (Grappler remapper and oneDNN: `_MklFusedMatMul`,
  `_MklLayerNorm`, `_MklFusedBatchMatMulV2`, `_FusedMatMul`, ...), counted from the partition graphs;
- the machine's matrix-multiplication speed in float32 and bfloat16 (TensorFlow, BERT's shapes), which
  says whether a bfloat16 export can pay on this CPU.

usage: python benchmarks/profile_serving.py [--graphs fused,transformers,bfloat16] [--export PATH] [--batches 1,32]
       [--calls 20] [--signature serving_default] [--out benchmarks/results/profile_serving.json]
Without --export, the default checkpoint is exported into a temporary folder once per graph: "fused"
(the default export, `tfbert.models.inference`), "transformers" (`fused=False`: transformers' layers
as they are) and "bfloat16" (`precision="bfloat16"`).
"""

import argparse
import collections
import itertools
import json
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from embedding_engines import read_documents  # noqa: E402
from machine import machine_info  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]

# Stage of an op, from its (inlined) node name; the first pattern that matches wins.
STAGES = (
    ("pooler", re.compile(r"/pooler/")),
    ("embeddings", re.compile(r"/embeddings/")),
    ("attention: q/k/v", re.compile(r"/attention/self/(query|key|value|query_key_value)/")),
    ("attention: scores, softmax, context", re.compile(r"/attention/self/")),
    ("attention: output + layer norm", re.compile(r"/attention/output/")),
    ("feed-forward: intermediate", re.compile(r"/intermediate/")),
    ("feed-forward: output + layer norm", re.compile(r"/layer_._\d+/output/")),
    ("encoder: other", re.compile(r"/encoder/")),
    ("tokenizer", re.compile(r"tokeniz|wordpiece|normaliz|ragged|lookup|segment|chartable|unicode", re.I)),
)
IGNORED_OPS = {"_SOURCE", "_SINK", "NoOp", "_Recv", "_Send", "_Arg", "_Retval"}


def stage_of(node_name):
    for stage, pattern in STAGES:
        if pattern.search(node_name):
            return stage
    return "other"


GRAPHS = {"fused": {}, "transformers": {"fused": False}, "bfloat16": {"precision": "bfloat16"}}


def export_default(encoder, folder, graph):
    import tfbert

    return tfbert.export_saved_model(encoder, folder, version=1, warmup=False, **GRAPHS[graph])


def text_kinds():
    """Debian descriptions in two kinds, as issue 16's table: whole long descriptions, and first sentences."""
    documents = read_documents()
    return {"long descriptions": documents, "first sentences": [document.split(". ")[0] for document in documents]}


def profile(session, signature, texts, batch_size, calls):
    import tensorflow as tf

    feed_name = signature.inputs["text"].name
    fetches = {key: value.name for key, value in signature.outputs.items()}
    batches = [texts[begin:begin + batch_size] for begin in range(0, calls * batch_size, batch_size)]
    for batch in batches[:3]:  # warm-up: Grappler and oneDNN primitive creation happen on first runs
        session.run(fetches, {feed_name: batch})
    wall = []
    for batch in batches:
        start = time.perf_counter()
        session.run(fetches, {feed_name: batch})
        wall.append((time.perf_counter() - start) * 1000)

    by_op, by_stage, counts, stage_counts = collections.Counter(), collections.Counter(), [], collections.Counter()
    fused, graph_ops = collections.Counter(), collections.Counter()
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE, output_partition_graphs=True)
    for index, batch in enumerate(batches):
        metadata = tf.compat.v1.RunMetadata()
        session.run(fetches, {feed_name: batch}, options=options, run_metadata=metadata)
        executed = 0
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                op = node.timeline_label.split("(")[0].split(" = ")[-1].strip() if node.timeline_label else ""
                op = op or node.node_name.split(":")[0]
                if op in IGNORED_OPS or node.node_name in IGNORED_OPS:
                    continue
                milliseconds = node.op_end_rel_micros / 1000
                by_op[op] += milliseconds
                by_stage[stage_of(node.node_name)] += milliseconds
                stage_counts[stage_of(node.node_name)] += 1
                executed += 1
        counts.append(executed)
        if index == 0:
            for graph in metadata.partition_graphs:
                for node in itertools.chain(graph.node, *(function.node_def for function in graph.library.function)):
                    graph_ops[node.op] += 1
                    if node.op.startswith("_") and node.op not in IGNORED_OPS:
                        fused[node.op] += 1
    per_call = len(batches)
    return {
        "batch_size": batch_size,
        "calls": len(batches),
        "wall_ms_p50": statistics.median(wall),
        "wall_ms_min": min(wall),
        "ops_executed_per_call": statistics.median(counts),
        "op_time_ms_per_call": round(sum(by_op.values()) / per_call, 3),
        "by_stage_ms": {stage: round(ms / per_call, 3) for stage, ms in by_stage.most_common()},
        "ops_executed_by_stage": {stage: count / per_call for stage, count in stage_counts.most_common()},
        "by_op_type_ms": {op: round(ms / per_call, 3) for op, ms in by_op.most_common(40)},
        "fused_ops_in_graph": dict(fused.most_common()),
        "graph_op_counts": dict(graph_ops.most_common(60)),
    }


def matmul_speed(rounds=20):
    """GFLOP/s of TensorFlow's MatMul in float32 and bfloat16 on BERT-like shapes [tokens, in] x [in, out]."""
    import tensorflow as tf

    speeds = {}
    for tokens, width, out in ((2048, 384, 1536), (4096, 1024, 1024)):
        for dtype in (tf.float32, tf.bfloat16):
            a, b = (tf.cast(tf.random.normal(shape), dtype) for shape in ([tokens, width], [width, out]))
            multiply = tf.function(tf.matmul)
            multiply(a, b).numpy()
            start = time.perf_counter()
            for _ in range(rounds):
                product = multiply(a, b)
            product.numpy()
            seconds = (time.perf_counter() - start) / rounds
            speeds[f"{tokens}x{width}x{out} {dtype.name}"] = round(2 * tokens * width * out / seconds / 1e9, 1)
    return speeds


def main():
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", default=",".join(GRAPHS))
    parser.add_argument("--export", help="a version folder to profile instead of fresh exports of the default checkpoint")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "profile_serving.json"))
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops, as a server's build does)

    results = {"machine": machine_info(), "args": vars(args), "matmul_gflops": matmul_speed(), "runs": []}
    print(f"matmul GFLOP/s: {results['matmul_gflops']}", flush=True)
    kinds = text_kinds()
    with tempfile.TemporaryDirectory() as scratch:
        if args.export:
            exports = {"given": pathlib.Path(args.export)}
        else:
            import tfbert

            encoder = tfbert.build_encoder()
            exports = {graph: export_default(encoder, pathlib.Path(scratch) / graph, graph) for graph in args.graphs.split(",")}
        for graph_kind, export in exports.items():
            with tf.Graph().as_default(), tf.compat.v1.Session() as session:
                meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(export))
                signature = meta_graph.signature_def[args.signature]
                for kind, texts in kinds.items():
                    for batch_size in (int(size) for size in args.batches.split(",")):
                        run = {"graph": graph_kind, "texts": kind, **profile(session, signature, texts, batch_size, args.calls)}
                        results["runs"].append(run)
                        print(f"{graph_kind}, {kind}, batch {batch_size}: {run['wall_ms_p50']:.1f} ms p50, "
                              f"{run['ops_executed_per_call']:.0f} ops; by stage {run['by_stage_ms']}", flush=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
