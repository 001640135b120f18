"""What `fit` spends outside its training steps: the wait for tf.data's autotuning thread.

Builds the default checkpoint's classifier (`tfbert.build_classifier`, 8 labels, max_length 128) and
fine-tunes it on debian-sections' first `--batches` batches of 32 training texts, given as a user
would write them, `tf.data.Dataset.from_tensor_slices((texts, labels)).batch(32)`, for 2 epochs with
4 dev batches as validation data, in two set-ups, in turns, `--rounds` times:
- "tf_keras fit": `tf_keras.Model.fit(model, ...)`, Keras' own `fit`, tf.data autotuning on (the default);
- "tfbert fit": `model.fit(...)`, which turns autotuning off for datasets that leave it unset
  (`tfbert.models.datasets`).
From callbacks it reports, per round: each epoch's training time (epoch start to its last step),
the validation pass, the gaps between the last step and the epoch's end and between one epoch's end
and the next epoch's start, the time from `on_train_end` until `fit` returned, and the whole call.

usage: python benchmarks/fit_overhead.py [--batches 24] [--rounds 2] [--precision float32]
       [--out benchmarks/results/fit_overhead.json]
"""

import argparse
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_debian import read
from machine import machine_info

REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH, MAX_LENGTH, DEV_BATCHES, EPOCHS = 32, 128, 4, 2


def marks_callback():
    import tf_keras

    class Marks(tf_keras.callbacks.Callback):
        def reset(self):
            self.start, self.events = time.perf_counter(), []

        def mark(self, name):
            self.events.append((name, time.perf_counter() - self.start))

        def on_epoch_begin(self, epoch, logs=None):
            self.mark("epoch_begin")

        def on_train_batch_end(self, batch, logs=None):
            self.last_step = time.perf_counter() - self.start

        def on_test_begin(self, logs=None):
            self.events.append(("last_step", self.last_step))
            self.mark("test_begin")

        def on_test_end(self, logs=None):
            self.mark("test_end")

        def on_epoch_end(self, epoch, logs=None):
            self.mark("epoch_end")

        def on_train_end(self, logs=None):
            self.mark("train_end")

    return Marks()


def phases(events, returned):
    """Seconds of each phase, from the callbacks' marks of one `fit` call."""
    times = {}
    for name, at in events:
        times.setdefault(name, []).append(at)
    def spans(first, then):
        return [round(end - begin, 2) for begin, end in zip(first, then)]

    return {
        "training_per_epoch": spans(times["epoch_begin"], times["last_step"]),
        "validation_per_epoch": spans(times["test_begin"], times["test_end"]),
        "after_validation_per_epoch": spans(times["test_end"], times["epoch_end"]),
        "between_epochs": spans(times["epoch_end"], times["epoch_begin"][1:]),
        "after_train_end": round(returned - times["train_end"][0], 2),
        "fit_call": round(returned, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=24, help="training batches of 32 an epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fit_overhead.json"))
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    import tf_keras

    from tfbert.models.classifier import build_classifier

    texts, names = read("train")
    labels = sorted(set(names))
    ids = np.array([labels.index(name) for name in names], np.int32)
    train_count, dev_count = BATCH * args.batches, BATCH * DEV_BATCHES
    train = tf.data.Dataset.from_tensor_slices((texts[:train_count], ids[:train_count])).batch(BATCH)
    dev = tf.data.Dataset.from_tensor_slices((texts[train_count:train_count + dev_count],
                                              ids[train_count:train_count + dev_count])).batch(BATCH)
    model = build_classifier(labels=labels, max_length=MAX_LENGTH, precision=args.precision)
    model.compile(train_steps=EPOCHS * args.batches * (args.rounds * 2 + 1))
    model.fit(train.take(2), epochs=1, verbose=0, validation_data=dev.take(1))  # traces the steps

    setups = {"tf_keras fit": lambda **kw: tf_keras.Model.fit(model, **kw), "tfbert fit": lambda **kw: model.fit(**kw)}
    marks, runs = marks_callback(), {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, fit in setups.items():
            marks.reset()
            fit(x=train, epochs=EPOCHS, verbose=0, validation_data=dev, callbacks=[marks])
            runs[name].append(phases(marks.events, time.perf_counter() - marks.start))
            print(name, runs[name][-1], flush=True)
    summary = {}
    for name, rounds in runs.items():
        waits = [sum(r["between_epochs"]) + sum(r["after_validation_per_epoch"]) + r["after_train_end"] for r in rounds]
        summary[name] = {"fit_call_seconds_median": round(statistics.median(r["fit_call"] for r in rounds), 2),
                         "seconds_outside_steps_and_validation_median": round(statistics.median(waits), 2)}
    report = {"machine": machine_info(), "args": vars(args), "batch_size": BATCH, "max_length": MAX_LENGTH,
              "epochs": EPOCHS, "dev_batches": DEV_BATCHES, "summary": summary, "runs": runs}
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
