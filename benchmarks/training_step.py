"""Where a fine-tuning step's time goes, by training precision: step time and time by op type.

Builds the default checkpoint's classifier (`tfbert.build_classifier`, 8 labels, max_length 128) once
per set-up and trains each, in turns, on the same batches of 32 Debian descriptions (debian-sections'
first training texts, padded to 128 tokens so that every step computes as much):
- "float32";
- "bfloat16": `precision="bfloat16"`, as `tfbert finetune --precision bfloat16` trains;
- "float32, transformers' layers" and "bfloat16, transformers' layers": the same built without
  `use_training_ops` (tfbert.models.training_ops), so with transformers' GELU and Keras' dropout: the
  ablation of tfbert's training kernels.
Each round trains every set-up for `--steps` steps; a step's time is its `on_train_batch_begin` to
`on_train_batch_end` (the optimizer update included, `fit`'s start and end excluded), and a round's
is the median of its steps. The speed-ups are the medians over rounds of each round's float32 step
time over the set-up's, so that the machine's slow and fast moments fall on all of them. Then one
epoch of each runs under TensorFlow's profiler, for the time by op type, summed over threads (so it
can exceed the step's wall time) and divided by the steps; "XLA executable" is the runs of
XLA-compiled functions (tfbert's GELU gradient). Last, a child process trains the bfloat16
set-up under `ONEDNN_VERBOSE=1` and counts, per step, the oneDNN kernels (primitive and
implementation) its ops ran: `brg_matmul:avx10_1_512_amx` is a matrix multiplication on AMX.

usage: python benchmarks/training_step.py [--steps 4] [--rounds 8] [--profile-steps 3]
       [--out benchmarks/results/training_step.json]
"""

import argparse
import collections
import contextlib
import glob
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_debian import read
from machine import machine_info

REPO = pathlib.Path(__file__).resolve().parents[1]
ABLATION = ", transformers' layers"
SETUPS = ("float32", "bfloat16", "float32" + ABLATION, "bfloat16" + ABLATION)
BATCH, MAX_LENGTH = 32, 128


@contextlib.contextmanager
def transformers_layers():
    """The ablation: builds without `use_training_ops`."""
    from tfbert.models import backbone

    kept = backbone.use_training_ops
    backbone.use_training_ops = lambda model: None
    try:
        yield
    finally:
        backbone.use_training_ops = kept


def build(setup, labels):
    from tfbert.models.classifier import build_classifier

    precision = setup.split(",")[0]
    ablation = transformers_layers() if setup.endswith(ABLATION) else contextlib.nullcontext()
    with ablation:
        model = build_classifier(labels=labels, max_length=MAX_LENGTH, padding="max_length", precision=precision)
    model.compile(train_steps=10_000)
    return model


def profiled_events(model, data):
    """[(event name, milliseconds)] of one epoch of `model.fit(data)` under TensorFlow's profiler; a TF
    op's event is named "scope/op_name:OpType"."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(data, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        (path,) = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        space = xplane_pb2.XSpace()
        space.ParseFromString(pathlib.Path(path).read_bytes())
    return [(plane.event_metadata[event.metadata_id].name, event.duration_ps / 1e9)
            for plane in space.planes for line in plane.lines for event in line.events]


def op_times(model, data, steps):
    """{op type: ms per step}, summed over threads, from one epoch under TensorFlow's profiler."""
    times = collections.Counter()
    for name, ms in profiled_events(model, data.take(steps)):
        if ":" in name and "/" in name:
            times[name.rsplit(":", 1)[1]] += ms / steps
        elif name == "CpuExecutable::ExecuteAsyncOnStream":  # an XLA-compiled function's run
            times["XLA executable"] += ms / steps
    return {op: round(ms, 1) for op, ms in times.most_common(25)}


def read_batches(steps):
    """The first `steps` batches of debian-sections' training texts, and the labels' names."""
    import numpy as np
    import tensorflow as tf

    texts, names = (column[:BATCH * steps] for column in read("train"))
    labels = sorted(set(names))
    data = tf.data.Dataset.from_tensor_slices((texts, np.array([labels.index(name) for name in names]))).batch(BATCH)
    return data, labels


def kernels_child(steps):
    """Trains the bfloat16 set-up; oneDNN's log of the timed steps follows a MARK line on stdout."""
    data, labels = read_batches(steps)
    model = build("bfloat16", labels)
    model.fit(data.take(2), epochs=1, verbose=0)
    print("MARK", flush=True)
    model.fit(data, epochs=1, verbose=0)


def onednn_kernels(steps):
    """{"primitive implementation": count per step} of the bfloat16 set-up's training steps."""
    environment = {**os.environ, "ONEDNN_VERBOSE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    log = subprocess.run([sys.executable, __file__, "--kernels-child", "--steps", str(steps)], env=environment,
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for line in log.split("MARK\n", 1)[1].splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and len(fields) > 6 and fields[3] == "exec":
            counts[f"{fields[5]} {fields[6]}"] += 1
    return {kernel: count / steps for kernel, count in counts.most_common()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps of each set-up in a round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--profile-steps", type=int, default=3, help="steps of the profiled epoch (0: no profile)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training_step.json"))
    parser.add_argument("--kernels-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernels_child:
        return kernels_child(args.steps)

    import tf_keras

    data, labels = read_batches(args.steps)

    class StepTimes(tf_keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append((time.perf_counter() - self.start) * 1000)

    models, clock = {}, StepTimes()
    for setup in SETUPS:
        models[setup] = build(setup, labels)
        models[setup].fit(data.take(2), epochs=1, verbose=0)  # traces the train step
    rounds = {setup: [] for setup in SETUPS}
    for _ in range(args.rounds):
        for setup, model in models.items():
            clock.times = []
            model.fit(data, epochs=1, verbose=0, callbacks=[clock])
            rounds[setup].append(statistics.median(clock.times))
        print({setup: round(times[-1]) for setup, times in rounds.items()}, flush=True)
    report = {"machine": machine_info(), "args": vars(args), "batch_size": BATCH, "max_length": MAX_LENGTH,
              "setups": {}}
    for setup in SETUPS:
        report["setups"][setup] = {
            "step_ms_median": round(statistics.median(rounds[setup]), 1),
            "step_ms_rounds": [round(ms, 1) for ms in rounds[setup]],
            "speedup_vs_float32": round(statistics.median(
                [base / ms for base, ms in zip(rounds["float32"], rounds[setup])]), 3),
        }
        if args.profile_steps:
            report["setups"][setup]["ms_per_step_by_op_type"] = op_times(models[setup], data, args.profile_steps)
    report["onednn_kernels_per_step_bfloat16"] = onednn_kernels(args.steps)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({setup: {k: v for k, v in value.items() if k != "ms_per_step_by_op_type"}
                      for setup, value in report["setups"].items()}, indent=1))


if __name__ == "__main__":
    main()
