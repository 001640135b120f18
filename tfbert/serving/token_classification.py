"""Entity tagging served from raw strings: text -> entity, score, word, start, end, num_entities.

The graph does what transformers' `TokenClassificationPipeline` (4.57, fast tokenizer) does in Python,
with `aggregation_strategy` fixed at export:

- "none": every token (not [CLS], [SEP] or padding) whose best label is not ignored, with that
  label (`entity`), its probability (`score`), the token (`word`; an [UNK]'s word is the text it
  covers), its character offsets, and its position in the sequence (`index`);
- "simple": tokens grouped as the pipeline groups them (a `B-` label, or another tag, starts a new
  group): `entity` is the group's tag without its `B-`/`I-` prefix, `score` the mean of its tokens',
  `word` the tokens joined back into text;
- "first", "average", "max": tokens first merged into words (a token is part of the word before it
  when its string is not as long as the text it covers, as the pipeline decides it), each word's
  label from its first token's probabilities, their average, or the token with the highest, then
  grouped as "simple".

Groups and tokens whose label (or tag) is in `ignore_labels` (default ["O"]) are left out. Outputs
are [batch, n], padded to the batch's most entities ("" and 0), and `num_entities` [batch].

Where tfbert differs: a special token written literally in the text ("[MASK]") is tagged like any
token (the pipeline skips it); texts are truncated to the export's max_length.
"""

import tensorflow as tf

from tfbert.errors import TfbertError, check_choice
from tfbert.defaults import AGGREGATION_STRATEGIES
from tfbert.serving.modules import TEXT
from tfbert.serving.task_base import TaskModule, run_model
from tfbert.text.detokenize import join_wordpieces
from tfbert.text.offsets import sanitize_utf8
from tfbert.text.ragged import from_rows


