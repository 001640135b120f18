"""`finetune_qa`: SQuAD-style questions in, the best epoch's question answerer out, exported for TF
Serving with the question-answering signatures and saved in Hugging Face layout.

The dev metric is SQuAD's exact match and F1 on each dev question's whole context, decoded by the
export's own code (`tfbert.jobs.qa_features.SquadScoresCallback`). Each best epoch is kept as a
Hugging Face folder (`BertForQuestionAnswering`), which the export is built from.
"""

import logging
import math

from tfbert import defaults
from tfbert.errors import check_positive_int
from tfbert.jobs.distribution import seeded_strategy
from tfbert.jobs.qa_features import SquadScoresCallback, qa_dataset, qa_windows
from tfbert.jobs.squad import read_squad
from tfbert.jobs.training_run import WorkFolder, check_training_precision, for_strategy, run_name
from tfbert.models.question_answerer import build_question_answerer
from tfbert.models.transformers_layout import save_transformers

logger = logging.getLogger(__name__)

MONITOR = "val_f1"


def finetune_qa(train, dev, model=None, doc_stride=defaults.QA_DOC_STRIDE, max_question_length=defaults.QA_MAX_QUESTION_LENGTH,
                max_answer_length=defaults.QA_MAX_ANSWER_LENGTH, max_windows=defaults.QA_MAX_WINDOWS,
                handle_impossible_answer=None, epochs=None, batch_size=None, max_length=None,
                learning_rate=defaults.FINETUNE_LEARNING_RATE, out_dir=defaults.OUT_DIR, name=None, work_dir=None,
                patience=defaults.FINETUNE_PATIENCE, seed=defaults.SEED, strategy="default", steps_per_epoch=None,
                bucketing=True, export=True, keep=None, restart=False, verbose=1, allow_pickle=False,
                precision="float32", logdir=None):
    """Fine-tunes extractive question answering; keeps the best epoch by dev F1 and exports it.

    Args:
        train, dev: str. SQuAD v1.1 / v2.0 JSON or JSONL files (`tfbert.jobs.squad`). dev may be None.
        model: str. Checkpoint to start from. Defaults to "minilm-l6-uncased".
        doc_stride, max_question_length, max_windows: windows, as the export's (defaults 128, 64, 32).
        max_answer_length: int. Longest answer in tokens, for dev decoding and the export. Defaults to 15.
        handle_impossible_answer: bool. Dev decoding and the export may answer "" (SQuAD 2.0). Defaults
            to whether the training data has impossible questions.
        epochs, batch_size, max_length, learning_rate: the usual. Defaults 2, 16, 384, 1e-4.
        out_dir, name, work_dir, patience, seed, strategy, steps_per_epoch, bucketing, export, keep,
            restart, verbose, allow_pickle, precision, logdir: as `tfbert.jobs.finetune.finetune`.

    Returns:
        FinetuneResult; `transformers_path` is out_dir/name/transformers when exported.
    """
    check_positive_int("max_answer_length", max_answer_length, "tokens an answer")
    check_training_precision(precision)
    epochs = defaults.QA_EPOCHS if epochs is None else epochs
    batch_size = defaults.QA_BATCH_SIZE if batch_size is None else batch_size
    train_set = read_squad(train)
    dev_set = read_squad(dev) if dev is not None else None
    if handle_impossible_answer is None:
        handle_impossible_answer = any(not answers for answers in train_set.answers)
    name = run_name(train, name)
    work = WorkFolder(out_dir, name, work_dir, restart)
    if work.finished:
        return work.result(MONITOR)

    strategy_name = strategy
    strategy, chief = seeded_strategy(seed, strategy)
    options = dict(doc_stride=doc_stride, max_answer_len=max_answer_length, max_question_length=max_question_length,
                   max_windows=max_windows, handle_impossible_answer=bool(handle_impossible_answer))
    with strategy.scope():
        answerer = build_question_answerer(model, max_length=max_length, allow_pickle=allow_pickle, precision=precision)
        windows = qa_windows(answerer.tokenizer, train_set.questions, train_set.contexts,
                             [answers[0] if answers else None for answers in train_set.answers],
                             doc_stride, max_question_length, max_windows)
        train_data = qa_dataset(windows, batch_size, shuffle=True, seed=seed, bucketing=bucketing)
        dev_data = callbacks = None
        if dev_set is not None:
            dev_windows = qa_windows(answerer.tokenizer, dev_set.questions, dev_set.contexts,
                                     [answers[0] if answers else None for answers in dev_set.answers],
                                     doc_stride, max_question_length, max_windows)
            dev_data = qa_dataset(dev_windows, batch_size, bucketing=bucketing)
            callbacks = [SquadScoresCallback(dev_set.questions, dev_set.contexts, dev_set.answer_texts, options, batch_size)]
        steps = math.ceil(len(windows) / batch_size)
        train_data, dev_data, steps = for_strategy(train_data, dev_data, steps, steps_per_epoch, strategy, chief)
        answerer.compile(train_steps=steps * epochs, learning_rate=learning_rate)
    logger.info("%d training questions in %d windows", len(train_set), len(windows))

    monitor, mode = (MONITOR, "max") if dev_data is not None else ("loss", "min")
    hparams = dict(task="question-answering", model=answerer.checkpoint_name, epochs=epochs, batch_size=batch_size,
                   max_length=answerer.tokenizer.max_length, learning_rate=learning_rate, patience=patience, seed=seed,
                   strategy=strategy_name, steps_per_epoch=steps_per_epoch, bucketing=bucketing, precision=precision,
                   **options)
    resumed = work.fit(answerer, train_data, dev_data, epochs, steps if steps_per_epoch else None, monitor, mode,
                       patience, strategy, chief, save=save_transformers, callbacks=callbacks or (), verbose=verbose,
                       logdir=logdir, hparams=hparams)

    export_path = transformers_path = None
    if chief and export and work.state["best_epoch"]:
        data = {"train": str(train), "train examples": len(train_set), "dev": str(dev) if dev is not None else None,
                "dev examples": len(dev_set) if dev_set is not None else None}
        card = work.card(answerer.checkpoint_name, data, hparams, monitor)
        export_path, transformers_path = work.export_best(out_dir, name, keep, "question-answering", card=card,
                                                          max_length=answerer.tokenizer.max_length, top_k=1, **options)
    work.finish(chief, export_path, transformers_path)
    return work.result(monitor, answerer, resumed)
