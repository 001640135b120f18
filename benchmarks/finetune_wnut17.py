"""Entity tagging on WNUT-17: tfbert's `finetune --task token-classification` against the classic PyTorch recipe.

In one run, on the whole data set (../shared/data/wnut17, 3394 train / 1009 dev sentences, 6 types):
1. the classic recipe, as transformers' token-classification example runs it with `Trainer`'s
   defaults: `BertForTokenClassification` on the default checkpoint, each word's first sub-token
   labelled (the others -100), dynamic padding, shuffled batches of 8, AdamW (lr 5e-5, no weight
   decay, eps 1e-8) with linear decay to 0 and no warm-up, gradient norm clipped at 1.0, 3 epochs,
   the last epoch's model evaluated. A plain PyTorch loop with exactly those settings (`Trainer`
   needs `accelerate`, which is not a dependency).
2. tfbert: `tfbert.finetune(task="token-classification")`, the CLI's code path (defaults unless
   `--configs` says otherwise): best epoch by dev entity F1, export, transformers folder. Its dev
   scores are recomputed from the transformers folder the run wrote, loaded back.
Both are scored with `tfbert.jobs.entity_scores` (conlleval's entity counting) on every dev word, a
word tagged by its first sub-token; words without a token count as tagged O for both.
Each seed runs the recipe, then every tfbert setting, in turns. Wall time is the whole run: reading,
tokenizing, training, dev evaluation and (tfbert) the export.

usage: python benchmarks/finetune_wnut17.py [--seeds 0,1,2] [--configs "learning_rate=5e-5,batch_size=8;..."]
       [--skip-recipe] [--out benchmarks/results/finetune_wnut17.json]
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_debian import parse_configs  # noqa: E402
from machine import machine_info  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("TFBERT_SHARED", REPO.parent / "shared")) / "data" / "wnut17"


def train_like_trainer(model, rows, loss, seed, epochs, batch_size, learning_rate):
    """transformers `Trainer`'s default loop: shuffled batches, AdamW (no weight decay, eps 1e-8), linear
    decay to 0 without warm-up, gradient norm clipped at 1.0. `loss(batch_rows)` returns the batch's loss.
    Returns the number of optimizer steps."""
    import numpy as np
    import torch
    from transformers import get_linear_schedule_with_warmup

    steps = epochs * -(-len(rows) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, eps=1e-8, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    generator = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = generator.permutation(len(rows))
        for begin in range(0, len(order), batch_size):
            loss([rows[i] for i in order[begin:begin + batch_size]]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    return steps


def pytorch_recipe(seed, train, dev, labels, epochs=3, batch_size=8, learning_rate=5e-5, max_length=256):
    """transformers' token-classification recipe with Trainer's defaults, in a plain PyTorch loop."""
    import torch
    from transformers import BertForTokenClassification, BertTokenizerFast

    from tfbert.checkpoints.checkpoint import load_checkpoint
    from tfbert.jobs.entity_scores import score_entities
    from tfbert.jobs.tagged_text import encode_tags

    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    folder = str(load_checkpoint().folder)
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    model = BertForTokenClassification.from_pretrained(folder, num_labels=len(labels),
                                                       id2label=dict(enumerate(labels)),
                                                       label2id={label: i for i, label in enumerate(labels)})

    def encode(sentences, ids):
        rows = []
        for words, tags in zip(sentences.words, ids):
            encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
            word_ids, previous, row_labels = encoding.word_ids(), None, []
            for word in word_ids:
                row_labels.append(-100 if word is None or word == previous else tags[word])
                previous = word
            rows.append((encoding["input_ids"], row_labels, word_ids))
        return rows

    def collate(rows):
        longest = max(len(ids) for ids, _, _ in rows)
        input_ids = torch.zeros(len(rows), longest, dtype=torch.long)
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        labels_ = torch.full((len(rows), longest), -100, dtype=torch.long)
        for i, (ids, row_labels, _) in enumerate(rows):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            mask[i, :len(ids)] = 1
            labels_[i, :len(ids)] = torch.tensor(row_labels)
        return input_ids, mask, labels_

    train_rows = encode(train, encode_tags(train, labels))
    dev_rows = encode(dev, encode_tags(dev, labels))
    def loss(rows):
        input_ids, mask, batch_labels = collate(rows)
        return model(input_ids=input_ids, attention_mask=mask, labels=batch_labels).loss

    steps = train_like_trainer(model, train_rows, loss, seed, epochs, batch_size, learning_rate)
    model.eval()
    predicted = []
    with torch.no_grad():
        for begin in range(0, len(dev_rows), 32):
            rows = dev_rows[begin:begin + 32]
            input_ids, mask, _ = collate(rows)
            best = model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1).numpy()
            for row, (_, _, word_ids), words in zip(best, rows, dev.words[begin:begin + 32]):
                tags = ["O"] * len(words)
                previous = None
                for position, word in enumerate(word_ids):
                    if word is not None and word != previous:
                        tags[word] = labels[row[position]]
                    previous = word
                predicted.append(tags)
    scores = score_entities(dev.tags, predicted)
    return {**scores.as_dict(), "wall_seconds": time.perf_counter() - start, "steps": steps}


def tfbert_run(config, seed, dev, out_dir):
    """tfbert.finetune(task="token-classification") with the CLI's defaults but for `config`."""
    from tfbert.jobs.entity_scores import score_entities
    from tfbert.jobs.finetune import finetune
    from tfbert.jobs.tagging import predict_tags, tagging_features
    from tfbert.models.token_classifier import build_token_classifier

    start = time.perf_counter()
    result = finetune(str(DATA / "train.conll"), str(DATA / "dev.conll"), task="token-classification", out_dir=out_dir,
                      name="wnut17", seed=seed, verbose=2, **config)
    wall = time.perf_counter() - start
    # The saved transformers folder, loaded back, scored on dev: what a user gets, not the run's memory.
    saved = build_token_classifier(str(result.transformers_path))
    features = tagging_features(saved.tokenizer, dev.words)
    scores = score_entities(dev.tags, predict_tags(saved, features))
    return {**scores.as_dict(), "wall_seconds": wall, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "history": [{k: round(v, 4) for k, v in h.items()} for h in result.history]}


