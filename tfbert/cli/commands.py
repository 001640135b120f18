"""The `tfbert` commands: one small function each, calling one library function and printing its result.

The library is imported when a command runs, not when this module is: TensorFlow and transformers take
seconds to import, and `--help` or a mistyped option should not wait for them (nor should their
start-up notices be printed before `quiet_tensorflow` runs). Hence the imports inside the functions.
"""

import json
import logging
import os
import pathlib
import sys
import warnings

from tfbert.errors import TfbertError

SEED_SENTENCE = "The quick brown fox jumps over the lazy dog fox"


def quiet_tensorflow():
    # TensorFlow's C++ start-up notices (CPU features, no CUDA) would bury the output a user asked
    # for; real failures still surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    logging.getLogger("transformers").setLevel(logging.ERROR)
    # transformers' TF code warns about its own deprecations on every run; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*seed_generator.*is deprecated")
    warnings.filterwarnings("ignore", message="TensorFlow and JAX classes are deprecated")


def embed(args):
    """Runs texts through the in-graph model; prints ids, last hidden state and pooled output."""
    import numpy as np  # noqa: I001 - imported when the command runs (see the module docstring)
    import tensorflow as tf

    if args.saved_model:  # an export needs neither transformers nor the model code: seconds less to start
        from tfbert.serving.loading import load_export

        loaded, folder = load_export(args.saved_model, signature="tokenize")
        print(f"SavedModel: {folder}\n")
        tokenize = lambda text: loaded.signatures["tokenize"](text=text)  # noqa: E731
        encode = lambda text: loaded.signatures["serving_default"](text=text)  # noqa: E731
    else:
        from tfbert.models.encoder import build_encoder

        encoder = build_encoder(args.model, max_length=args.max_length, allow_pickle=args.allow_pickle)
        tokenize, encode = encoder.tokenizer, encoder
    for text in args.texts or [SEED_SENTENCE]:
        batch = tf.constant([text])
        outputs = encode(batch)
        with np.printoptions(precision=4, suppress=True, threshold=60, edgeitems=3):
            print(f"text: {text!r}")
            print(f"input_ids: {tokenize(batch)['input_ids'].numpy()[0].tolist()}")
            for name in ("last_hidden_state", "pooled_output"):
                value = outputs[name].numpy()
                print(f"{name}: shape {tuple(value.shape)}")
                print(value)
            print()


def export(args):
    """Builds the encoder (or a task checkpoint's task module) and writes it as a versioned SavedModel; prints the folder."""
    from tfbert.checkpoints.checkpoint import load_checkpoint  # noqa: I001 - imported when the command runs
    from tfbert.models.encoder import build_encoder
    from tfbert.models.tasks import checkpoint_task
    from tfbert.serving.export import check_version_free, export_saved_model
    from tfbert.serving.models_config import update_models_config
    from tfbert.serving.task_export import build_task_module

    checkpoint = load_checkpoint(args.model, allow_pickle=args.allow_pickle)
    base_dir = pathlib.Path(args.out_dir) / (args.name or checkpoint.name)
    if args.version is not None:  # refuse a taken version before a minute of building and tracing
        check_version_free(base_dir, args.version, args.overwrite)
    task = args.task or checkpoint_task(checkpoint)
    if task == "encoder":
        model = build_encoder(args.model, max_length=args.max_length, allow_pickle=args.allow_pickle)
    else:
        model = build_task_module(args.model, task, max_length=args.max_length, allow_pickle=args.allow_pickle,
                                  **_task_options(args, task))
    path = export_saved_model(model, base_dir, version=args.version, overwrite=args.overwrite, keep=args.keep,
                              warmup=not args.no_warmup, precision=args.precision)
    if args.models_config:
        print(f"updated {update_models_config(args.out_dir, serving_root=args.serving_root)}", file=sys.stderr)
    print(path)


