"""`build_token_classifier`: a raw-string BERT that tags every token, fine-tuned with `model.compile` / `model.fit`.

    text -> tokenizer -> BertTagger (transformers' TFBertForTokenClassification) -> logits [batch, seq, tags]

The tagger is transformers' own class (BERT without the pooler, dropout, a dense layer), so its
weights carry the names of `BertForTokenClassification` and the model saves in Hugging Face layout
(`tfbert.models.transformers_layout`). Labels are tag ids per token, -100 where the loss ignores a
token ([CLS], [SEP], padding, and the sub-tokens after a word's first one), as in transformers'
token-classification recipe.
"""

import dataclasses

import tensorflow as tf
import tf_keras
from transformers import BertConfig, TFBertForTokenClassification

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.defaults import FINETUNE_LEARNING_RATE, TAGGER_MAX_LENGTH
from tfbert.errors import TfbertError, check_dropout
from tfbert.models.backbone import KerasConfigMixin
from tfbert.models.encoder import RawTextModel
from tfbert.models.optimization import create_optimizer
from tfbert.models.precision import training_precision
from tfbert.models.weights import load_weights

IGNORED = -100  # the label of tokens the loss skips (transformers' ignore_index)
TOKENIZER_LAYER = "tokenizer"
TAGGER_LAYER = "tagger"


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertTagger(KerasConfigMixin, TFBertForTokenClassification):
    """transformers' `TFBertForTokenClassification` with a round-tripping Keras config."""


def config_with_labels(config, labels):
    """A copy of a BertConfig for a head over `labels`: num_labels, id2label and label2id set."""
    config = BertConfig.from_dict(config.to_dict())
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    return config


@tf_keras.saving.register_keras_serializable(package="tfbert")
class MaskedAccuracy(tf_keras.metrics.Metric):
    """Token accuracy over the labelled tokens (labels >= 0): [batch, seq] labels, [batch, seq, tags] logits."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_weight(name="correct", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int32)
        labelled = tf.cast(y_true >= 0, tf.float32)
        hits = tf.cast(tf.equal(y_true, tf.argmax(y_pred, axis=-1, output_type=tf.int32)), tf.float32)
        self.correct.assign_add(tf.reduce_sum(hits * labelled))
        self.count.assign_add(tf.reduce_sum(labelled))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertTokenClassifier(RawTextModel):
    """The functional model `build_token_classifier` returns: "text" (string [batch]) -> logits [batch, seq, tags].
    Its BERT is inside `tagger`, transformers' task model, so `bert` (a BertBackbone) is not available."""

    @property
    def tagger(self):
        """The `BertTagger` (a transformers `TFBertForTokenClassification`)."""
        return self._layer_of_type(BertTagger)

    @property
    def labels(self):
        """Tag names in id order."""
        id2label = self.tagger.config.id2label
        return [id2label[i] for i in range(len(id2label))]

    def compile(self, optimizer="auto", loss="auto", metrics="auto", train_steps=None,
                learning_rate=FINETUNE_LEARNING_RATE, **kwargs):
        """`tf_keras.Model.compile` with defaults for tagging.

        Args:
            optimizer: "auto" for `create_optimizer(train_steps, learning_rate)` (AdamW, warm-up, linear decay).
            loss: "auto": sparse categorical cross-entropy on logits, averaged over the labelled tokens
                (labels of -100 are skipped, as PyTorch's `ignore_index`).
            metrics: "auto": token accuracy over the labelled tokens.
            train_steps: int. Total optimizer steps, for the schedule.
            learning_rate: float. Peak learning rate of the "auto" optimizer.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = create_optimizer(train_steps, learning_rate=learning_rate)
        if isinstance(loss, str) and loss == "auto":
            loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORED)
        if isinstance(metrics, str) and metrics == "auto":
            metrics = [MaskedAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)


def wire_token_classifier(tokenizer, tagger, checkpoint_name=None):
    """The functional model: "text" -> tokenizer -> tagger -> logits."""
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    tokens = tokenizer(text)
    logits = tagger(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                    token_type_ids=tokens["token_type_ids"]).logits
    if logits.dtype != tf.float32:  # a mixed-precision tagger: the loss and metrics take float32
        logits = tf_keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
    model = BertTokenClassifier(text, logits, name="bert_token_classifier")
    model.checkpoint_name = checkpoint_name
    return model


def build_token_classifier(model=None, labels=None, max_length=None, dropout=None, allow_pickle=False,
                           precision="float32", **tokenizer_options):
    """A raw-string BERT token classifier: string inputs [batch] -> logits [batch, seq, tags].

    Args:
        model: str. Checkpoint: preset, local Hugging Face folder or hub id. Defaults to "minilm-l6-uncased".
            A `BertForTokenClassification` checkpoint keeps its head when `labels` is None or equal to
            its own; otherwise the head starts fresh.
        labels: list of str. Tag names in id order, e.g. ["O", "B-PER", "I-PER"]. Defaults to the
            checkpoint's own (config.id2label) when it has a token-classification head.
        max_length: int. Longest tokenized input; longer texts are cut. Defaults to 256, at most the
            checkpoint's max_position_embeddings.
        dropout: float. Dropout before the dense layer. Defaults to the checkpoint's classifier_dropout,
            else hidden_dropout_prob (as transformers).
        allow_pickle: bool. Accept a pytorch_model.bin checkpoint. Defaults to False.
        precision: str. "float32", or "bfloat16": BERT and its dense layer compute in bfloat16 with
            float32 variables (`tfbert.models.precision`); the logits are cast to float32. Defaults to "float32".

    Returns:
        BertTokenClassifier (a functional tf_keras.Model): input "text", output logits [batch, seq, tags]
        over the tokenizer's tokens ([CLS] first, padded to the longest text of the batch).
        `compile(train_steps=...)` picks AdamW with warm-up and linear decay and a loss that skips
        labels of -100; `tfbert.jobs.tagging.tagging_dataset` makes matching labels from words and tags.

    Example:
    >>> tagger = build_token_classifier(labels=["O", "B-LOC", "I-LOC"])  # doctest: +SKIP
    >>> tagger(tf.constant(["Flights to New York"])).shape  # doctest: +SKIP
    TensorShape([1, 6, 3])
    """
    checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
    own = checkpoint.config.id2label if "BertForTokenClassification" in (checkpoint.config.architectures or []) else None
    own = [own[i] for i in range(len(own))] if own else None
    if labels is None:
        if own is None:
            raise TfbertError(f"{checkpoint.name} has no token-classification head; pass labels=[...] (the tag names, "
                              "in id order), e.g. from tfbert.jobs.tagged_text.tag_names.")
        labels = own
    labels = [str(label) for label in labels]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise TfbertError(f"a token classifier needs at least 2 distinct tag names; received {labels[:10]}.")
    if max_length is None:
        max_length = min(TAGGER_MAX_LENGTH, checkpoint.max_length)
    config = config_with_labels(checkpoint.config, labels)
    if dropout is not None:
        config.classifier_dropout = check_dropout("dropout", dropout)
    # Layers.
    tokenizer = checkpoint.build_tokenizer(max_length, "longest", name=TOKENIZER_LAYER, **tokenizer_options)
    keep_head = labels == own
    with training_precision(precision):
        tagger, _ = load_weights(BertTagger, dataclasses.replace(checkpoint, config=config), TAGGER_LAYER,
                                 optional=("pooler",) if keep_head else ("pooler", "classifier."),
                                 exclude=() if keep_head else ("classifier.",))
    # Wiring.
    return wire_token_classifier(tokenizer, tagger, checkpoint.name)