def summary(runs):
    import numpy as np

    f1 = np.asarray([run["f1"] for run in runs])
    return {"f1_mean": float(f1.mean()), "f1_std": float(f1.std(ddof=1)) if len(runs) > 1 else 0.0,
            "f1_min": float(f1.min()), "f1_max": float(f1.max()),
            "precision_mean": float(np.mean([run["precision"] for run in runs])),
            "recall_mean": float(np.mean([run["recall"] for run in runs])),
            "wall_seconds_mean": float(np.mean([run["wall_seconds"] for run in runs])), "runs": runs}


def main():
    from tfbert.jobs.tagged_text import read_tagged, tag_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default="", help="tfbert settings, ';' between them; the empty one is the defaults")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "finetune_wnut17.json"))
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    configs = parse_configs(args.configs) or [{}]
    train, dev = read_tagged(DATA / "train.conll"), read_tagged(DATA / "dev.conll")
    labels = tag_names(train)
    report = {"machine": machine_info(), "args": vars(args),
              "data": {"train": len(train), "dev": len(dev), "labels": labels}}
    recipe, runs = [], {json.dumps(config, sort_keys=True): [] for config in configs}

    def write(complete):
        if recipe:
            report["pytorch_recipe"] = summary(recipe)
        report["tfbert_finetune"] = {key: summary(values) for key, values in runs.items() if values}
        report["complete"] = complete
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    for seed in seeds:
        if not args.skip_recipe:
            print(f"PyTorch recipe, seed {seed} ...", flush=True)
            recipe.append({"seed": seed, **pytorch_recipe(seed, train, dev, labels)})
            print(f"  {recipe[-1]}", flush=True)
            write(False)
        for config in configs:
            key = json.dumps(config, sort_keys=True)
            print(f"tfbert {key}, seed {seed} ...", flush=True)
            with tempfile.TemporaryDirectory() as out_dir:
                runs[key].append({"seed": seed, **tfbert_run(config, seed, dev, out_dir)})
            print(f"  {runs[key][-1]}", flush=True)
            write(False)
    write(True)
    print(json.dumps({k: v for k, v in report.items() if k not in ("machine",)}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
