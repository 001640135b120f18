"""Extractive QA on the Debian SQuAD set: tfbert's `finetune --task question-answering` against the classic
PyTorch recipe.

The set is made in the run by tools/make_squad_debian.py (defaults: 4000 train and 600 dev questions,
SQuAD v1.1 layout; `--unanswerable` adds SQuAD 2.0 impossible questions). In one run:
1. the classic recipe, as transformers' question-answering example runs it with `Trainer`'s defaults:
   `BertForQuestionAnswering` on the default checkpoint, windows of 384 tokens with stride 128 and
   answer positions from `prepare_train_features`, dynamic padding, shuffled batches of 8, AdamW (lr
   5e-5, no weight decay) with linear decay to 0 and no warm-up, gradient norm clipped at 1.0, 3
   epochs, the last epoch's model. A plain PyTorch loop with exactly those settings (`Trainer` needs
   `accelerate`, which is not a dependency). Its dev answers come from transformers'
   `question-answering` pipeline on the saved model (384/128, max_answer_len 15).
2. tfbert: `tfbert.finetune(task="question-answering")`, the CLI's code path (defaults unless
   `--configs` says otherwise). Its dev answers come from the exported SavedModel.
Both are scored with SQuAD's exact match and F1 (`tfbert.jobs.squad_metrics`). Each seed runs the
recipe, then every tfbert setting. Wall time covers reading, windows, training, and (tfbert) the dev
metric each epoch and the export; the recipe's covers training only, not its dev decoding.

A seed takes about 40 minutes on 2 cores (the recipe about 27), so the seeds may come from separate
invocations: `--resume` keeps the seeds already in --out (same data options) and runs the others.
Every seed's recipe and tfbert runs come from one invocation, on one machine, which each run records.

usage: python benchmarks/finetune_squad_debian.py [--seeds 0,1,2] [--configs "epochs=3;..."] [--skip-recipe]
       [--train 4000] [--dev 600] [--unanswerable 0] [--resume] [--out benchmarks/results/finetune_squad_debian.json]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from finetune_debian import parse_configs  # noqa: E402
from finetune_wnut17 import train_like_trainer  # noqa: E402
from machine import machine_info  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def pytorch_recipe(seed, train, dev, out_dir, epochs=3, batch_size=8, learning_rate=5e-5, max_length=384, stride=128):
    """transformers' question-answering recipe with Trainer's defaults, in a plain PyTorch loop."""
    import torch
    from transformers import BertForQuestionAnswering, BertTokenizerFast, pipeline

    from tfbert.checkpoints.checkpoint import load_checkpoint

    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    folder = str(load_checkpoint().folder)
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    model = BertForQuestionAnswering.from_pretrained(folder)
    encoded = tokenizer(train.questions, train.contexts, truncation="only_second", max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
    rows = []
    for i, offsets in enumerate(encoded["offset_mapping"]):  # prepare_train_features, line for line
        input_ids, sequence_ids = encoded["input_ids"][i], encoded.sequence_ids(i)
        answers = train.answers[encoded["overflow_to_sample_mapping"][i]]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        start_position = end_position = cls_index
        if answers:
            text, start_char = answers[0]
            end_char = start_char + len(text)
            token_start = 0
            while sequence_ids[token_start] != 1:
                token_start += 1
            token_end = len(input_ids) - 1
            while sequence_ids[token_end] != 1:
                token_end -= 1
            if offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char:
                while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                    token_start += 1
                start_position = token_start - 1
                while offsets[token_end][1] >= end_char:
                    token_end -= 1
                end_position = token_end + 1
        rows.append((input_ids, encoded["token_type_ids"][i], start_position, end_position))
    def loss(batch):
        longest = max(len(ids) for ids, _, _, _ in batch)
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for row, (input_ids, token_types, _, _) in enumerate(batch):
            ids[row, :len(input_ids)] = torch.tensor(input_ids)
            types[row, :len(input_ids)] = torch.tensor(token_types)
            mask[row, :len(input_ids)] = 1
        return model(input_ids=ids, token_type_ids=types, attention_mask=mask,
                     start_positions=torch.tensor([r[2] for r in batch]),
                     end_positions=torch.tensor([r[3] for r in batch])).loss

    steps = train_like_trainer(model, rows, loss, seed, epochs, batch_size, learning_rate)
    wall = time.perf_counter() - start
    model.eval()
    saved = pathlib.Path(out_dir) / "recipe"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    qa = pipeline("question-answering", model=str(saved), framework="pt")
    impossible = any(not answers for answers in train.answers)
    predicted = [qa(question=q, context=c, handle_impossible_answer=impossible)["answer"]
                 for q, c in zip(dev.questions, dev.contexts)]
    return predicted, {"wall_seconds": wall, "steps": steps, "windows": len(rows)}


def tfbert_run(config, seed, train_path, dev_path, dev, out_dir):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfbert.jobs.finetune import finetune

    start = time.perf_counter()
    result = finetune(str(train_path), str(dev_path), task="question-answering", out_dir=out_dir, name="debian-qa",
                      seed=seed, verbose=2, **config)
    wall = time.perf_counter() - start
    answer = tf.saved_model.load(str(result.export_path)).signatures["serving_default"]
    predicted = []
    for begin in range(0, len(dev), 32):
        out = answer(question=tf.constant(dev.questions[begin:begin + 32]), context=tf.constant(dev.contexts[begin:begin + 32]))
        predicted += [a.decode("utf-8") for a in out["answer"].numpy()]
    return predicted, {"wall_seconds": wall, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                       "history": [{k: round(v, 4) for k, v in h.items()} for h in result.history]}


def summary(runs):
    import numpy as np

    values = {key: np.asarray([run[key] for run in runs]) for key in ("exact_match", "f1", "wall_seconds")}
    return {"exact_match_mean": float(values["exact_match"].mean()), "f1_mean": float(values["f1"].mean()),
            "f1_std": float(values["f1"].std(ddof=1)) if len(runs) > 1 else 0.0,
            "wall_seconds_mean": float(values["wall_seconds"].mean()), "runs": runs}


def main():
    from tfbert.jobs.squad import read_squad
    from tfbert.jobs.squad_metrics import squad_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default="", help="tfbert settings, ';' between them; the empty one is the defaults")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--dev", type=int, default=600)
    parser.add_argument("--unanswerable", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true", help="keep the seeds already in --out, run the others")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "finetune_squad_debian.json"))
    args = parser.parse_args()
    data_args = {key: getattr(args, key) for key in ("train", "dev", "unanswerable")}
    seeds = [int(seed) for seed in args.seeds.split(",")]
    configs = parse_configs(args.configs) or [{}]
    with tempfile.TemporaryDirectory() as data_dir:
        subprocess.run([sys.executable, str(REPO / "tools" / "make_squad_debian.py"), data_dir, "--train", str(args.train),
                        "--dev", str(args.dev), "--unanswerable", str(args.unanswerable)], check=True)
        train_path, dev_path = pathlib.Path(data_dir) / "train.json", pathlib.Path(data_dir) / "dev.json"
        train, dev = read_squad(train_path), read_squad(dev_path)
        report = {"machine": machine_info(), "args": vars(args), "data": {"train": len(train), "dev": len(dev)}}
        recipe, runs = [], {json.dumps(config, sort_keys=True): [] for config in configs}
        if args.resume and pathlib.Path(args.out).exists():
            earlier = json.loads(pathlib.Path(args.out).read_text(encoding="utf-8"))
            if {key: earlier["args"][key] for key in data_args} != data_args:
                sys.exit(f"{args.out} was made with other data options ({earlier['args']}); drop --resume or pass them.")
            earlier_where = {key: value for key, value in earlier["machine"].items() if key in ("date", "cpu", "cpu_flags")}
            recipe = [{"machine": earlier_where, **run} for run in earlier.get("pytorch_recipe", {}).get("runs", [])]
            for key, summary_of_config in earlier.get("tfbert_finetune", {}).items():
                runs.setdefault(key, []).extend({"machine": earlier_where, **run} for run in summary_of_config["runs"])
            done = {run["seed"] for run in recipe} & {run["seed"] for values in runs.values() for run in values}
            recipe = [run for run in recipe if run["seed"] in done]  # a seed half done runs again, whole
            runs = {key: [run for run in values if run["seed"] in done] for key, values in runs.items()}
            seeds = [seed for seed in seeds if seed not in done]
            print(f"resuming: seeds {sorted(done)} kept, running {seeds}", flush=True)
        where = {key: value for key, value in report["machine"].items() if key in ("date", "cpu", "cpu_flags")}

        def write(complete):
            if recipe:
                report["pytorch_recipe"] = summary(recipe)
            report["tfbert_finetune"] = {key: summary(values) for key, values in runs.items() if values}
            report["complete"] = complete
            pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

        for seed in seeds:
            with tempfile.TemporaryDirectory() as out_dir:
                if not args.skip_recipe:
                    print(f"PyTorch recipe, seed {seed} ...", flush=True)
                    predicted, facts = pytorch_recipe(seed, train, dev, out_dir)
                    recipe.append({"seed": seed, **squad_scores(predicted, dev.answer_texts), **facts, "machine": where})
                    print(f"  {recipe[-1]}", flush=True)
                    write(False)
                for config in configs:
                    key = json.dumps(config, sort_keys=True)
                    print(f"tfbert {key}, seed {seed} ...", flush=True)
                    predicted, facts = tfbert_run(config, seed, train_path, dev_path, dev, f"{out_dir}/{len(runs[key])}")
                    runs[key].append({"seed": seed, **squad_scores(predicted, dev.answer_texts), **facts, "machine": where})
                    print(f"  {runs[key][-1]}", flush=True)
                    write(False)
        write(True)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
