"""`finetune`: files of labelled text in, the best epoch's model out, exported for TF Serving and saved in
Hugging Face layout.

Classification, multi-label and regression are trained here; `task="token-classification"` hands
over to `tfbert.jobs.finetune_tagger`. The work folder, resuming after a kill and early stopping are
`tfbert.jobs.training_run`'s.
"""

import logging
import math
import pathlib

import tensorflow as tf

from tfbert import defaults
from tfbert.errors import TfbertError, check_choice
from tfbert.jobs import examples
from tfbert.jobs.batching import make_dataset, token_lengths
from tfbert.jobs.distribution import seeded_strategy
from tfbert.jobs.finetune_qa import finetune_qa
from tfbert.jobs.finetune_tagger import finetune_tagger
from tfbert.jobs.training_run import (TRANSFORMERS_FOLDER, FinetuneResult, WorkFolder, check_training_precision,
                                      for_strategy, replace_folder, run_name)
from tfbert.models.classifier import build_classifier, load_classifier, save_classifier
from tfbert.models.transformers_layout import save_transformers
from tfbert.serving.export import export_saved_model

logger = logging.getLogger(__name__)

__all__ = ["FinetuneResult", "finetune"]

# The tasks trained elsewhere: (their run, what they read, their model builder).
TASK_RUNS = {
    "token-classification": (finetune_tagger, "tagged files (CoNLL or JSONL)", "build_token_classifier"),
    "question-answering": (finetune_qa, "SQuAD JSON or JSONL files", "build_question_answerer"),
}
# Their options, passed through finetune's **task_options.
TASK_OPTIONS = {
    "token-classification": {"tag_scheme", "label_all_tokens", "aggregation_strategy"},
    "question-answering": {"doc_stride", "max_question_length", "max_answer_length", "max_windows",
                           "handle_impossible_answer"},
}

MONITORS = {  # task: (dev metric, better)
    "classification": ("val_accuracy", "max"),
    "multi_label": ("val_binary_accuracy", "max"),
    "regression": ("val_loss", "min"),
}


def _read(train, dev, text_columns, label_column, task):
    train_examples = examples.read_examples(train, text_columns, label_column, task)
    dev_examples = examples.read_examples(dev, text_columns, label_column, task) if dev is not None else None
    return train_examples, dev_examples


