"""Task exports against transformers' pipelines: latency at batch 1 and throughput at batch 32, in one run.

Each task's checkpoint is the default checkpoint's encoder (MiniLM-L6, hidden 384) with that task's
head freshly initialised by transformers (seed 0), saved in Hugging Face layout: realistic compute,
meaningless answers. tfbert side: the export (`build_task_module` + `export_saved_model`, default
options, `aggregation_strategy="simple"` for entities) loaded with `tf.saved_model.load`, calling
`serving_default` on raw strings. Peer: transformers' pipeline of the task on PyTorch (float32, fast
tokenizer, the same weights), called with the same texts (`batch_size=32` for the batches). Inputs are
Debian descriptions (dev split): first sentences for batch 1, whole descriptions for batch 32; question
answering pairs them with a fixed question. Engines alternate within each round; best of the rounds.

    python benchmarks/task_latency.py [--rounds 3] [--out benchmarks/results/task_latency.json]
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine_info  # noqa: E402

QUESTION = "What does this package provide?"
TASKS = ("question-answering", "token-classification", "fill-mask", "text-classification")


def debian_dev():
    import csv

    path = REPO.parent / "shared" / "data" / "debian-sections" / "dev.csv"
    with open(path, encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def make_checkpoints(root):
    import torch
    from transformers import (BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
                              BertForTokenClassification, BertTokenizer)

    from tfbert.checkpoints.checkpoint import load_checkpoint

    base = load_checkpoint()
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    classes = {"question-answering": (BertForQuestionAnswering, {}),
               "token-classification": (BertForTokenClassification, dict(id2label=dict(enumerate(labels)),
                                                                          label2id={l: i for i, l in enumerate(labels)})),
               "fill-mask": (BertForMaskedLM, {}),
               "text-classification": (BertForSequenceClassification, dict(num_labels=3))}
    folders = {}
    for task, (model_class, config) in classes.items():
        torch.manual_seed(0)
        model = model_class.from_pretrained(str(base.folder), **config).eval()
        folders[task] = root / task
        model.save_pretrained(folders[task], safe_serialization=True)
        BertTokenizer(str(base.vocab_file)).save_pretrained(folders[task])
    return folders


def inputs_for(task, texts):
    if task == "question-answering":
        return {"question": [QUESTION] * len(texts), "context": texts}
    if task == "fill-mask":
        masked = []
        for text in texts:
            words = text.split(" ")
            words[len(words) // 2] = "[MASK]"
            masked.append(" ".join(words))
        return {"text": masked}
    return {"text": texts}


def timed(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single-calls", type=int, default=20, help="batch-1 calls a round (p50 reported)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "task_latency.json"))
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoModelForSequenceClassification
    from transformers import AutoModelForTokenClassification, BertTokenizerFast, pipeline

    from tfbert.serving.export import export_saved_model
    from tfbert.serving.task_export import build_task_module

    torch.set_num_threads(2)
    texts = debian_dev()
    short = [t.split(". ")[0] for t in texts[:args.single_calls]]
    batch = texts[100:132]
    root = pathlib.Path(tempfile.mkdtemp(prefix="task-latency-"))
    folders = make_checkpoints(root)
    auto = {"question-answering": AutoModelForQuestionAnswering, "token-classification": AutoModelForTokenClassification,
            "fill-mask": AutoModelForMaskedLM, "text-classification": AutoModelForSequenceClassification}
    options = {"token-classification": dict(aggregation_strategy="simple")}
    results = {}
    for task in TASKS:
        module = build_task_module(str(folders[task]), **options.get(task, {}))
        path = export_saved_model(module, root / "exports" / task, warmup=False)
        served = tf.saved_model.load(str(path)).signatures["serving_default"]
        pipe = pipeline(task, model=auto[task].from_pretrained(folders[task]),
                        tokenizer=BertTokenizerFast.from_pretrained(folders[task]), **options.get(task, {}))

        def run_tfbert(rows):
            served(**{k: tf.constant(v) for k, v in rows.items()})

        def run_pipeline(rows, batch_size=1):
            if task == "question-answering":
                pipe(question=rows["question"], context=rows["context"], batch_size=batch_size)
            else:
                pipe(rows["text"], batch_size=batch_size)

        singles = [inputs_for(task, [t]) for t in short]
        whole = inputs_for(task, batch)
        run_tfbert(singles[0]), run_pipeline(singles[0]), run_tfbert(whole), run_pipeline(whole, 32)  # warm-up
        single = {"tfbert": [], "pipeline": []}
        batched = {"tfbert": [], "pipeline": []}
        for _ in range(args.rounds):
            single["tfbert"].append(statistics.median(t for rows in singles for t in timed(lambda: run_tfbert(rows), 1)))
            single["pipeline"].append(statistics.median(t for rows in singles for t in timed(lambda: run_pipeline(rows), 1)))
            batched["tfbert"].append(min(timed(lambda: run_tfbert(whole), 1)))
            batched["pipeline"].append(min(timed(lambda: run_pipeline(whole, 32), 1)))
        results[task] = {
            "batch_1_p50_ms": {k: round(1000 * min(v), 2) for k, v in single.items()},
            "batch_32_texts_per_s": {k: round(len(batch) / min(v), 1) for k, v in batched.items()},
        }
        results[task]["batch_1_latency_ratio_tfbert_over_pipeline"] = round(
            results[task]["batch_1_p50_ms"]["tfbert"] / results[task]["batch_1_p50_ms"]["pipeline"], 3)
        results[task]["batch_32_throughput_ratio_tfbert_over_pipeline"] = round(
            results[task]["batch_32_texts_per_s"]["tfbert"] / results[task]["batch_32_texts_per_s"]["pipeline"], 3)
        print(task, json.dumps(results[task]), flush=True)
    report = {"machine": machine_info(), "command": " ".join(["python", "benchmarks/task_latency.py", *sys.argv[1:]]),
              "rounds": args.rounds, "single_texts": len(short), "batch_texts": len(batch), "results": results,
              "note": "Checkpoints: the default checkpoint's encoder with freshly initialised task heads (seed 0). "
                      "Batch 1: the median over the first sentences of 20 dev descriptions, best of the rounds. "
                      "Batch 32: 32 whole dev descriptions in one call, best of the rounds. Both engines on 2 threads."}
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
