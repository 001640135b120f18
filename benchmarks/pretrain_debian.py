"""Pre-training learns: a tiny BERT from scratch, and continued pre-training of the default checkpoint.

Corpus: ../shared/data/debian-descriptions.txt; every 20th document is held out of training.
1. A tiny BERT (2 layers, hidden 128, default vocabulary) pre-trained from scratch with `tfbert.pretrain`
   (the CLI's code path). Held-out MLM accuracy is compared with the most-frequent-token baseline
   (always predicting the commonest non-special token of the training documents; its accuracy is
   that token's share of the held-out documents' non-special tokens), NSP accuracy with 50% and with
   a lexical baseline (logistic regression on the TF-IDF cosine of the two segments): how much NSP
   signal word overlap alone carries on this corpus.
2. Continued pre-training of the default checkpoint: held-out MLM loss before and after.
   The default checkpoint (all-MiniLM-L6-v2) ships without MLM and NSP heads, so they start fresh;
   the "before" figure is that of the fresh heads on the pre-trained encoder.

usage: python benchmarks/pretrain_debian.py [--tiny-steps 6000] [--continued-steps 300]
       [--out benchmarks/results/pretrain_debian.json]
"""

import argparse
import collections
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
CORPUS = pathlib.Path(os.environ.get("TFBERT_SHARED", REPO.parent / "shared")) / "data" / "debian-descriptions.txt"


def most_frequent_token_baseline(tokenizer, holdout_every, segment_chars, sample_pairs=20_000):
    """Accuracy of always predicting the training split's commonest non-special token, on held-out text."""

    from tfbert.jobs.sentence_pairs import sentence_pairs

    special = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.mask_id, tokenizer.unk_id}

    def counts(split):
        counter = collections.Counter()
        pairs = sentence_pairs(CORPUS, split, holdout_every, segment_chars=segment_chars)
        for features, _ in pairs.take(sample_pairs).batch(512):
            tokens = tokenizer((features["text"], features["text_pair"]))
            ids = tokens["input_ids"].numpy()[tokens["attention_mask"].numpy() == 1]
            counter.update(int(i) for i in ids if int(i) not in special)
        return counter

    train, heldout = counts("train"), counts("heldout")
    token, _ = train.most_common(1)[0]
    return {"token": token, "accuracy": heldout[token] / sum(heldout.values())}


