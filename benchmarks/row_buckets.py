"""What rounding the rows up to a bucket size (`tfbert.models.row_buckets`) is worth to the bfloat16
export, on batches whose shapes the server has not met.

oneDNN compiles a kernel for each MatMul shape it meets and caches it; the real tokens of a batch of
32 are a new count almost every batch. Two bfloat16 exports of the default checkpoint: as shipped
(rows rounded up to a bucket size), and an ablation with exact row counts (`row_bucket` replaced by
the identity while it exports). With `--precision float32`, two float32 exports: as shipped (exact
rows), and an ablation with rows rounded up as bfloat16's are. Each runs in its own process
(oneDNN's cache is per process), as TF Serving runs it (a TF1 `Session`): `--warm` batches of 32
texts, then `--batches` batches of 32 texts it has not seen, timed (texts/s). The two alternate,
`--rounds` times each; the result keeps every round's figure, each variant's median, and the rounds
in which buckets were faster than the exact rows served right after them (a pair). One more run of
each, with `ONEDNN_VERBOSE=all` (untimed), counts the kernels oneDNN compiled for the dense layers
(`inner_product`) on the new batches, and their compile time.

usage: python benchmarks/row_buckets.py [--kind first|long] [--precision bfloat16|float32] [--warm 60]
       [--batches 10] [--rounds 3] [--out benchmarks/results/row_buckets.json]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine import machine_info
from profile_serving import text_kinds
from serving_engines import TfbertServing

REPO = pathlib.Path(__file__).resolve().parents[1]
KINDS = {"first": "first sentences", "long": "long descriptions"}
VARIANTS = ("buckets", "exact rows")
NEW_BATCHES = "-- new batches --"


def export(folder, variant, precision):
    """An export of the default checkpoint; the variant the precision does not ship is an ablation."""
    import tfbert
    from tfbert.models import inference

    if variant == "exact rows":
        inference.row_bucket = lambda count: count
    elif precision == "float32":
        rows = inference._Rows
        inference._Rows = lambda attention_mask, unpad, bucketed=False: rows(attention_mask, unpad, bucketed=True)
    encoder = tfbert.build_encoder()
    return str(tfbert.export_saved_model(encoder, folder, version=1, warmup=False, precision=precision))


def serve(path, kind, warm, batches):
    """Texts per second on `batches` new batches of 32, after `warm` others, in a TF1 Session."""
    texts = text_kinds()[KINDS[kind]]
    engine = TfbertServing(path, "tfbert export")
    for start in range(0, warm * 32, 32):
        engine(texts[start:start + 32])
    new = [texts[start:start + 32] for start in range(warm * 32, (warm + batches) * 32, 32)]
    print(NEW_BATCHES, flush=True)
    began = time.perf_counter()
    for batch in new:
        engine(batch)
    return sum(len(batch) for batch in new) / (time.perf_counter() - began)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=tuple(KINDS), default="first")
    parser.add_argument("--precision", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--warm", type=int, default=60)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "row_buckets.json"))
    parser.add_argument("--export-to", help=argparse.SUPPRESS)  # child: export one variant
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # child: serve one export
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.export_to:
        print(export(args.export_to, args.variant, args.precision))
        return
    if args.serve:
        print(serve(args.serve, args.kind, args.warm, args.batches))
        return

    def child(*options, environment=None):
        result = subprocess.run([sys.executable, __file__, *options], check=True, capture_output=True, text=True,
                                env={**os.environ, **(environment or {})})
        return result.stdout.strip().splitlines()

    def compiled(path):
        """The dense layers' kernels oneDNN compiled on the new batches, and their milliseconds."""
        lines = child("--serve", path, "--kind", args.kind, "--warm", str(args.warm), "--batches", str(args.batches),
                      environment={"ONEDNN_VERBOSE": "all"})
        created = [line.split(",") for line in lines[lines.index(NEW_BATCHES):]
                   if "create:cache_miss" in line and ",inner_product," in line]
        return {"kernels": len(created), "ms": round(sum(float(fields[-1]) for fields in created), 1)}

    report = {"machine": machine_info(), "args": vars(args), "texts_per_s": {variant: [] for variant in VARIANTS}}
    with tempfile.TemporaryDirectory() as work:
        paths = {variant: child("--export-to", str(pathlib.Path(work) / variant.replace(" ", "-")), "--variant",
                                variant, "--precision", args.precision)[-1] for variant in VARIANTS}
        report["dense_kernels_compiled_on_new_batches"] = {variant: compiled(paths[variant]) for variant in VARIANTS}
        print(report["dense_kernels_compiled_on_new_batches"], flush=True)
        for _ in range(args.rounds):
            for variant in VARIANTS:
                speed = float(child("--serve", paths[variant], "--kind", args.kind, "--warm", str(args.warm),
                                    "--batches", str(args.batches))[-1])
                report["texts_per_s"][variant].append(round(speed, 1))
                print(variant, round(speed, 1), flush=True)
    speeds = report["texts_per_s"]
    report["median"] = {variant: statistics.median(values) for variant, values in speeds.items()}
    report["buckets_vs_exact_median"] = round(report["median"]["buckets"] / report["median"]["exact rows"], 2)
    report["rounds_won_by_buckets"] = sum(b > e for b, e in zip(speeds["buckets"], speeds["exact rows"]))
    print(json.dumps(report["median"]), report["buckets_vs_exact_median"], report["rounds_won_by_buckets"])
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
