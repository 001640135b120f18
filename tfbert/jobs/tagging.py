"""Words and tags to token labels for `model.fit`, and words tagged back from a model's token logits.

A sentence's words are joined with spaces into one text; the model's own tokenizer (in the graph,
with offsets) splits it, and each word's tag goes to its first sub-token. The other sub-tokens, [CLS],
[SEP] and padding get -100, which the loss skips; with `label_all_tokens` they get the word's tag
instead (a B- tag becoming I-), as transformers' token-classification recipe offers.

Predictions are read the same way: a word's tag is its first sub-token's. A word without a token
(cut off by max_length, or made only of characters the tokenizer deletes) is tagged O.
"""

import bisect
import dataclasses
import weakref

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.jobs.batching import make_dataset
from tfbert.jobs.entity_scores import score_entities, split_tag
from tfbert.models.token_classifier import IGNORED


@dataclasses.dataclass
class TaggingFeatures:
    """Sentences ready for a token classifier.

    Attributes:
        texts: list of str, each sentence's words joined with spaces.
        first_tokens: list of int arrays, per sentence the token index of each word's first sub-token
            (-1 for a word without a token).
        lengths: int32 array [n], tokens per sentence ([CLS] and [SEP] included).
        labels: int32 array [n, longest] of tag ids per token, -100 where the loss skips; None without tags.
    """

    texts: list
    first_tokens: list
    lengths: np.ndarray
    labels: np.ndarray = None

    def __len__(self):
        return len(self.texts)


def _word_starts(words):
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return starts


_OFFSETS_FUNCTIONS = weakref.WeakKeyDictionary()


def _offsets_function(tokenizer):
    """The tokenizer's `tokenize_with_offsets` as a tf.function, traced once per tokenizer (train and dev)."""
    if tokenizer not in _OFFSETS_FUNCTIONS:
        _OFFSETS_FUNCTIONS[tokenizer] = tf.function(tokenizer.tokenize_with_offsets,
                                                    input_signature=[tf.TensorSpec([None], tf.string)])
    return _OFFSETS_FUNCTIONS[tokenizer]


def tagging_features(tokenizer, words, tag_ids=None, labels=None, label_all_tokens=False, chunk=256):
    """Token labels of sentences from the model's tokenizer (see the module docstring).

    Args:
        tokenizer: BertTokenizerLayer (the model's `tokenizer`).
        words: list of lists of str, the sentences' words.
        tag_ids: list of lists of int, a tag id per word. None for prediction only.
        labels: list of str, the tag names in id order; needed with label_all_tokens (to map B- to I-).
        label_all_tokens: bool. Label every sub-token, not only a word's first. Defaults to False.
        chunk: int. Sentences tokenized at a time.

    Returns:
        TaggingFeatures.
    """
    to_inside = None
    if label_all_tokens:
        index = {name: i for i, name in enumerate(labels)}
        to_inside = np.asarray([index.get(f"I-{split_tag(name)[1]}", i) if split_tag(name)[0] == "B" else i
                                for i, name in enumerate(labels)])
    tokenize = _offsets_function(tokenizer)
    texts = [" ".join(sentence) for sentence in words]
    first_tokens, lengths, token_labels = [], [], []
    for start in range(0, len(texts), chunk):
        tokens = tokenize(tf.constant(texts[start:start + chunk], tf.string))
        offsets, mask = tokens["offsets"].numpy(), tokens["attention_mask"].numpy()
        for row in range(len(offsets)):
            sentence = start + row
            starts = _word_starts(words[sentence])
            first = np.full([len(starts)], -1, np.int32)
            length = int(mask[row].sum())
            token_words = np.full([length], -1, np.int64)
            for position in range(length):
                begin, end = offsets[row, position]
                if end > begin:
                    word = bisect.bisect_right(starts, begin) - 1
                    token_words[position] = word
                    if first[word] < 0:
                        first[word] = position
            first_tokens.append(first)
            lengths.append(length)
            if tag_ids is not None:
                tags = np.asarray(tag_ids[sentence], np.int64)
                row_labels = np.full([length], IGNORED, np.int64)
                if label_all_tokens:
                    has_word = token_words >= 0
                    row_labels[has_word] = to_inside[tags[token_words[has_word]]]
                heads = first[first >= 0]
                row_labels[heads] = tags[np.flatnonzero(first >= 0)]
                token_labels.append(row_labels)
    lengths = np.asarray(lengths, np.int32)
    padded = None
    if tag_ids is not None:
        padded = np.full([len(texts), int(lengths.max(initial=1))], IGNORED, np.int32)
        for row, values in enumerate(token_labels):
            padded[row, :len(values)] = values
    return TaggingFeatures(texts, first_tokens, lengths, padded)