def lexical_nsp_baseline(holdout_every, segment_chars, train_pairs=20_000):
    """NSP from word overlap alone: logistic regression on the TF-IDF cosine of the two segments (and
    their lengths), trained on training pairs, scored on held-out pairs. How much NSP signal the
    corpus holds for a model that only compares words."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from tfbert.jobs.sentence_pairs import sentence_pairs

    def pairs(split, count, seed):
        rows = list(sentence_pairs(CORPUS, split, holdout_every, seed=seed, segment_chars=segment_chars)
                    .take(count).as_numpy_iterator())
        return [f["text"].decode() for f, _ in rows], [f["text_pair"].decode() for f, _ in rows], np.array([l for _, l in rows])

    train, heldout = pairs("train", train_pairs, 0), pairs("heldout", train_pairs, 7)
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2).fit(train[0] + train[1])

    def features(texts, pairs_, _):
        a, b = vectorizer.transform(texts), vectorizer.transform(pairs_)
        cosine = np.asarray(a.multiply(b).sum(axis=1)).ravel()
        lengths = np.log1p([[len(t), len(p)] for t, p in zip(texts, pairs_)])
        return np.column_stack([cosine, cosine > 0, lengths])

    model = LogisticRegression(max_iter=1000).fit(features(*train), train[2])
    return {"accuracy": float(model.score(features(*heldout), heldout[2])), "heldout_pairs": len(heldout[2])}


def heldout_metrics(pretrainer, holdout_every, steps, batch_size, segment_chars, seed=0):
    from tfbert.jobs.sentence_pairs import pretraining_batches, sentence_pairs

    pairs = sentence_pairs(CORPUS, "heldout", holdout_every, seed=seed + 7, segment_chars=segment_chars)
    batches = pretraining_batches(pairs, pretrainer.tokenizer, batch_size=batch_size, seed=seed + 7)
    return {k: float(v) for k, v in pretrainer.evaluate(batches, steps=steps, verbose=0, return_dict=True).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-steps", type=int, default=6000)
    parser.add_argument("--tiny-learning-rate", type=float, default=1e-3)
    parser.add_argument("--continued-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pretrain_debian.json"))
    args = parser.parse_args()

    import tensorflow as tf

    from tfbert.models.optimization import create_optimizer
    from tfbert.jobs.pretrain import pretrain
    from tfbert.models.pretrainer import build_pretrainer

    holdout_every = 20
    report = {"corpus": str(CORPUS), "holdout_every": holdout_every, "args": vars(args), "machine": machine_info()}
    with tempfile.TemporaryDirectory() as work:
        print("tiny BERT from scratch ...", flush=True)
        start = time.perf_counter()
        tiny = pretrain(CORPUS, pathlib.Path(work) / "tiny", config="tiny", steps=args.tiny_steps,
                        batch_size=args.batch_size, max_length=args.max_length, learning_rate=args.tiny_learning_rate,
                        checkpoint_every=max(1, args.tiny_steps // 5), holdout_every=holdout_every,
                        eval_steps=args.eval_steps, verbose=2)
        seconds = time.perf_counter() - start
        baseline = most_frequent_token_baseline(tiny.pretrainer.tokenizer, holdout_every, 2 * args.max_length)
        nsp_baseline = lexical_nsp_baseline(holdout_every, 2 * args.max_length)
        report["tiny_from_scratch"] = {
            "steps": args.tiny_steps, "wall_seconds": round(seconds, 1),
            "heldout": tiny.heldout, "most_frequent_token_baseline": baseline, "lexical_nsp_baseline": nsp_baseline,
            "curve": [{k: round(v, 4) for k, v in h.items()} for h in tiny.history],
        }
        print(json.dumps(report["tiny_from_scratch"], indent=1), flush=True)

        print("continued pre-training of the default checkpoint ...", flush=True)
        tf.keras.utils.set_random_seed(0)
        start_model = build_pretrainer(max_length=args.max_length)
        start_model.compile(optimizer=create_optimizer(1))
        before = heldout_metrics(start_model, holdout_every, args.eval_steps, args.batch_size, 2 * args.max_length)
        start = time.perf_counter()
        continued = pretrain(CORPUS, pathlib.Path(work) / "continued", model="minilm-l6-uncased",
                             steps=args.continued_steps, batch_size=args.batch_size, max_length=args.max_length,
                             learning_rate=5e-5, checkpoint_every=max(1, args.continued_steps // 3),
                             holdout_every=holdout_every, eval_steps=args.eval_steps, verbose=2)
        report["continued_default_checkpoint"] = {
            "steps": args.continued_steps, "wall_seconds": round(time.perf_counter() - start, 1),
            "heldout_before": before, "heldout_after": continued.heldout,
            "curve": [{k: round(v, 4) for k, v in h.items()} for h in continued.history],
        }
        print(json.dumps(report["continued_default_checkpoint"], indent=1), flush=True)

    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    tiny_ok = (report["tiny_from_scratch"]["heldout"]["mlm_accuracy"] > 2 * baseline["accuracy"]
               and report["tiny_from_scratch"]["heldout"]["nsp_accuracy"] > 0.6)
    continued_ok = report["continued_default_checkpoint"]["heldout_after"]["mlm_loss"] < before["mlm_loss"]
    print(f"tiny learns (MLM > 2x baseline, NSP > 60%): {tiny_ok}; continued lowers held-out MLM loss: {continued_ok}")
    return 0 if tiny_ok and continued_ok else 1


if __name__ == "__main__":
    sys.exit(main())
