"""`build_classifier`: a raw-string BERT with a head, fine-tuned with plain `model.compile` / `model.fit`.

    text (, text_pair) -> tokenizer -> bert -> ClassifierHead (pooling, dropout, dense) -> logits

Tasks: "classification" (softmax over named labels), "multi_label" (a sigmoid per label) and
"regression" (one score). The label names live in the head's config, so they travel with the model
and its exports.
"""

import json
import logging
import pathlib
import shutil

import tensorflow as tf
import tf_keras

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.checkpoints.layout import VOCAB_FILE
from tfbert.defaults import CLASSIFIER_MAX_LENGTH, FINETUNE_LEARNING_RATE, POOLING_MODES, TASKS
from tfbert.errors import TfbertError, check_choice, check_dropout
from tfbert.models.encoder import BERT_LAYER, TOKENIZER_LAYER, RawTextModel, bert_outputs
from tfbert.models.optimization import create_optimizer
from tfbert.models.pooling import Pooling
from tfbert.models.precision import training_precision
from tfbert.models.weights import load_bert_model

logger = logging.getLogger(__name__)

HEAD_LAYER = "classifier_head"
MODEL_CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "model.weights.h5"


@tf_keras.saving.register_keras_serializable(package="tfbert")
class ClassifierHead(tf_keras.layers.Layer):
    """Pooling, dropout and a dense layer: BERT's outputs -> logits [batch, outputs].

    Args:
        labels: list of str. Label names, in id order. Regression: optional, at most one name.
        task: str. "classification", "multi_label" or "regression". Defaults to "classification".
        pooling: str. "pooled" (BERT's pooler: tanh(dense([CLS]))), "cls" (the [CLS] hidden state) or
            "mean" (mean over the attention mask). Defaults to "pooled".
        dropout: float. Dropout before the dense layer while training. Defaults to 0.1.
        initializer_range: float. Standard deviation of the dense kernel's initialiser. Defaults to 0.02.
    """

    def __init__(self, labels=None, task="classification", pooling="pooled", dropout=0.1, initializer_range=0.02,
                 **kwargs):
        super().__init__(**kwargs)
        check_choice("task", task, TASKS)
        check_choice("pooling", pooling, POOLING_MODES)
        labels = [str(label) for label in labels] if labels is not None else None
        if task == "regression":
            if labels is not None and len(labels) > 1:
                raise TfbertError(f"a regression head predicts one score; received {len(labels)} labels {labels[:5]}.")
        elif labels is None or len(labels) < (2 if task == "classification" else 1):
            raise TfbertError(f"task={task!r} needs the label names (at least {2 if task == 'classification' else 1}); "
                              f"received labels={labels!r}.")
        if labels is not None and len(set(labels)) != len(labels):
            raise TfbertError(f"label names must be unique; received {labels}.")
        check_dropout("dropout", dropout)
        self.labels, self.task, self.pooling = labels, task, pooling
        self.dropout, self.initializer_range = dropout, initializer_range
        self.num_outputs = 1 if task == "regression" else len(labels)
        self._pooling = Pooling(pooling)
        self._dropout = tf_keras.layers.Dropout(dropout)
        self._dense = tf_keras.layers.Dense(
            self.num_outputs, kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=initializer_range),
            name="logits",
        )

    @property
    def dense(self):
        """The dense layer that makes the logits (its kernel is [hidden, outputs])."""
        return self._dense

    def call(self, inputs, training=None):
        return self._dense(self._dropout(self._pooling(inputs), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(labels=self.labels, task=self.task, pooling=self.pooling, dropout=self.dropout,
                      initializer_range=self.initializer_range)
        return config


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertClassifier(RawTextModel):
    """The functional model `build_classifier` returns; `compile()` defaults suit BERT fine-tuning."""

    @property
    def head(self):
        """The `ClassifierHead`."""
        return self._layer_of_type(ClassifierHead)

    @property
    def labels(self):
        return self.head.labels

    @property
    def task(self):
        return self.head.task

    def compile(self, optimizer="auto", loss="auto", metrics="auto", train_steps=None, learning_rate=FINETUNE_LEARNING_RATE,
                **kwargs):
        """`tf_keras.Model.compile` with defaults for the task.

        Args:
            optimizer: "auto" for `create_optimizer(train_steps, learning_rate)` (AdamW, warm-up, linear
                decay), or any Keras optimizer.
            loss: "auto": sparse categorical cross-entropy (classification), binary cross-entropy
                (multi_label) or mean squared error (regression), all on logits.
            metrics: "auto": accuracy (classification), binary accuracy (multi_label), MAE (regression).
            train_steps: int. Total optimizer steps (epochs x steps per epoch), for the schedule.
                Without it the "auto" optimizer keeps a constant learning rate after no warm-up.
            learning_rate: float. Peak learning rate of the "auto" optimizer. Defaults to 1e-4.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = create_optimizer(train_steps, learning_rate=learning_rate)
        if isinstance(loss, str) and loss == "auto":
            loss = {
                "classification": tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "multi_label": tf_keras.losses.BinaryCrossentropy(from_logits=True),
                "regression": tf_keras.losses.MeanSquaredError(),
            }[self.task]
        if isinstance(metrics, str) and metrics == "auto":
            metrics = {
                "classification": [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                "multi_label": [tf_keras.metrics.BinaryAccuracy(name="binary_accuracy", threshold=0.0)],
                "regression": [tf_keras.metrics.MeanAbsoluteError(name="mae")],
            }[self.task]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)


def wire_classifier(tokenizer, bert, head, text_pair, name="bert_classifier", checkpoint_name=None):
    """The functional classifier: "text" (and "text_pair") -> tokenizer -> bert -> head -> logits."""
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    inputs = [text]
    if text_pair:
        inputs.append(tf_keras.Input(shape=(), dtype=tf.string, name="text_pair"))
    tokens = tokenizer(tuple(inputs) if text_pair else text)
    outputs = bert_outputs(bert, tokens)
    logits = head({**outputs, "attention_mask": tokens["attention_mask"]})
    classifier = BertClassifier(inputs={i.name.split(":")[0]: i for i in inputs} if text_pair else text, outputs=logits,
                                name=name)
    classifier.checkpoint_name = checkpoint_name
    return classifier


def build_classifier(model=None, labels=None, task="classification", pooling=None, text_pair=False,
                     max_length=CLASSIFIER_MAX_LENGTH, dropout=None, padding="longest", allow_pickle=False,
                     precision="float32", **tokenizer_options):
    """A raw-string BERT classifier (or regressor): string inputs [batch] -> logits [batch, outputs].

    Args:
        model: str. Checkpoint: preset, local Hugging Face folder or hub id. Defaults to "minilm-l6-uncased".
        labels: list of str. Label names in id order (classification, multi_label).
        task: str. "classification", "multi_label" or "regression". Defaults to "classification".
        pooling: str. "pooled", "cls" or "mean" (see `ClassifierHead`). Defaults to the checkpoint's own:
            the sentence-transformers pooling it was trained with ("mean" for the default checkpoint), else "pooled".
        text_pair: bool. Two text inputs, "text" and "text_pair" (sentence pairs). Defaults to False.
        max_length: int. Longest tokenized input. Defaults to 128.
        dropout: float. Head dropout. Defaults to the checkpoint's hidden_dropout_prob.
        padding: str. "longest" (to the longest text of the batch) or "max_length". Defaults to "longest".
        allow_pickle: bool. Accept a pytorch_model.bin checkpoint. Defaults to False.
        precision: str. "float32", or "bfloat16": the encoder computes in bfloat16 with float32
            variables (Keras mixed precision, `tfbert.models.precision`); the head and logits stay
            float32. Defaults to "float32".

    Returns:
        BertClassifier (a functional tf_keras.Model). Inputs: "text" (and "text_pair"); output: logits.
        `model.compile()` picks AdamW with warm-up and linear decay (pass train_steps), the task's loss
        and metric; `model.fit` takes a tf.data of ({"text": ...}, label) or (text, label).

    Example:
    >>> classifier = build_classifier(labels=["negative", "positive"])  # doctest: +SKIP
    >>> classifier.compile(train_steps=300)  # doctest: +SKIP
    >>> classifier.fit(tf.data.Dataset.from_tensor_slices((texts, label_ids)).batch(32), epochs=3)  # doctest: +SKIP
    """
    checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
    if max_length is None:
        max_length = min(CLASSIFIER_MAX_LENGTH, checkpoint.max_length)
    # Layers.
    tokenizer = checkpoint.build_tokenizer(max_length, padding, name=TOKENIZER_LAYER, **tokenizer_options)
    with training_precision(precision):
        bert = load_bert_model(checkpoint, name=BERT_LAYER)
    if dropout is None:
        dropout = float(checkpoint.config.hidden_dropout_prob)
    if pooling is None:
        pooling = checkpoint.pooling
    head = ClassifierHead(labels=labels, task=task, pooling=pooling, dropout=dropout,
                          initializer_range=float(checkpoint.config.initializer_range), name=HEAD_LAYER)
    # Wiring.
    return wire_classifier(tokenizer, bert, head, text_pair, checkpoint_name=checkpoint.name)


def save_classifier(model, folder):
    """Saves a classifier to a folder: its Keras config, weights and vocabulary; `load_classifier` reads it back.

    The folder is self-contained: the tokenizer's vocabulary is copied in, so it can move to another machine.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.get_config()
    shutil.copyfile(model.tokenizer.vocabulary, folder / VOCAB_FILE)
    for layer in config["layers"]:
        if layer["name"] == TOKENIZER_LAYER:
            layer["config"]["vocabulary"] = VOCAB_FILE  # relative: resolved against the folder on load
    (folder / MODEL_CONFIG_FILE).write_text(json.dumps(
        {"class_name": type(model).__name__, "config": config},
        indent=1), encoding="utf-8")
    model.save_weights(str(folder / WEIGHTS_FILE))
    return folder


def load_classifier(folder):
    """Reads a folder written by `save_classifier` (or `tfbert finetune`) back into a BertClassifier."""
    folder = pathlib.Path(folder)
    path = folder / MODEL_CONFIG_FILE
    if not path.is_file():
        raise TfbertError(f"{path} is missing: pass a folder written by tfbert.save_classifier or tfbert finetune.")
    saved = json.loads(path.read_text(encoding="utf-8"))
    config = saved["config"]
    for layer in config["layers"]:
        if layer["name"] == TOKENIZER_LAYER:
            layer["config"]["vocabulary"] = str(folder / layer["config"]["vocabulary"])
    model = BertClassifier.from_config(config)
    model.load_weights(str(folder / WEIGHTS_FILE))
    if model.checkpoint_name is None:  # folders written before the name moved into the model's config
        model.checkpoint_name = saved.get("checkpoint_name")
    return model
