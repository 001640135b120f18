"""`build_question_answerer`: BERT with a start/end head on question–context windows, fine-tuned with `fit`.

    windows {"input_ids", "token_type_ids", "attention_mask"} -> BertSpanPredictor
        (transformers' TFBertForQuestionAnswering) -> {"start_logits", "end_logits"} [batch, seq]

Training runs on windows, not raw strings: a long context gives several windows, each with its own
answer position (or [CLS] when the answer is not in it), as in transformers' question-answering
recipe. `tfbert.jobs.qa_features` makes the windows with the model's own in-graph tokenizer
(`tokenizer.tokenize_windows`), and the served model takes raw strings: the question-answering export
(`tfbert.serving.question_answering`) runs the same tokenizer and head, with the decoding in the graph.
"""

import dataclasses

import tensorflow as tf
import tf_keras
from transformers import TFBertForQuestionAnswering

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.defaults import FINETUNE_LEARNING_RATE, QA_MAX_LENGTH
from tfbert.models.backbone import KerasConfigMixin
from tfbert.models.optimization import create_optimizer
from tfbert.models.precision import training_precision
from tfbert.models.token_classifier import config_with_labels
from tfbert.models.weights import load_weights

TOKEN_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
OUTPUTS = ("start_logits", "end_logits")


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertSpanPredictor(KerasConfigMixin, TFBertForQuestionAnswering):
    """transformers' `TFBertForQuestionAnswering` with a round-tripping Keras config."""


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertQuestionAnswerer(tf_keras.Model):
    """Windows of token ids -> start and end logits; holds the tokenizer that makes the windows.

    Args:
        tokenizer: BertTokenizerLayer. The checkpoint's tokenizer (max_length is the window length).
        span_predictor: BertSpanPredictor.
        checkpoint_name: str. The checkpoint it was built from.
    """

    def __init__(self, tokenizer, span_predictor, checkpoint_name=None, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer, self.span_predictor, self.checkpoint_name = tokenizer, span_predictor, checkpoint_name

    def call(self, inputs, training=None):
        outputs = self.span_predictor(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                      token_type_ids=inputs["token_type_ids"], training=training)
        # float32 for the loss also when the span predictor computes in bfloat16 (a no-op otherwise).
        return {"start_logits": tf.cast(outputs.start_logits, tf.float32),
                "end_logits": tf.cast(outputs.end_logits, tf.float32)}

    def compile(self, optimizer="auto", loss="auto", metrics="auto", train_steps=None,
                learning_rate=FINETUNE_LEARNING_RATE, **kwargs):
        """`tf_keras.Model.compile` with defaults for extractive QA.

        Args:
            optimizer: "auto" for `create_optimizer(train_steps, learning_rate)` (AdamW, warm-up, linear decay).
            loss: "auto": the mean of the start and end positions' cross-entropies, as transformers'
                `BertForQuestionAnswering` computes its loss.
            metrics: "auto": start and end position accuracy.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = create_optimizer(train_steps, learning_rate=learning_rate)
        if isinstance(loss, str) and loss == "auto":
            loss = {name: tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True) for name in OUTPUTS}
            kwargs.setdefault("loss_weights", {name: 0.5 for name in OUTPUTS})
        if isinstance(metrics, str) and metrics == "auto":
            metrics = {name: [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for name in OUTPUTS}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        return {"name": self.name, "tokenizer": tf_keras.saving.serialize_keras_object(self.tokenizer),
                "span_predictor": tf_keras.saving.serialize_keras_object(self.span_predictor),
                "checkpoint_name": self.checkpoint_name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        tokenizer = tf_keras.saving.deserialize_keras_object(config.pop("tokenizer"))
        span_predictor = tf_keras.saving.deserialize_keras_object(config.pop("span_predictor"))
        return cls(tokenizer, span_predictor, **config)


def build_question_answerer(model=None, max_length=None, allow_pickle=False, precision="float32", **tokenizer_options):
    """BERT for extractive question answering, trained on windows of question–context pairs.

    Args:
        model: str. Checkpoint: preset, local Hugging Face folder or hub id. Defaults to "minilm-l6-uncased".
            A `BertForQuestionAnswering` checkpoint keeps its head; any other starts a fresh one.
        max_length: int. Window length, question and special tokens included. Defaults to 384 (at
            most the checkpoint's max_position_embeddings), as transformers' recipe.
        allow_pickle: bool. Accept a pytorch_model.bin checkpoint. Defaults to False.
        precision: str. "float32", or "bfloat16": BERT and its span layer compute in bfloat16 with
            float32 variables (`tfbert.models.precision`); the logits are float32. Defaults to "float32".

    Returns:
        BertQuestionAnswerer: windows {"input_ids", "token_type_ids", "attention_mask"} int32 [batch, seq]
        -> {"start_logits", "end_logits"} float32 [batch, seq]. `compile(train_steps=...)` picks AdamW
        with warm-up and linear decay and transformers' loss; `tfbert.jobs.qa_features` makes the windows
        and labels from questions, contexts and answers.
    """
    checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
    if max_length is None:
        max_length = min(QA_MAX_LENGTH, checkpoint.max_length)
    keep_head = "BertForQuestionAnswering" in (checkpoint.config.architectures or [])
    config = config_with_labels(checkpoint.config, ["LABEL_0", "LABEL_1"])  # start and end, as transformers
    tokenizer = checkpoint.build_tokenizer(max_length, "longest", name="tokenizer", **tokenizer_options)
    with training_precision(precision):
        span_predictor, _ = load_weights(BertSpanPredictor, dataclasses.replace(checkpoint, config=config),
                                         "span_predictor", optional=("pooler",) if keep_head else ("pooler", "qa_outputs."),
                                         exclude=() if keep_head else ("qa_outputs.",))
    answerer = BertQuestionAnswerer(tokenizer, span_predictor, checkpoint.name, name="bert_question_answerer")
    answerer({name: tf.zeros([1, 2], tf.int32) for name in TOKEN_INPUTS})  # builds it
    return answerer