def tagging_dataset(features, batch_size=32, shuffle=False, seed=0, bucketing=True):
    """A tf.data of ({"text": string [batch]}, labels int32 [batch, seq]) for a token classifier's `fit`.

    Each batch's labels are cut to its longest sentence, the length the model's tokenizer pads to.
    """
    return make_dataset([features.texts], features.labels, batch_size, features.lengths if bucketing else None,
                        shuffle=shuffle, seed=seed, label_lengths=features.lengths)


def tag_predictor(model):
    """A tf.function: texts (string [batch]) -> the model's logits [batch, seq, tags], in inference mode.
    Make it once and pass it to `predict_tags` to trace the model once for many calls."""
    return tf.function(lambda texts: model(texts, training=False), input_signature=[tf.TensorSpec([None], tf.string)])


def _logits_by_sentence(predictor, features, batch_size):
    """(sentence index, logits [tokens, tags]) for every sentence, batched by length (less padding)."""
    order = np.argsort(features.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        logits = predictor(tf.constant([features.texts[i] for i in rows], tf.string)).numpy()
        for row, sentence in zip(logits, rows):
            yield sentence, row[:features.lengths[sentence]]


def predict_tags(model, features, batch_size=32, predictor=None):
    """Each word's predicted tag (its first sub-token's), per sentence: lists of str ("O" for words without a token).

    Args:
        model: BertTokenClassifier.
        features: TaggingFeatures of the sentences.
        batch_size: int. Sentences a batch.
        predictor: the model's `tag_predictor`, to reuse its traced graph. Defaults to a new one.
    """
    return _tags_and_loss(model.labels, features, predictor or tag_predictor(model), batch_size)[0]


def _tags_and_loss(labels, features, predictor, batch_size):
    """Word tags of every sentence, and with labelled features the mean cross-entropy and accuracy over
    the labelled tokens (as the training loss and metric count them)."""
    predicted = [None] * len(features)
    total_loss, correct, labelled = 0.0, 0, 0
    for sentence, logits in _logits_by_sentence(predictor, features, batch_size):
        best = logits.argmax(axis=-1)
        predicted[sentence] = [labels[best[t]] if t >= 0 else "O" for t in features.first_tokens[sentence]]
        if features.labels is not None:
            gold = features.labels[sentence, :len(logits)]
            mask = gold >= 0
            shifted = logits[mask] - logits[mask].max(axis=-1, keepdims=True)
            log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            total_loss -= float(log_probabilities[np.arange(mask.sum()), gold[mask]].sum())
            correct += int((best[mask] == gold[mask]).sum())
            labelled += int(mask.sum())
    if not labelled:
        return predicted, None, None
    return predicted, total_loss / labelled, correct / labelled


class EntityScoresCallback(tf_keras.callbacks.Callback):
    """Scores the dev sentences at each epoch's end in one pass: adds `val_loss` and `val_accuracy` (over
    the labelled tokens, as the training loss and metric) and entity-level `val_entity_precision`,
    `val_entity_recall` and `val_entity_f1` (conlleval's counting, a word tagged by its first sub-token)
    to the epoch's logs. It replaces Keras' validation pass, which would run the model on dev a second time.

    Put it before the progress bar and `BestEpoch` in the callback list, so both see the scores.

    Args:
        features: TaggingFeatures of the dev sentences, with labels.
        gold: list of lists of str, the dev sentences' tags.
        batch_size: int.
    """

    def __init__(self, features, gold, batch_size=32):
        super().__init__()
        self.features, self.gold, self.batch_size = features, gold, batch_size
        self._predictor = None

    def on_epoch_end(self, epoch, logs=None):
        if self._predictor is None:  # traced once for the run; it reads the live weights
            self._predictor = tag_predictor(self.model)
        predicted, loss, accuracy = _tags_and_loss(self.model.labels, self.features, self._predictor, self.batch_size)
        scores = score_entities(self.gold, predicted)
        if logs is not None:
            logs.update(val_loss=loss, val_accuracy=accuracy, val_entity_precision=scores.precision,
                        val_entity_recall=scores.recall, val_entity_f1=scores.f1)
