"""Attention in one piece against attention in chunks (`tfbert.models.attention`), at batch 1 and 32.

Times `attend` alone, as a `tf.function`, on random query/key/value of the default checkpoint's shape
(12 heads of 32), no padding, at several sequence lengths: in one piece (`chunked=False`) and in
chunks of (text, head) pairs for each chunk size in `--chunk-mb`, two chunks in flight. Engines in
turns, best of 3 rounds of the median of `--calls` calls. The result records the machine and, per
length, each variant's milliseconds and its ratio to one piece.

usage: python benchmarks/attention_chunks.py [--lengths 64,128,256,512] [--batches 1,32] [--chunk-mb 1,4,16]
       [--out benchmarks/results/attention_chunks.json]
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from machine import machine_info  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
HEADS, HEAD_SIZE = 12, 32


def variants(chunk_megabytes):
    import tensorflow as tf

    from tfbert.models import attention

    def make(chunked, chunk_bytes=None):
        @tf.function
        def run(qkv, mask_bias):
            if chunk_bytes is not None:
                attention.CHUNK_BYTES = chunk_bytes  # read while tracing
            shape = tf.shape(qkv)
            return attention.attend(qkv, mask_bias, shape[0], shape[1], HEADS, HEAD_SIZE, tf.float32, chunked)

        return run

    found = {"one piece": make(False)}
    for megabytes in chunk_megabytes:
        found[f"chunks of {megabytes} MB"] = make(True, megabytes << 20)
    return found


def main():
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="64,128,256,512")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--chunk-mb", default="1,4,16")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "attention_chunks.json"))
    args = parser.parse_args()
    import tensorflow as tf

    runs = variants([int(value) for value in args.chunk_mb.split(",")])
    report = {"machine": machine_info(), "args": vars(args), "runs": []}
    for batch in map(int, args.batches.split(",")):
        for length in map(int, args.lengths.split(",")):
            rng = np.random.default_rng(length)
            qkv = tf.constant(rng.standard_normal((batch, length, 3 * HEADS * HEAD_SIZE)).astype(np.float32))
            mask_bias = tf.zeros([batch, 1, 1, length])
            reference = runs["one piece"](qkv, mask_bias).numpy()
            best, differences = {}, {}
            for _ in range(3):
                for name, run in runs.items():
                    differences[name] = float(np.abs(run(qkv, mask_bias).numpy() - reference).max())
                    seconds = []
                    for _ in range(args.calls):
                        start = time.perf_counter()
                        run(qkv, mask_bias).numpy()
                        seconds.append(time.perf_counter() - start)
                    best[name] = min(best.get(name, float("inf")), statistics.median(seconds) * 1000)
            result = {"batch": batch, "length": length,
                      "ms": {name: round(value, 3) for name, value in best.items()},
                      "vs_one_piece": {name: round(value / best["one piece"], 2) for name, value in best.items()},
                      "max_abs_diff_vs_one_piece": differences}
            report["runs"].append(result)
            print(json.dumps(result), flush=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
