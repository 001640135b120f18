"""`finetune`: files of labelled text in, the best epoch's classifier out, exported for TF Serving.

A run keeps its state in a work folder (default `<out_dir>/.finetune/<name>/`):

    backup/       tf_keras BackupAndRestore: weights, optimizer and epoch at the end of each epoch
    best-<N>/     the best epoch so far (save_classifier layout)
    state.json    best epoch and metric, epochs without improvement, per-epoch history, finished flag

A run killed at any point and started again with the same arguments resumes after the last finished
epoch, with its best model, early-stopping count and history intact. A finished run started again
reports its result instead of training again (pass restart=True / --restart to train anew).
"""

import dataclasses
import logging
import math
import pathlib
import shutil

import tensorflow as tf
import tf_keras

from tfbert import defaults
from tfbert.errors import TfbertError
from tfbert.files import write_json
from tfbert.jobs import examples
from tfbert.jobs.batching import make_dataset, token_lengths
from tfbert.jobs.best_epoch import STATE_FILE, BestEpoch
from tfbert.jobs.distribution import is_chief, make_strategy
from tfbert.models.classifier import build_classifier, load_classifier
from tfbert.serving.export import export_saved_model

logger = logging.getLogger(__name__)

MONITORS = {  # task: (dev metric, better)
    "classification": ("val_accuracy", "max"),
    "multi_label": ("val_binary_accuracy", "max"),
    "regression": ("val_loss", "min"),
}


@dataclasses.dataclass
class FinetuneResult:
    """What a fine-tuning run produced."""

    export_path: pathlib.Path  # the SavedModel version folder (None if not exported)
    model_path: pathlib.Path  # the best epoch's Keras model (load_classifier)
    best_epoch: int  # 1-based
    best_metric: float
    monitor: str
    history: list  # one dict of metrics per finished epoch
    resumed_from_epoch: int  # 0 for a fresh start
    classifier: object = None  # the trained BertClassifier (last epoch's weights); None if nothing ran


def _read(train, dev, text_columns, label_column, task):
    train_examples = examples.read_examples(train, text_columns, label_column, task)
    dev_examples = examples.read_examples(dev, text_columns, label_column, task) if dev is not None else None
    return train_examples, dev_examples


def finetune(train, dev, model=None, text_columns=("text",), label_column="label", task="classification",
             epochs=defaults.FINETUNE_EPOCHS, batch_size=defaults.BATCH_SIZE, max_length=defaults.CLASSIFIER_MAX_LENGTH,
             learning_rate=defaults.FINETUNE_LEARNING_RATE, pooling=None, out_dir=defaults.OUT_DIR, name=None, work_dir=None,
             patience=defaults.FINETUNE_PATIENCE, seed=defaults.SEED, strategy="default", steps_per_epoch=None, bucketing=True, export=True, keep=None, restart=False,
             verbose=1, allow_pickle=False, labels=None):
    """Fine-tunes a checkpoint on labelled text files; keeps the best epoch by the dev metric and exports it.

    Args:
        train, dev: str. Files (.csv, .tsv, .jsonl) with the text column(s) and the label column; or
            tf.data.Datasets of unbatched (features, label) elements, features a string or a dict
            {"text", "text_pair"}, labels as ids (then pass `labels`; shuffle the training set yourself).
        model: str. Checkpoint to start from. Defaults to "minilm-l6-uncased".
        text_columns: one column name, or two for sentence pairs. Defaults to ("text",).
        label_column: str. Defaults to "label".
        task: str. "classification", "multi_label" or "regression".
        epochs, batch_size, max_length, learning_rate: the usual. Defaults 4, 32, 128, 1e-4.
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

    Returns:
        FinetuneResult.
    """
    from_datasets = isinstance(train, tf.data.Dataset)
    if from_datasets:
        if labels is None and task != "regression":
            raise TfbertError("with a tf.data training set, pass labels=[...] (the label names, in id order).")
        if dev is not None and not isinstance(dev, tf.data.Dataset):
            raise TfbertError("pass dev as a tf.data.Dataset too when train is one.")
        name = name or "classifier"
    else:
        train_examples, dev_examples = _read(train, dev, text_columns, label_column, task)
        if name is None:
            train_path = pathlib.Path(train).resolve()
            name = train_path.parent.name if train_path.stem.lower() in ("train", "training") else train_path.stem
    work = pathlib.Path(work_dir) if work_dir else pathlib.Path(out_dir) / ".finetune" / name
    if restart and work.exists():
        shutil.rmtree(work)
    state = BestEpoch.load_state(work)
    if state.get("finished") and state.get("best_epoch"):
        logger.info("%s holds a finished run; pass restart=True (--restart) to train again", work)
        return _result(work, state, MONITORS[task][0], state.get("export_path"), resumed=len(state["history"]))
    work.mkdir(parents=True, exist_ok=True)

    if not from_datasets:
        labels = examples.label_names(train_examples, task)
        train_labels = examples.encode_labels(train_examples, labels, task)
        dev_labels = examples.encode_labels(dev_examples, labels, task) if dev_examples is not None else None
        text_pair = len(train_examples.texts) == 2
    else:
        features_spec = train.element_spec[0]
        text_pair = isinstance(features_spec, dict) and "text_pair" in features_spec
    tf_keras.utils.set_random_seed(seed)
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    chief = is_chief(strategy)
    with strategy.scope():
        classifier = build_classifier(model, labels=labels, task=task, pooling=pooling, text_pair=text_pair,
                                      max_length=max_length, allow_pickle=allow_pickle)
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
        if strategy.num_replicas_in_sync > 1 or not chief:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            train_data = train_data.with_options(options)
            dev_data = dev_data.with_options(options) if dev_data is not None else None
        if steps_per_epoch is not None:
            steps = min(steps, steps_per_epoch)
            train_data = train_data.repeat()
        classifier.compile(train_steps=steps * epochs, learning_rate=learning_rate)

    monitor, mode = MONITORS[task]
    if dev_data is None:
        monitor, mode = "loss", "min"
    best = BestEpoch(work, monitor, mode, patience, write=chief)
    resumed = len(best.state["history"])
    # BestEpoch runs before BackupAndRestore at each epoch's end: a kill between the two re-runs the
    # epoch, whose history entry is then replaced, never lost.
    backup_dir = work / "backup" if chief else work / f"backup-worker-{strategy.cluster_resolver.task_id}"
    callbacks = [best, tf_keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False)]
    classifier.fit(train_data, validation_data=dev_data, epochs=epochs, steps_per_epoch=steps if steps_per_epoch else None,
                   callbacks=callbacks, verbose=verbose)

    state = best.state
    export_path = None
    if chief and export and state["best_epoch"]:
        best_model = load_classifier(work / f"best-{state['best_epoch']}")
        export_path = export_saved_model(best_model, pathlib.Path(out_dir) / name, keep=keep)
    state.update(finished=True, export_path=str(export_path) if export_path else None)
    if chief:
        write_json(work / STATE_FILE, state)
        shutil.rmtree(work / "backup", ignore_errors=True)
    return _result(work, state, monitor, export_path, resumed, classifier)


def _result(work, state, monitor, export_path, resumed, classifier=None):
    return FinetuneResult(
        export_path=pathlib.Path(export_path) if export_path else None,
        model_path=work / f"best-{state['best_epoch']}",
        best_epoch=state["best_epoch"],
        best_metric=state["best_metric"],
        monitor=monitor,
        history=state["history"],
        resumed_from_epoch=resumed,
        classifier=classifier,
    )
