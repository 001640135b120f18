"""How close tfbert's outputs are to the reference, measured on the default checkpoint over real texts.

The reference is the classic recipe: transformers' Python `BertTokenizer` and PyTorch `BertModel`.
tfbert runs from raw strings through its in-graph tokenizer (`build_encoder`, and `embed` for sentence
embeddings). Texts: the Debian dev set (475 descriptions) and the first 200 tokenizer edge cases, in
batches of 32, truncated at 512 tokens. Reported: whether every id equals the reference's; the largest
absolute difference of `last_hidden_state` (real tokens only) and `pooled_output`; the smallest cosine
between sentence embeddings (mean-pooled, L2-normalised). The tests assert bounds on the same
quantities (tests/test_encoder.py, tests/test_embedding.py); this script records the measured values.

usage: python benchmarks/parity.py [--out benchmarks/results/parity.json]
Needs the test extra: python -m pip install -e '.[test]'
"""

import argparse
import csv
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from machine import machine_info  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TFBERT_SHARED", REPO.parent / "shared"))


def texts():
    with open(SHARED / "data" / "debian-sections" / "dev.csv", encoding="utf-8") as f:
        debian = [row["text"] for row in csv.DictReader(f)]
    with open(SHARED / "data" / "tokenizer-cases.jsonl", encoding="utf-8") as f:
        cases = [json.loads(line)["text"] for line in f if line.strip()][:200]
    return debian, cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "parity.json"))
    args = parser.parse_args()

    import tensorflow as tf
    import torch
    from transformers import BertModel, BertTokenizer

    from tfbert.checkpoints.checkpoint import load_checkpoint
    from tfbert.models.embedding import embed
    from tfbert.models.encoder import build_encoder

    torch.set_num_threads(os.cpu_count())
    encoder = build_encoder()
    folder = str(load_checkpoint().folder)
    reference_tokenizer = BertTokenizer.from_pretrained(folder)
    reference_model = BertModel.from_pretrained(folder).eval()
    debian, cases = texts()
    corpus = debian + cases

    ids_equal, hidden, pooled, cosines = True, 0.0, 0.0, []
    ours_embedded = embed(corpus, encoder, batch_size=args.batch_size)
    for start in range(0, len(corpus), args.batch_size):
        batch_texts = corpus[start:start + args.batch_size]
        batch = reference_tokenizer(batch_texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            theirs = reference_model(**batch)
        ours = encoder(tf.constant(batch_texts))
        tokens = encoder.get_layer("tokenizer")(tf.constant(batch_texts))
        ids_equal &= np.array_equal(tokens["input_ids"].numpy(), batch["input_ids"].numpy())
        valid = batch["attention_mask"].numpy().astype(bool)
        hidden = max(hidden, float(np.abs(ours["last_hidden_state"].numpy()[valid]
                                          - theirs.last_hidden_state.numpy()[valid]).max()))
        pooled = max(pooled, float(np.abs(ours["pooled_output"].numpy() - theirs.pooler_output.numpy()).max()))
        mask = batch["attention_mask"][:, :, None].float()
        mean = (theirs.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        reference = torch.nn.functional.normalize(mean, dim=-1).numpy()
        cosines += np.sum(ours_embedded[start:start + len(batch_texts)] * reference, axis=1).tolist()

    report = {"machine": machine_info(), "texts": {"debian_dev": len(debian), "tokenizer_cases": len(cases)},
              "batch_size": args.batch_size, "input_ids_equal": bool(ids_equal),
              "last_hidden_state_max_abs_difference": hidden, "pooled_output_max_abs_difference": pooled,
              "sentence_embedding_min_cosine": float(min(cosines))}
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
