"""Fine-tuning quality and speed on debian-sections: tfbert's command against a plain Keras recipe and TF-IDF.

In one run, on the whole data set (../shared/data/debian-sections, 3759 train / 475 dev texts, 8 labels):
1. baseline: scikit-learn TF-IDF (word 1-2 grams) + logistic regression; dev accuracy, macro-F1, time.
2. plain Keras recipe, as a user would write it without tfbert: transformers' fast tokenizer padding
   every text to 128 tokens, the default checkpoint's `TFBertModel`, mean pooling, a dense layer,
   constant Adam 5e-5, shuffled batches of 32, 3 epochs, the last epoch's model evaluated on dev.
3. tfbert: `tfbert.finetune` (the CLI's code path: bucketing, AdamW with warm-up and linear decay, dev
   accuracy each epoch, best epoch kept, early stopping, export) with each `--configs` setting. Dev
   accuracy and macro-F1 come from the exported SavedModel's `label` output, loaded back as TF Serving
   would load it. The first setting should be the CLI's defaults.
Each of 2 and 3 runs once per seed, in turns (seed 0: the recipe, then every tfbert setting; seed 1:
...), so the machine's slow and fast moments fall on all of them. Wall time is the whole run: reading
and tokenizing, training, dev evaluation and (tfbert) the export.
4. batching: training steps per second of the same classifier on the same batches' texts with
   (a) length bucketing and padding to the longest text of the batch (tfbert's default),
   (b) random batches padded to the longest of the batch, and (c) random batches padded to
   max_length (fixed-length padding). The speed-ups are ratios measured in this run.

usage: python benchmarks/finetune_debian.py [--seeds 0,1,2] [--configs "learning_rate=5e-5,epochs=3;precision=bfloat16"]
       [--skip-recipe] [--skip-speed] [--skip-finetune] [--out benchmarks/results/finetune_debian.json]
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

from machine import machine_info  # noqa: E402

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


def scores(gold, predicted):
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": accuracy_score(gold, predicted), "macro_f1": f1_score(gold, predicted, average="macro")}


def parse_configs(text):
    """ "learning_rate=5e-5,epochs=3;learning_rate=1e-4,epochs=4" -> [{"learning_rate": 5e-05, "epochs": 3}, ...]"""
    configs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        config = {}
        for item in part.split(","):
            key, value = item.split("=")
            config[key.strip()] = _value(value.strip())
        configs.append(config)
    return configs


def _value(text):
    """A setting's value: int, float, else the string (precision=bfloat16)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def finetuned(config, seed, dev, out_dir):
    """tfbert.finetune with the CLI's defaults but for `config`; dev scores from the exported SavedModel."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfbert.jobs.finetune import finetune

    start = time.perf_counter()
    result = finetune(str(DATA / "train.csv"), str(DATA / "dev.csv"), out_dir=out_dir, name="debian-sections",
                      seed=seed, verbose=2, **config)
    loaded = tf.saved_model.load(str(result.export_path))
    predicted = []
    for begin in range(0, len(dev[0]), 64):
        labels = loaded.signatures["serving_default"](text=tf.constant(dev[0][begin:begin + 64]))["label"]
        predicted += [label.decode() for label in labels.numpy()]
    train_seconds = [entry["train_seconds"] for entry in result.history]
    return {**scores(dev[1], predicted), "wall_seconds": time.perf_counter() - start,
            "train_seconds_per_epoch": sum(train_seconds) / len(train_seconds), "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "history": [{k: round(v, 4) for k, v in h.items()} for h in result.history]}


def plain_keras_recipe(seed, train, dev, epochs=3, learning_rate=5e-5, max_length=128, batch_size=32):
    """The recipe a Keras user writes without tfbert: fixed-length padding, mean pooling, constant Adam."""
    import numpy as np
    import tensorflow as tf
    import tf_keras
    from transformers import BertTokenizerFast

    from tfbert.checkpoints.checkpoint import load_checkpoint
    from tfbert.models.weights import load_bert_model

    start = time.perf_counter()
    tf_keras.utils.set_random_seed(seed)
    checkpoint = load_checkpoint()
    tokenizer = BertTokenizerFast.from_pretrained(str(checkpoint.folder))
    labels = sorted(set(train[1]))

    def encode(texts):
        batch = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
        return {name: batch[name].astype(np.int32) for name in ("input_ids", "token_type_ids", "attention_mask")}

    inputs = {name: tf_keras.Input(shape=(max_length,), dtype=tf.int32, name=name)
              for name in ("input_ids", "token_type_ids", "attention_mask")}
    bert = load_bert_model(checkpoint)
    hidden = bert(**inputs).last_hidden_state
    mask = tf.cast(inputs["attention_mask"], tf.float32)[:, :, None]
    pooled = tf.reduce_sum(hidden * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1e-9)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(len(labels))(pooled))
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    train_ids = np.asarray([labels.index(label) for label in train[1]], np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((encode(train[0]), train_ids))
    dataset = dataset.shuffle(len(train_ids), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    history = model.fit(dataset, epochs=epochs, verbose=2)
    logits = model.predict(encode(dev[0]), batch_size=64, verbose=0)
    predicted = [labels[i] for i in logits.argmax(1)]
    return {**scores(dev[1], predicted), "wall_seconds": time.perf_counter() - start,
            "train_loss_by_epoch": [round(v, 4) for v in history.history["loss"]]}


def summary(runs):
    import numpy as np

    accuracies = np.asarray([run["accuracy"] for run in runs])
    return {"accuracy_mean": float(accuracies.mean()), "accuracy_std": float(accuracies.std(ddof=1)) if len(runs) > 1 else 0.0,
            "accuracy_min": float(accuracies.min()), "accuracy_max": float(accuracies.max()),
            "macro_f1_mean": float(np.mean([run["macro_f1"] for run in runs])),
            "wall_seconds_mean": float(np.mean([run["wall_seconds"] for run in runs])),
            **({"train_seconds_per_epoch_mean": float(np.mean([run["train_seconds_per_epoch"] for run in runs]))}
               if all("train_seconds_per_epoch" in run for run in runs) else {}),
            "runs": runs}


def batching_speed(args, train):
    """Steps per second of fit on the same examples, batched three ways.

    The three set-ups are timed in turns, one epoch each per round, for `args.speed_rounds` rounds, so
    that the shared machine's slow and fast moments fall on all three alike.
    """
    import numpy as np
    import tensorflow as tf

    from tfbert.jobs import batching
    from tfbert.models.classifier import build_classifier

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
        lengths = batching.token_lengths(tokenizer, texts)
        dataset = batching.make_dataset(texts, ids[:count], 32, lengths if bucket else None, shuffle=True, seed=0)
        padded = 0
        for features, _ in dataset:  # tokens the model computes on, padding included
            batch_lengths = batching.token_lengths(tokenizer, [[t.decode() for t in features["text"].numpy()]])
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
    parser.add_argument("--seeds", default="0,1,2", help="seeds, each a run of the recipe and of every setting")
    parser.add_argument("--configs", default="",
                        help="tfbert.finetune settings to compare, ';' between settings, e.g. "
                             "'learning_rate=1e-4,epochs=4'. The empty setting (the default) is the CLI's defaults")
    parser.add_argument("--max-length", type=int, default=128, help="for the batching measurement")
    parser.add_argument("--speed-steps", type=int, default=24, help="steps in each batching measurement")
    parser.add_argument("--speed-rounds", type=int, default=2, help="timed epochs of each batching set-up, in turns")
    parser.add_argument("--skip-speed", action="store_true", help="skip the batching measurement")
    parser.add_argument("--skip-recipe", action="store_true", help="skip the plain Keras recipe")
    parser.add_argument("--skip-finetune", action="store_true", help="skip tfbert's fine-tuning runs")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "finetune_debian.json"))
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    configs = parse_configs(args.configs) or [{}]
    train, dev = read("train"), read("dev")
    report = {"machine": machine_info(), "args": vars(args),
              "data": {"train": len(train[0]), "dev": len(dev[0]), "labels": len(set(train[1]))}}
    print("TF-IDF + logistic regression ...", flush=True)
    report["baseline_tfidf_logreg"] = baseline(train, dev)
    print(f"  {report['baseline_tfidf_logreg']}", flush=True)
    if not args.skip_speed:
        print("batching speed ...", flush=True)
        report["batching"] = batching_speed(args, train)
    recipe, tfbert_runs = [], {json.dumps(config, sort_keys=True): [] for config in configs}

    def write(complete):
        """The report so far: written after every run, so a stopped run keeps what it measured."""
        if recipe:
            report["plain_keras_recipe"] = summary(recipe)
        if not args.skip_finetune:
            report["tfbert_finetune"] = {key: summary(runs) for key, runs in tfbert_runs.items() if runs}
        report["complete"] = complete
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    for seed in seeds:
        if not args.skip_recipe:
            print(f"plain Keras recipe, seed {seed} ...", flush=True)
            recipe.append({"seed": seed, **plain_keras_recipe(seed, train, dev)})
            print(f"  {recipe[-1]}", flush=True)
            write(complete=False)
        if not args.skip_finetune:
            for config in configs:
                key = json.dumps(config, sort_keys=True)
                print(f"tfbert finetune {key}, seed {seed} ...", flush=True)
                with tempfile.TemporaryDirectory() as out_dir:
                    tfbert_runs[key].append({"seed": seed, **finetuned(config, seed, dev, out_dir)})
                print(f"  {tfbert_runs[key][-1]}", flush=True)
                write(complete=False)
    write(complete=True)
    print(json.dumps({k: v for k, v in report.items() if k != "batching"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
