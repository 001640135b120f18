"""Export size and serving speed of the default checkpoint with half of every layer's heads pruned.

Both SavedModels are exported, loaded back (tensorflow + tensorflow_text, as a server loads them) and
timed on the same batches of real Debian texts, alternating between the two so the machine's noise
falls on both. Reported: variables size, saved_model.pb size, parameters, and sentences/s of
`serving_default` at batch 32.

usage: python benchmarks/prune_heads.py [--batches 16] [--out benchmarks/results/prune_heads.json]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "prune_heads.json"))
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfbert.models.encoder import build_encoder
    from tfbert.serving.export import export_saved_model
    from tfbert.models.surgery import prune_heads

    with open(DATA / "dev.csv", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][: args.batches * 32]
    encoder = build_encoder(max_length=128)
    heads = {layer: list(range(0, encoder.get_layer("bert").config.num_attention_heads, 2))
             for layer in range(encoder.get_layer("bert").config.num_hidden_layers)}
    pruned = prune_heads(encoder, heads)
    report = {"machine": machine_info(), "pruned_heads": {str(k): v for k, v in heads.items()}, "texts": len(texts),
              "batch": 32}
    with tempfile.TemporaryDirectory() as work:
        paths = {"full": export_saved_model(encoder, pathlib.Path(work) / "full", warmup=False),
                 "pruned": export_saved_model(pruned, pathlib.Path(work) / "pruned", warmup=False)}
        models = {name: tf.saved_model.load(str(path)).signatures["serving_default"] for name, path in paths.items()}
        batches = [tf.constant(texts[i:i + 32]) for i in range(0, len(texts), 32)]
        seconds = {name: 0.0 for name in models}
        for name, model in models.items():
            model(text=batches[0])  # first call: graph initialisation
        for _ in range(args.rounds):
            for batch in batches:
                for name, model in models.items():
                    start = time.perf_counter()
                    model(text=batch)["last_hidden_state"].numpy()
                    seconds[name] += time.perf_counter() - start
        for name, path in paths.items():
            report[name] = {
                "variables_bytes": sum(f.stat().st_size for f in (path / "variables").iterdir()),
                "saved_model_pb_bytes": (path / "saved_model.pb").stat().st_size,
                "sentences_per_second": round(args.rounds * len(texts) / seconds[name], 1),
            }
    report["full"]["parameters"] = int(encoder.count_params())
    report["pruned"]["parameters"] = int(pruned.count_params())
    report["speedup"] = round(report["pruned"]["sentences_per_second"] / report["full"]["sentences_per_second"], 2)
    report["variables_ratio"] = round(report["pruned"]["variables_bytes"] / report["full"]["variables_bytes"], 3)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
