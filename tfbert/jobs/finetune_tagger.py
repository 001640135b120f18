"""`finetune_tagger`: tagged words in (CoNLL or JSONL), the best epoch's token classifier out, exported
for TF Serving with the token-classification signatures and saved in Hugging Face layout.

The dev metric is entity-level F1, counted as conlleval counts it (`tfbert.jobs.entity_scores`), on
every dev word: a word's tag is its first sub-token's. Each best epoch is kept as a Hugging Face
folder (`BertForTokenClassification`), which the export is built from, so the export, the
transformers folder and PyTorch all serve the same weights.
"""

import logging
import math

from tfbert import defaults
from tfbert.errors import check_choice
from tfbert.jobs.distribution import seeded_strategy
from tfbert.jobs.tagged_text import encode_tags, read_tagged, tag_names
from tfbert.jobs.tagging import EntityScoresCallback, tagging_dataset, tagging_features
from tfbert.jobs.training_run import WorkFolder, check_training_precision, for_strategy, run_name
from tfbert.models.token_classifier import build_token_classifier
from tfbert.models.transformers_layout import save_transformers

logger = logging.getLogger(__name__)

MONITOR = "val_entity_f1"


def finetune_tagger(train, dev, model=None, tag_scheme="iob2", label_all_tokens=False,
                    aggregation_strategy=defaults.TAGGER_AGGREGATION, epochs=None, batch_size=None,
                    max_length=None,
                    learning_rate=defaults.FINETUNE_LEARNING_RATE, out_dir=defaults.OUT_DIR, name=None, work_dir=None,
                    patience=defaults.FINETUNE_PATIENCE, seed=defaults.SEED, strategy="default", steps_per_epoch=None,
                    bucketing=True, export=True, keep=None, restart=False, verbose=1, allow_pickle=False,
                    precision="float32", logdir=None):
    """Fine-tunes a token classifier on tagged sentences; keeps the best epoch by dev entity F1 and exports it.

    Args:
        train, dev: str. CoNLL files (a word and its tag a line, blank lines between sentences) or JSONL
            files ({"tokens": [...], "tags": [...]}); see `tfbert.jobs.tagged_text`. dev may be None.
        model: str. Checkpoint to start from. Defaults to "minilm-l6-uncased".
        tag_scheme: str. "iob2" or "iob1" (converted to IOB2). Defaults to "iob2".
        label_all_tokens: bool. Label every sub-token with its word's tag, not only the first. Defaults to False.
        aggregation_strategy: str. The export's entity grouping (as transformers' pipeline). Defaults to "first".
        epochs, batch_size, max_length, learning_rate: the usual. Defaults 4, 16, 256 (at most the
            checkpoint's max_position_embeddings), 1e-4. Chosen on WNUT-17 (benchmarks/README.md).
        out_dir, name, work_dir, patience, seed, strategy, steps_per_epoch, bucketing, export, keep,
            restart, verbose, allow_pickle, precision, logdir: as `tfbert.jobs.finetune.finetune`.

    Returns:
        FinetuneResult; `transformers_path` is out_dir/name/transformers when exported.
    """
    check_choice("aggregation_strategy", aggregation_strategy, defaults.AGGREGATION_STRATEGIES)
    check_training_precision(precision)
    epochs = defaults.TAGGER_EPOCHS if epochs is None else epochs
    batch_size = defaults.TAGGER_BATCH_SIZE if batch_size is None else batch_size
    train_sentences = read_tagged(train, tag_scheme)
    dev_sentences = read_tagged(dev, tag_scheme) if dev is not None else None
    labels = tag_names(train_sentences)
    train_ids = encode_tags(train_sentences, labels)
    dev_ids = encode_tags(dev_sentences, labels) if dev_sentences is not None else None
    name = run_name(train, name)
    work = WorkFolder(out_dir, name, work_dir, restart)
    if work.finished:
        return work.result(MONITOR)

    strategy_name = strategy
    strategy, chief = seeded_strategy(seed, strategy)
    with strategy.scope():
        tagger = build_token_classifier(model, labels, max_length=max_length, allow_pickle=allow_pickle, precision=precision)
        features = tagging_features(tagger.tokenizer, train_sentences.words, train_ids, labels, label_all_tokens)
        _warn_cut(features, train_sentences, tagger.tokenizer.max_length)
        train_data = tagging_dataset(features, batch_size, shuffle=True, seed=seed, bucketing=bucketing)
        dev_data = callbacks = None
        if dev_sentences is not None:
            dev_features = tagging_features(tagger.tokenizer, dev_sentences.words, dev_ids, labels)
            _warn_cut(dev_features, dev_sentences, tagger.tokenizer.max_length)
            # The callback scores dev in one pass (loss, accuracy, entity F1); no Keras validation pass.
            callbacks = [EntityScoresCallback(dev_features, dev_sentences.tags, batch_size)]
        steps = math.ceil(len(features) / batch_size)
        train_data, dev_data, steps = for_strategy(train_data, dev_data, steps, steps_per_epoch, strategy, chief)
        tagger.compile(train_steps=steps * epochs, learning_rate=learning_rate)

    monitor, mode = (MONITOR, "max") if callbacks else ("loss", "min")
    hparams = dict(task="token-classification", model=tagger.checkpoint_name, labels=len(labels), epochs=epochs,
                   batch_size=batch_size, max_length=tagger.tokenizer.max_length, learning_rate=learning_rate,
                   tag_scheme=tag_scheme, label_all_tokens=label_all_tokens, aggregation_strategy=aggregation_strategy,
                   patience=patience, seed=seed, strategy=strategy_name, steps_per_epoch=steps_per_epoch,
                   bucketing=bucketing, precision=precision)
    resumed = work.fit(tagger, train_data, dev_data, epochs, steps if steps_per_epoch else None, monitor, mode,
                       patience, strategy, chief, save=save_transformers, callbacks=callbacks or (), verbose=verbose,
                       logdir=logdir, hparams=hparams)

    export_path = transformers_path = None
    if chief and export and work.state["best_epoch"]:
        data = {"train": str(train), "train examples": len(train_sentences), "dev": str(dev) if dev is not None else None,
                "dev examples": len(dev_sentences) if dev_sentences is not None else None}
        card = work.card(tagger.checkpoint_name, data, hparams, monitor)
        export_path, transformers_path = work.export_best(out_dir, name, keep, "token-classification", card=card,
                                                          max_length=tagger.tokenizer.max_length,
                                                          aggregation_strategy=aggregation_strategy)
    work.finish(chief, export_path, transformers_path)
    return work.result(monitor, tagger, resumed)


def _warn_cut(features, sentences, max_length):
    cut = sum(bool((first < 0).any()) for first in features.first_tokens)
    if cut:
        logger.warning("%d of %d sentences in %s have words without a token (past max_length=%d, or only characters "
                       "the tokenizer deletes); those words are tagged O", cut, len(sentences), sentences.source,
                       max_length)
