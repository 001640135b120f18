"""Fine-tuning quality and speed on debian-sections, against a TF-IDF + logistic regression baseline.

In one run, on the whole data set (../shared/data/debian-sections, 3759 train / 475 dev texts, 8 labels):
1. baseline: scikit-learn TF-IDF (word 1-2 grams) + logistic regression; dev accuracy, macro-F1, time.
2. tfbert: `tfbert.finetune` of the default checkpoint (the CLI's code path: bucketing, AdamW with
   warm-up and linear decay, best epoch kept, exported). Dev accuracy and macro-F1 are measured on
   the exported SavedModel's `label` output, loaded back as TF Serving would load it.
3. batching: training steps per second of the same classifier on the same batches' texts with
   (a) length bucketing and padding to the longest text of the batch (tfbert's default),
   (b) random batches padded to the longest of the batch, and (c) random batches padded to
   max_length (fixed-length padding). The speed-ups are ratios measured in this run.

usage: python benchmarks/finetune_debian.py [--epochs 3] [--learning-rate 5e-5] [--pooling P] [--speed-steps 24]
       [--out benchmarks/results/finetune_debian.json]
Needs the `bench` extra: python -m pip install -e '.[bench]'
"""

import argparse
import csv
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("TFBERT_SHARED", REPO.parent / "shared")) / "data" / "debian-sections"


def read(split):
    with open(DATA / f"{split}.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def baseline(train, dev):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          LogisticRegression(max_iter=2000, C=10.0))
    model.fit(*train)
    predicted = model.predict(dev[0])
    return {"accuracy": accuracy_score(dev[1], predicted), "macro_f1": f1_score(dev[1], predicted, average="macro"),
            "wall_seconds": time.perf_counter() - start}


def finetuned(args, dev, out_dir):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    from sklearn.metrics import accuracy_score, f1_score

    from tfbert.finetune import finetune

    start = time.perf_counter()
    result = finetune(str(DATA / "train.csv"), str(DATA / "dev.csv"), epochs=args.epochs, batch_size=32,
                      max_length=args.max_length, learning_rate=args.learning_rate, pooling=args.pooling, out_dir=out_dir,
                      name="debian-sections", patience=None, verbose=2)
    train_seconds = time.perf_counter() - start
    loaded = tf.saved_model.load(str(result.export_path))
    predicted = []
    for begin in range(0, len(dev[0]), 64):
        labels = loaded.signatures["serving_default"](text=tf.constant(dev[0][begin:begin + 64]))["label"]
        predicted += [label.decode() for label in labels.numpy()]
    return {"accuracy": accuracy_score(dev[1], predicted), "macro_f1": f1_score(dev[1], predicted, average="macro"),
            "wall_seconds": train_seconds, "best_epoch": result.best_epoch,
            "history": [{k: round(v, 4) for k, v in h.items()} for h in result.history]}


def batching_speed(args, train):
    """Steps per second of fit on the same examples, batched three ways.

    The three set-ups are timed in turns, one epoch each per round, for `args.speed_rounds` rounds, so
    that the shared machine's slow and fast moments fall on all three alike.
    """
    import numpy as np
    import tensorflow as tf

    from tfbert import data
    from tfbert.classifier import build_classifier

    labels = sorted(set(train[1]))
    ids = np.asarray([labels.index(label) for label in train[1]], np.int32)
    count = args.speed_steps * 32
    texts = [train[0][:count]]
    setups = {}
    for name, padding, bucket in (("bucketed, pad to longest", "longest", True),
                                  ("random, pad to longest", "longest", False),
                                  ("random, pad to max_length", "max_length", False)):
        tf.keras.utils.set_random_seed(0)
        model = build_classifier(labels=labels, max_length=args.max_length, padding=padding)
        model.compile(train_steps=args.speed_steps * (args.speed_rounds + 1))
        tokenizer = model.get_layer("tokenizer")
        lengths = data.token_lengths(tokenizer, texts)
        dataset = data.make_dataset(texts, ids[:count], 32, lengths if bucket else None, shuffle=True, seed=0)
        padded = 0
        for features, _ in dataset:  # tokens the model computes on, padding included
            batch_lengths = data.token_lengths(tokenizer, [[t.decode() for t in features["text"].numpy()]])
            padded += len(batch_lengths) * (args.max_length if padding == "max_length" else int(batch_lengths.max()))
        model.fit(dataset.take(2), epochs=1, verbose=0)  # tracing and first-step allocation
        setups[name] = {"model": model, "dataset": dataset, "seconds": 0.0, "padded": padded, "real": int(lengths.sum())}
    for _ in range(args.speed_rounds):
        for name, setup in setups.items():
            start = time.perf_counter()
            setup["model"].fit(setup["dataset"], epochs=1, verbose=0)
            setup["seconds"] += time.perf_counter() - start
    results = {}
    for name, setup in setups.items():
        steps = int(setup["dataset"].cardinality()) * args.speed_rounds
        results[name] = {"steps": steps, "seconds": round(setup["seconds"], 2),
                         "steps_per_second": round(steps / setup["seconds"], 3),
                         "tokens_with_padding": setup["padded"], "real_tokens": setup["real"]}
        print(f"  {name}: {results[name]}", flush=True)
    base = results["random, pad to max_length"]["seconds"]
    for value in results.values():
        value["speedup_vs_fixed_padding"] = round(base / value["seconds"], 2)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--pooling", default=None, help="classifier pooling (default: the checkpoint's)")
    parser.add_argument("--speed-steps", type=int, default=24, help="steps in each batching measurement")
    parser.add_argument("--speed-rounds", type=int, default=2, help="timed epochs of each batching set-up, in turns")
    parser.add_argument("--skip-speed", action="store_true", help="skip the batching measurement")
    parser.add_argument("--skip-finetune", action="store_true", help="only the baseline and the batching speeds")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "finetune_debian.json"))
    args = parser.parse_args()
    train, dev = read("train"), read("dev")
    report = {"data": {"train": len(train[0]), "dev": len(dev[0]), "labels": len(set(train[1]))},
              "machine": {"cpus": os.cpu_count()}, "args": vars(args)}
    print("TF-IDF + logistic regression ...", flush=True)
    report["baseline_tfidf_logreg"] = baseline(train, dev)
    print(f"  {report['baseline_tfidf_logreg']}", flush=True)
    if not args.skip_speed:
        print("batching speed ...", flush=True)
        report["batching"] = batching_speed(args, train)
    if not args.skip_finetune:
        print("fine-tuning the default checkpoint ...", flush=True)
        with tempfile.TemporaryDirectory() as out_dir:
            report["tfbert_finetuned"] = finetuned(args, dev, out_dir)
        print(f"  {report['tfbert_finetuned']}", flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    if "tfbert_finetuned" in report:
        beat = report["tfbert_finetuned"]["accuracy"] > report["baseline_tfidf_logreg"]["accuracy"]
        print(f"fine-tuned beats the baseline on dev accuracy: {beat}")
        return 0 if beat else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