class TokenClassificationModule(TaskModule):
    """A token-classification export. Options: aggregation_strategy ("none", the pipeline's default,
    "simple", "first", "average", "max") and ignore_labels (default ["O"], as the pipeline's; labels
    you pass must be the model's labels or tags)."""

    def __init__(self, tokenizer, model, aggregation_strategy="none", ignore_labels=None):
        check_choice("aggregation_strategy", aggregation_strategy, AGGREGATION_STRATEGIES)
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if ignore_labels is None:
            ignore_labels = ["O"]  # the pipeline's default, whether or not the model has an "O" label
        else:
            unknown = [label for label in ignore_labels if label not in labels and label not in _tags(labels)]
            if unknown:
                raise TfbertError(f"ignore_labels {unknown} are not labels or tags of the model ({', '.join(labels)}).")
        super().__init__("tfbert_token_classification", tokenizer, model, "token-classification",
                         dict(aggregation_strategy=aggregation_strategy, ignore_labels=list(ignore_labels)))
        self._labels = tf.constant(labels)
        self._group_names = tf.constant([label.split("-", 1)[-1] for label in labels])
        tags = _tags(labels)
        self._tag_ids = tf.constant([tags.index(_tag(label)[1]) for label in labels])
        self._begins = tf.constant([_tag(label)[0] == "B" for label in labels])
        self._ignored_labels = tf.constant([label in ignore_labels for label in labels])
        self._ignored_groups = tf.constant([label.split("-", 1)[-1] in ignore_labels for label in labels])
        self._tag = tf.function(self._tag_fn, input_signature=[TEXT])

    @property
    def labels(self):
        return [label.decode() for label in self._labels.numpy()]

    def serving_default(self):
        return self._tag

    def _tag_fn(self, text):
        text = sanitize_utf8(text)
        tokens = self.tokenizer.tokenize_with_offsets(text)
        probabilities = tf.nn.softmax(run_model(self.model, tokens).logits)
        entities = self._tokens(text, tokens, probabilities)
        strategy = self.options["aggregation_strategy"]
        if strategy in ("first", "average", "max"):
            entities = self._words(entities, strategy)
        if strategy == "none":
            keep = ~tf.gather(self._ignored_labels, entities["label"])
            outputs = {"entity": tf.gather(self._labels, entities["label"]), "score": entities["score"],
                       "word": entities["word"], "start": entities["start"], "end": entities["end"],
                       "index": entities["index"]}
        else:
            entities = self._groups(entities)
            keep = ~tf.gather(self._ignored_groups, entities["label"])
            outputs = {"entity": tf.gather(self._group_names, entities["label"]), "score": entities["score"],
                       "word": entities["word"], "start": entities["start"], "end": entities["end"]}
        rows = tf.boolean_mask(entities["row"], keep)
        batch = tf.shape(text, out_type=tf.int64)[0]
        padded = {name: from_rows(tf.boolean_mask(value, keep), rows, batch).to_tensor()
                  for name, value in outputs.items()}
        padded["num_entities"] = tf.cast(tf.math.bincount(tf.cast(rows, tf.int32), minlength=tf.cast(batch, tf.int32),
                                                          maxlength=tf.cast(batch, tf.int32)), tf.int32)
        return padded

    def _tokens(self, text, tokens, probabilities):
        """The pipeline's pre-entities: flat over the batch, tokens other than [CLS], [SEP] and padding."""
        mask = tokens["attention_mask"]
        position = tf.range(tf.shape(mask)[1])[None, :]
        length = tf.reduce_sum(mask, axis=1, keepdims=True)
        keep = (mask == 1) & (position > 0) & (position < length - 1)
        where = tf.where(keep)
        row = where[:, 0]
        ids = tf.gather_nd(tokens["input_ids"], where)
        offsets = tf.gather_nd(tokens["offsets"], where)
        start, end = offsets[:, 0], offsets[:, 1]
        probabilities = tf.gather_nd(probabilities, where)
        token = self.token_strings(ids)
        unknown = tf.equal(ids, self.tokenizer.unk_id)
        covered = tf.strings.substr(tf.gather(text, row), start, end - start, unit="UTF8_CHAR")
        subword = tf.not_equal(tf.strings.length(token, unit="UTF8_CHAR"), end - start) & ~unknown
        return {"row": row, "index": tf.cast(where[:, 1], tf.int32), "probabilities": probabilities,
                "label": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
                "score": tf.reduce_max(probabilities, axis=-1), "word": tf.where(unknown, covered, token),
                "start": start, "end": end, "subword": subword}

    def _words(self, tokens, strategy):
        """The pipeline's `aggregate_words`: tokens merged into words, each with one label."""
        first_in_row = _first_in_row(tokens["row"])
        group = tf.cumsum(tf.cast(first_in_row | ~tokens["subword"], tf.int32)) - 1
        count = tf.size(group)
        index = tf.range(count)
        words = tf.reduce_max(tf.concat([group, [-1]], 0)) + 1
        first = tf.math.unsorted_segment_min(index, group, words)
        probabilities = tokens["probabilities"]
        if strategy == "first":
            chosen = tf.gather(probabilities, first)
        elif strategy == "max":
            best = tf.math.unsorted_segment_max(tokens["score"], group, words)
            is_best = tf.equal(tokens["score"], tf.gather(best, group))
            chosen = tf.gather(probabilities, tf.math.unsorted_segment_min(tf.where(is_best, index, count), group, words))
        else:
            chosen = tf.math.unsorted_segment_mean(probabilities, group, words)
        label = tf.argmax(chosen, axis=-1, output_type=tf.int32)
        return {"row": tf.gather(tokens["row"], first), "label": label,
                "score": tf.gather(chosen, label, batch_dims=1), "word": _joined(tokens["word"], group, words),
                "start": tf.math.unsorted_segment_min(tokens["start"], group, words),
                "end": tf.math.unsorted_segment_max(tokens["end"], group, words)}

    def _groups(self, entities):
        """The pipeline's `group_entities`: adjacent entities of one tag, a `B-` label starting a new group."""
        label = entities["label"]
        tag = tf.gather(self._tag_ids, label)
        previous_tag = tf.concat([[-1], tag[:-1]], 0)
        new = _first_in_row(entities["row"]) | tf.gather(self._begins, label) | tf.not_equal(tag, previous_tag)
        group = tf.cumsum(tf.cast(new, tf.int32)) - 1
        groups = tf.reduce_max(tf.concat([group, [-1]], 0)) + 1
        first = tf.math.unsorted_segment_min(tf.range(tf.size(group)), group, groups)
        return {"row": tf.gather(entities["row"], first), "label": tf.gather(label, first),
                "score": tf.math.unsorted_segment_mean(entities["score"], group, groups),
                "word": _joined(entities["word"], group, groups),
                "start": tf.math.unsorted_segment_min(entities["start"], group, groups),
                "end": tf.math.unsorted_segment_max(entities["end"], group, groups)}


def _tag(label):
    """The pipeline's `get_tag`: ("B" or "I", tag)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _tags(labels):
    return list(dict.fromkeys(_tag(label)[1] for label in labels))


def _first_in_row(rows):
    return tf.not_equal(rows, tf.concat([tf.constant([-1], rows.dtype), rows[:-1]], 0))


def _joined(words, group, groups):
    """The words of each group joined back into text, as `convert_tokens_to_string`."""
    ragged = from_rows(words, tf.cast(group, tf.int64), tf.cast(groups, tf.int64))
    return join_wordpieces(ragged)