def _task_options(args, task):
    """The export flags that belong to `task`, as build_task_module's keyword arguments."""
    if task == "question-answering":
        return dict(top_k=args.top_k or 1, doc_stride=args.doc_stride, max_answer_len=args.max_answer_length,
                    max_question_length=args.max_question_length, max_windows=args.max_windows,
                    handle_impossible_answer=args.handle_impossible_answer)
    if task == "fill-mask":
        return {} if args.top_k is None else dict(top_k=args.top_k)
    if task == "token-classification":
        return dict(aggregation_strategy=args.aggregation_strategy)
    return {}


def predict(args):
    """Runs an export's default signature on texts; prints each text's outputs (JSON lines with --json)."""
    import numpy as np  # noqa: I001 - imported when the command runs

    from tfbert.serving.predict import predict as run

    rows, folder = run(args.saved_model, args.texts, args.pair, signature=args.signature)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    print(f"SavedModel: {folder}\n")
    for i, row in enumerate(rows):
        print(f"text: {args.texts[i]!r}" + (f"  pair: {args.pair[i]!r}" if args.pair else ""))
        with np.printoptions(precision=4, suppress=True, threshold=60, edgeitems=3):
            for name, value in row.items():
                shown = np.asarray(value) if isinstance(value, list) and value and not isinstance(value[0], str) else value
                print(f"  {name}: {shown}")
        print()


def embed_corpus(args):
    """Embeds a corpus file to .npy or .parquet, resumably; prints a summary."""
    from tfbert.jobs.embed_corpus import embed_corpus as run  # imported when the command runs

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
    from tfbert.serving.op_check import check_serving as check, format_report  # noqa: I001 - when the command runs
    from tfbert.serving.versions import latest_version

    report = check(latest_version(args.saved_model))
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 1 if report["problems"] else 0


def finetune(args):
    """Fine-tunes a classifier on labelled files, keeps the best epoch, exports it; prints a summary."""
    from tfbert.jobs.finetune import finetune as run  # imported when the command runs

    result = run(
        args.train, args.dev, model=args.model, text_columns=args.text_column or ["text"], label_column=args.label_column,
        task=args.task, epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length,
        learning_rate=args.learning_rate, pooling=args.pooling, out_dir=args.out_dir, name=args.name,
        work_dir=args.work_dir, patience=args.patience, seed=args.seed, strategy=args.strategy,
        steps_per_epoch=args.steps_per_epoch, bucketing=not args.no_bucketing, keep=args.keep, restart=args.restart,
        verbose=args.verbose, allow_pickle=args.allow_pickle, precision=args.precision, logdir=args.logdir,
        **{name: getattr(args, name) for name in ("tag_scheme", "label_all_tokens", "aggregation_strategy", "doc_stride",
                                                  "max_question_length", "max_answer_length", "max_windows",
                                                  "handle_impossible_answer")
           if getattr(args, name) is not None},
    )
    if result.resumed_from_epoch:
        print(f"resumed after epoch {result.resumed_from_epoch}")
    for entry in result.history:
        print(f"epoch {entry['epoch']}: " + "  ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch"))
    print(f"best epoch: {result.best_epoch} ({result.monitor} {result.best_metric:.4f})")
    print(f"best model: {result.model_path}")
    if result.transformers_path:
        print(f"transformers: {result.transformers_path}")
    if result.export_path:
        print(result.export_path)


def pretrain(args):
    """Pre-trains with masked LM and next-sentence prediction; writes a Hugging Face checkpoint folder."""
    from tfbert.jobs.pretrain import pretrain as run  # imported when the command runs

    result = run(
        args.corpus, args.out, model=args.model, config=args.config, steps=args.steps, batch_size=args.batch_size,
        max_length=args.max_length, learning_rate=args.learning_rate, checkpoint_every=args.checkpoint_every,
        holdout_every=args.holdout_every, eval_steps=args.eval_steps, seed=args.seed, verbose=args.verbose,
        allow_pickle=args.allow_pickle, add_tokens=_read_tokens(args.add_tokens) if args.add_tokens else None,
        logdir=args.logdir,
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
    try:
        lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TfbertError(f"cannot read the token list {path}: {e}") from e
    return [line.strip() for line in lines if line.strip()]
