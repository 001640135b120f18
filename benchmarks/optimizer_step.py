"""What the optimizer costs a fine-tuning step: tfbert's AdamW against transformers', in both precisions.

tfbert's `create_optimizer` is transformers' recipe with one change (tfbert.models.optimization):
embedding tables' sparse gradients are applied densely, in one `ResourceApplyAdam`, where Keras' sparse
path rewrites the whole table in about ten passes and makes its reads copy it. This trains the default
checkpoint's classifier (`tfbert.build_classifier`, as `tfbert finetune` builds it) on the first
`--steps` batches of debian-sections' training texts, batched as `tfbert finetune` batches them (32
texts of similar length, `tfbert.jobs.batching`), in four set-ups: float32 and bfloat16, each compiled
with tfbert's `create_optimizer` and with transformers' (`transformers.create_optimizer`, the same
schedule and settings). After a first epoch of each (traces and compiles every batch shape), each
round trains every set-up for one epoch of those batches, in turns; a step's time is the epoch's
(`fit`'s start and end included) over its steps, and the speed-up of a set-up is the median over
rounds of each round's ratio. Last, one epoch of each runs under TensorFlow's profiler,
for the time per step of the ops in the optimizer's name scope (the update, and the sums of gradients
TensorFlow places there), by op type, summed over threads.

usage: python benchmarks/optimizer_step.py [--steps 30] [--rounds 3] [--out benchmarks/results/optimizer_step.json]
"""

import argparse
import collections
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_debian import read
from machine import machine_info
from training_step import profiled_events

REPO = pathlib.Path(__file__).resolve().parents[1]
SETUPS = [(precision, optimizer) for precision in ("float32", "bfloat16") for optimizer in ("tfbert", "transformers")]


def build(precision, optimizer, labels, train_steps):
    from transformers import create_optimizer as hf_create_optimizer

    from tfbert.defaults import FINETUNE_LEARNING_RATE
    from tfbert.models.classifier import build_classifier
    from tfbert.models.optimization import DEFAULT_WARMUP_FRACTION, DEFAULT_WEIGHT_DECAY

    model = build_classifier(labels=labels, precision=precision)
    if optimizer == "tfbert":
        model.compile(train_steps=train_steps)
    else:
        warmup_steps = int(round(DEFAULT_WARMUP_FRACTION * train_steps))
        model.compile(optimizer=hf_create_optimizer(init_lr=FINETUNE_LEARNING_RATE, num_train_steps=train_steps,
                                                    num_warmup_steps=warmup_steps,
                                                    weight_decay_rate=DEFAULT_WEIGHT_DECAY)[0])
    return model


def optimizer_op_times(model, data, steps):
    """{op type: ms per step} of the ops in the optimizer's name scope, from one epoch under the profiler."""
    scope = model.optimizer.get_config()["name"]
    times = collections.Counter()
    for name, ms in profiled_events(model, data):
        if ":" in name and name.startswith(scope + "/"):
            times[name.rsplit(":", 1)[1]] += ms / steps
    return {"total": round(sum(times.values()), 1), **{op: round(ms, 1) for op, ms in times.most_common(12)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="batches of an epoch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "optimizer_step.json"))
    args = parser.parse_args()

    import numpy as np

    from tfbert.jobs.batching import make_dataset, token_lengths

    texts, names = read("train")
    labels = sorted(set(names))
    ids = np.array([labels.index(name) for name in names])
    train_steps = 4 * -(-len(texts) // 32)  # `tfbert finetune`'s schedule: 4 epochs of the whole set
    models, data = {}, None
    for setup in SETUPS:
        models[setup] = build(*setup, labels, train_steps)
        if data is None:
            lengths = token_lengths(models[setup].tokenizer, [texts])
            data = make_dataset([texts], ids, 32, lengths, shuffle=True, seed=0).take(args.steps)
        models[setup].fit(data, epochs=1, verbose=0)
    rounds = {setup: [] for setup in SETUPS}
    for _ in range(args.rounds):
        for setup, model in models.items():
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            rounds[setup].append(time.perf_counter() - start)
        print({" ".join(setup): round(times[-1], 1) for setup, times in rounds.items()}, flush=True)

    def ratio(slow, fast):
        return round(statistics.median([a / b for a, b in zip(rounds[slow], rounds[fast])]), 3)

    report = {"machine": machine_info(), "args": vars(args), "batch_size": 32, "setups": {}}
    for setup in SETUPS:
        precision, optimizer = setup
        report["setups"][" ".join(setup)] = {
            "step_ms_median": round(statistics.median(rounds[setup]) * 1000 / args.steps, 1),
            "epoch_seconds_rounds": [round(seconds, 2) for seconds in rounds[setup]],
            "speedup_vs_transformers_optimizer": ratio((precision, "transformers"), setup),
            "speedup_vs_float32_same_optimizer": ratio(("float32", optimizer), setup),
            "optimizer_ms_per_step_by_op_type": optimizer_op_times(models[setup], data, args.steps),
        }
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report["setups"], indent=1))


if __name__ == "__main__":
    main()
