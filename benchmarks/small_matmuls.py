"""The encoder's dense layers on a few rows, in each engine's matrix multiplication: batch 1's floor.

Issue 16 asks the float32 export's batch-1 latency to be at or below ONNX Runtime's. At batch 1 a
text is a dozen to a few hundred rows, and the default checkpoint's 24 dense layers (6 layers of
query/key/value 384x1152, attention output 384x384, intermediate 384x1536, output 1536x384) read its
42 MB of float32 weights for them. This times those 24 MatMul + bias adds, chained as the encoder
chains them (each layer's input is the previous layer's output), with the same random weights, in:
- TensorFlow: a `tf.function`, weights as variables (the float32 export's) and as constants, and
  with variables compiled by XLA (`jit_compile=True`);
- PyTorch: `torch.nn.functional.linear` under `inference_mode`;
- ONNX Runtime: a graph of MatMul and Add nodes, all graph optimisations (its MLAS GEMM).
Each engine runs `--threads` threads (default 2), in turns, best of 5 rounds of the p50 of 60 calls; the
result records the largest difference of each engine's output from ONNX Runtime's, relative to the largest output.

usage: python benchmarks/small_matmuls.py [--rows 1,16,64,256] [--threads 2]
       [--out benchmarks/results/small_matmuls.json]
`--threads 1` beside the default shows how each engine's GEMM scales from one core to two on a few rows.
Needs the bench extra: python -m pip install -e '.[test,bench]'
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from machine import machine_info

REPO = pathlib.Path(__file__).resolve().parents[1]
HIDDEN, INTERMEDIATE, LAYERS, THREADS = 384, 1536, 6, 2
SHAPES = ((HIDDEN, 3 * HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, INTERMEDIATE), (INTERMEDIATE, HIDDEN))


def weights(seed=0):
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(shape).astype(np.float32) * 0.05,
              rng.standard_normal(shape[1]).astype(np.float32) * 0.05) for shape in SHAPES] for _ in range(LAYERS)]


def tensorflow_engine(layers, constants, xla=False, threads=THREADS):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    make = tf.constant if constants else tf.Variable
    held = [[(make(kernel), make(bias)) for kernel, bias in layer] for layer in layers]

    @tf.function(jit_compile=xla)
    def run(x):
        for (qkv, qkv_bias), (out, out_bias), (inner, inner_bias), (down, down_bias) in held:
            q = tf.nn.bias_add(tf.matmul(x, qkv), qkv_bias)
            a = q[:, :HIDDEN] + q[:, HIDDEN:2 * HIDDEN] + q[:, 2 * HIDDEN:]
            c = tf.nn.bias_add(tf.matmul(tf.nn.bias_add(tf.matmul(a, out), out_bias), inner), inner_bias)
            x = x + tf.nn.bias_add(tf.matmul(c, down), down_bias)
        return x

    return lambda x: run(tf.constant(x)).numpy()


def torch_engine(layers, threads=THREADS):
    import torch

    torch.set_num_threads(threads)
    held = [[(torch.from_numpy(kernel.T.copy()), torch.from_numpy(bias)) for kernel, bias in layer] for layer in layers]
    linear = torch.nn.functional.linear

    def run(x):
        with torch.inference_mode():
            x = torch.from_numpy(x)
            for (qkv, qkv_bias), (out, out_bias), (inner, inner_bias), (down, down_bias) in held:
                q = linear(x, qkv, qkv_bias)
                a = q[:, :HIDDEN] + q[:, HIDDEN:2 * HIDDEN] + q[:, 2 * HIDDEN:]
                x = x + linear(linear(linear(a, out, out_bias), inner, inner_bias), down, down_bias)
            return x.numpy()

    return run


def onnxruntime_engine(layers, threads=THREADS):
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, current = [], [], "x"
    for index, layer in enumerate(layers):
        names = []
        for part, (kernel, bias) in enumerate(layer):
            names.append((f"w{index}_{part}", f"b{index}_{part}"))
            initializers += [numpy_helper.from_array(kernel, names[-1][0]), numpy_helper.from_array(bias, names[-1][1])]
        split = f"split{index}"
        initializers.append(numpy_helper.from_array(np.array([HIDDEN] * 3, np.int64), split))

        def dense(source, part, target, names=names):
            nodes.extend([helper.make_node("MatMul", [source, names[part][0]], [f"{target}_mm"]),
                          helper.make_node("Add", [f"{target}_mm", names[part][1]], [target])])

        dense(current, 0, f"q{index}")
        nodes.append(helper.make_node("Split", [f"q{index}", split], [f"q{index}_{k}" for k in range(3)], axis=1))
        nodes.append(helper.make_node("Sum", [f"q{index}_{k}" for k in range(3)], [f"a{index}"]))
        dense(f"a{index}", 1, f"o{index}")
        dense(f"o{index}", 2, f"c{index}")
        dense(f"c{index}", 3, f"d{index}")
        nodes.append(helper.make_node("Add", [current, f"d{index}"], [f"x{index}"]))
        current = f"x{index}"
    graph = helper.make_graph(nodes, "dense_layers",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, HIDDEN])],
                              [helper.make_tensor_value_info(current, TensorProto.FLOAT, [None, HIDDEN])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})[0]


def time_engines(engines, x, rounds=5, calls=60):
    """{engine: best p50 ms} over `rounds` rounds, engines in turns."""
    best = {key: float("inf") for key in engines}
    for _ in range(rounds):
        for key, run in engines.items():
            for _ in range(3):
                run(x)
            seconds = []
            for _ in range(calls):
                start = time.perf_counter()
                run(x)
                seconds.append(time.perf_counter() - start)
            best[key] = min(best[key], statistics.median(seconds) * 1000)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,16,64,256")
    parser.add_argument("--threads", type=int, default=THREADS, help="threads of each engine (default: 2)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "small_matmuls.json"))
    args = parser.parse_args()

    layers = weights()
    threads = args.threads
    engines = {"tensorflow, variables": tensorflow_engine(layers, constants=False, threads=threads),
               "tensorflow, constants": tensorflow_engine(layers, constants=True, threads=threads),
               "tensorflow, variables, XLA": tensorflow_engine(layers, constants=False, xla=True, threads=threads),
               "pytorch": torch_engine(layers, threads), "onnxruntime": onnxruntime_engine(layers, threads)}
    report = {"machine": machine_info(), "args": vars(args), "threads": threads, "rows": {}}
    for rows in map(int, args.rows.split(",")):
        x = np.random.default_rng(rows).standard_normal((rows, HIDDEN)).astype(np.float32)
        reference = engines["onnxruntime"](x)
        scale = float(np.abs(reference).max())
        differences = {key: float(np.abs(run(x) - reference).max()) / scale for key, run in engines.items()}
        milliseconds = time_engines(engines, x)
        flops = 2 * rows * LAYERS * sum(inputs * outputs for inputs, outputs in SHAPES)
        report["rows"][str(rows)] = {
            key: {"ms": round(value, 3), "gflops": round(flops / value / 1e6, 1),
                  "vs_onnxruntime": round(value / milliseconds["onnxruntime"], 2),
                  "max_diff_vs_onnxruntime": differences[key]} for key, value in milliseconds.items()}
        print(rows, json.dumps(report["rows"][str(rows)]), flush=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