def finetune(train, dev, model=None, text_columns=("text",), label_column="label", task="classification",
             epochs=None, batch_size=None, max_length=None,
             learning_rate=defaults.FINETUNE_LEARNING_RATE, pooling=None, out_dir=defaults.OUT_DIR, name=None, work_dir=None,
             patience=defaults.FINETUNE_PATIENCE, seed=defaults.SEED, strategy="default", steps_per_epoch=None, bucketing=True, export=True, keep=None, restart=False,
             verbose=1, allow_pickle=False, labels=None, precision="float32", logdir=None, **task_options):
    """Fine-tunes a checkpoint on labelled text files; keeps the best epoch by the dev metric and exports it.

    Args:
        train, dev: str. Files (.csv, .tsv, .jsonl) with the text column(s) and the label column; or
            tf.data.Datasets of unbatched (features, label) elements, features a string or a dict
            {"text", "text_pair"}, labels as ids (then pass `labels`; shuffle the training set yourself).
        model: str. Checkpoint to start from. Defaults to "minilm-l6-uncased".
        text_columns: one column name, or two for sentence pairs. Defaults to ("text",).
        label_column: str. Defaults to "label".
        task: str. "classification", "multi_label" or "regression"; "token-classification", which
            takes CoNLL or JSONL files of tagged words (`tfbert.jobs.finetune_tagger.finetune_tagger`);
            or "question-answering", which takes SQuAD JSON or JSONL files
            (`tfbert.jobs.finetune_qa.finetune_qa`). Those two list their own options, passed through
            `**task_options`.
        epochs, batch_size, max_length, learning_rate: the usual. Defaults 4, 32, 128, 1e-4 (for token
            classification 4, 16, 256, 1e-4; for question answering 2, 16, 384, 1e-4).
        pooling: str. "pooled", "cls" or "mean". Defaults to the checkpoint's (see build_classifier).
        out_dir: str. Where the export goes: out_dir/name/<version>. Defaults to "saved_models".
        name: str. Model name. Defaults to the training file's folder (or stem).
        work_dir: str. The run's state (see the module docstring). Defaults to out_dir/.finetune/name.
        patience: int. Early stopping after this many epochs without improvement; None never stops.
        seed: int. Seeds weights of the head, dropout and shuffling.
        strategy: str. "default", "mirrored" or "multi-worker" (TF_CONFIG).
        steps_per_epoch: int. Cap on steps per epoch (a short run). Defaults to the whole training set.
        bucketing: bool. Batch texts of similar length together. Defaults to True.
        export: bool. Export the best epoch as a SavedModel. Defaults to True.
        keep: int. Keep only this many newest exported versions.
        restart: bool. Discard a previous run's state and train anew.
        labels: list of str. Label names in id order; needed only with tf.data inputs.
        precision: str. "float32", or "bfloat16": mixed precision, the encoder computing in bfloat16
            with float32 master weights (`tfbert.models.precision`). It pays on CPUs with AMX (Intel
            Xeon Sapphire Rapids and later); elsewhere bfloat16 is emulated and slower. The saved
            models and the export are float32 either way. Defaults to "float32".
        logdir: str. Where the TensorBoard logs go (`tfbert.jobs.tensorboard`): each epoch's train and
            dev metrics and learning rate, and the run's hyper-parameters. Defaults to work_dir/logs.

    Returns:
        FinetuneResult. When the classifier has a transformers class (pooling "pooled"), the best epoch
        is also saved in Hugging Face layout at out_dir/name/transformers (`transformers_path`).
    """
    check_choice("task", task, defaults.FINETUNE_TASKS)
    foreign = sorted(set(task_options) - TASK_OPTIONS.get(task, set()))
    if foreign:
        owners = [name for name, options in TASK_OPTIONS.items() if foreign[0] in options]
        raise TfbertError(f"{', '.join(foreign)} apply to {' or '.join(owners) or 'no task'}, not to task={task!r}.")
    if task in TASK_RUNS:
        run, reads, builder = TASK_RUNS[task]
        if pooling is not None or labels is not None or isinstance(train, tf.data.Dataset):
            raise TfbertError(f"{task} reads {reads} and has no pooling or labels option; for your own tf.data, "
                              f"build the model with tfbert.{builder}.")
        return run(train, dev, model=model, epochs=epochs, batch_size=batch_size, max_length=max_length,
                   learning_rate=learning_rate, out_dir=out_dir, name=name, work_dir=work_dir, patience=patience,
                   seed=seed, strategy=strategy, steps_per_epoch=steps_per_epoch, bucketing=bucketing, export=export,
                   keep=keep, restart=restart, verbose=verbose, allow_pickle=allow_pickle, precision=precision,
                   logdir=logdir, **task_options)
    check_training_precision(precision)
    epochs = defaults.FINETUNE_EPOCHS if epochs is None else epochs
    batch_size = defaults.BATCH_SIZE if batch_size is None else batch_size
    from_datasets = isinstance(train, tf.data.Dataset)
    if from_datasets:
        if labels is None and task != "regression":
            raise TfbertError("with a tf.data training set, pass labels=[...] (the label names, in id order).")
        if dev is not None and not isinstance(dev, tf.data.Dataset):
            raise TfbertError("pass dev as a tf.data.Dataset too when train is one.")
        name = name or "classifier"
    else:
        train_examples, dev_examples = _read(train, dev, text_columns, label_column, task)
        name = run_name(train, name)
    work = WorkFolder(out_dir, name, work_dir, restart)
    if work.finished:
        return work.result(MONITORS[task][0])

    if not from_datasets:
        labels = examples.label_names(train_examples, task)
        train_labels = examples.encode_labels(train_examples, labels, task)
        dev_labels = examples.encode_labels(dev_examples, labels, task) if dev_examples is not None else None
        text_pair = len(train_examples.texts) == 2
    else:
        features_spec = train.element_spec[0]
        text_pair = isinstance(features_spec, dict) and "text_pair" in features_spec
    strategy_name = strategy
    strategy, chief = seeded_strategy(seed, strategy)
    with strategy.scope():
        classifier = build_classifier(model, labels=labels, task=task, pooling=pooling, text_pair=text_pair,
                                      max_length=max_length, allow_pickle=allow_pickle, precision=precision)
        tokenizer = classifier.tokenizer
        if from_datasets:
            train_data = train.batch(batch_size).prefetch(tf.data.AUTOTUNE)
            dev_data = dev.batch(batch_size).prefetch(tf.data.AUTOTUNE) if dev is not None else None
            cardinality = int(train_data.cardinality())
            if cardinality < 0 and steps_per_epoch is None:
                raise TfbertError("the training tf.data has no known length; pass steps_per_epoch.")
            steps = cardinality if cardinality >= 0 else steps_per_epoch
        else:
            lengths = token_lengths(tokenizer, train_examples.texts) if bucketing else None
            train_data = make_dataset(train_examples.texts, train_labels, batch_size, lengths, shuffle=True, seed=seed)
            dev_data = None
            if dev_examples is not None:
                dev_lengths = token_lengths(tokenizer, dev_examples.texts) if bucketing else None
                dev_data = make_dataset(dev_examples.texts, dev_labels, batch_size, dev_lengths)
            steps = math.ceil(len(train_examples) / batch_size)
        train_data, dev_data, steps = for_strategy(train_data, dev_data, steps, steps_per_epoch, strategy, chief)
        classifier.compile(train_steps=steps * epochs, learning_rate=learning_rate)

    monitor, mode = MONITORS[task]
    if dev_data is None:
        monitor, mode = "loss", "min"
    hparams = dict(task=task, model=classifier.checkpoint_name, labels=len(labels or ()), text_pair=text_pair,
                   epochs=epochs, batch_size=batch_size, max_length=tokenizer.max_length, learning_rate=learning_rate,
                   pooling=classifier.head.pooling, patience=patience, seed=seed, strategy=strategy_name,
                   steps_per_epoch=steps_per_epoch, bucketing=bucketing, precision=precision)
    resumed = work.fit(classifier, train_data, dev_data, epochs, steps if steps_per_epoch else None, monitor, mode,
                       patience, strategy, chief, save=save_classifier, verbose=verbose, logdir=logdir, hparams=hparams)

    export_path = transformers_path = None
    if chief and export and work.state["best_epoch"]:
        best_model = load_classifier(work.best_folder())
        data = ({"train": "tf.data", "dev": "tf.data" if dev is not None else None} if from_datasets else
                {"train": str(train), "train examples": len(train_examples),
                 "dev": str(dev) if dev is not None else None,
                 "dev examples": len(dev_examples) if dev_examples is not None else None})
        card = work.card(classifier.checkpoint_name, data, hparams, monitor)
        export_path = export_saved_model(best_model, pathlib.Path(out_dir) / name, keep=keep, card=card)
        if best_model.head.pooling == "pooled":
            transformers_path = replace_folder(pathlib.Path(out_dir) / name / TRANSFORMERS_FOLDER,
                                               lambda folder: save_transformers(best_model, folder, {**card, "name": name}))
        else:
            logger.info("not saved in Hugging Face layout: transformers has no class for %r pooling "
                        "(fine-tune with --pooling pooled for a BertForSequenceClassification folder)",
                        best_model.head.pooling)
    work.finish(chief, export_path, transformers_path)
    return work.result(monitor, classifier, resumed)
