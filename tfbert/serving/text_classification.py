"""Text classification from a Hugging Face checkpoint, served from raw strings.

Outputs as tfbert's own classifier exports, plus the pipeline's `score`: `logits` and `probabilities`
[batch, labels], `label` (string, config.id2label) and `label_id` [batch], `score` [batch] (the
label's probability). As transformers' `TextClassificationPipeline` chooses the function from the
config: none for `problem_type="regression"` (`probabilities` are then the raw outputs), sigmoid
for "multi_label_classification" or a single label, softmax otherwise. `serving_default` takes
`text`; `classify_pair` takes `text` and `text_pair` (the pipeline's {"text", "text_pair"} input).
`classify` serves TF Serving's Classify API (classes: the labels, scores: `probabilities`), or
`regress` its Regress API for a one-output regressor (`tfbert.serving.example_signatures`).
"""

import tensorflow as tf

from tfbert.serving.modules import TEXT, TEXT_PAIR, token_specs, tokenize_signatures
from tfbert.serving.task_base import TaskModule, run_model


class TextClassificationModule(TaskModule):
    """A text-classification export (a `TFBertForSequenceClassification`); no options."""

    def __init__(self, tokenizer, model):
        config = model.config
        if config.problem_type == "regression":
            function = "none"
        elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
            function = "sigmoid"
        else:
            function = "softmax"
        super().__init__("tfbert_text_classification", tokenizer, model, "text-classification", dict(function=function))
        self._labels = tf.constant([config.id2label[i] for i in range(config.num_labels)])
        # Single texts and pairs share one trace of the model (a bfloat16 export's weight constants once).
        self._scores = tf.function(self._outputs)
        self._classify = tf.function(lambda text: self._scores(tokenizer(text)), input_signature=[TEXT])
        self._classify_pair = tf.function(lambda text, text_pair: self._scores(tokenizer((text, text_pair))),
                                          input_signature=[TEXT, TEXT_PAIR])
        self._pair_signatures = tokenize_signatures(tokenizer, pair=True)

    def trace_shared(self):
        """Traces the model (`_scores`) on its own, before the signatures that share it: traced only from
        within them, the save would trace it twice (see EncoderModule.trace_shared)."""
        self._scores.get_concrete_function(token_specs(self._tokenize_signatures["tokenize"]))

    @property
    def labels(self):
        return [label.decode() for label in self._labels.numpy()]

    def serving_default(self):
        return self._classify

    def example_options(self):
        # TF Serving's Regress API for a one-output regressor; its Classify API otherwise.
        if self.options["function"] == "none" and len(self.labels) == 1:
            return {"score": "score"}
        return {"labels": self.labels, "scores": "probabilities"}

    def signatures(self):
        return {**super().signatures(), "classify_pair": self._classify_pair, **self._pair_signatures}

    def _outputs(self, tokens):
        logits = run_model(self.model, tokens).logits
        function = self.options["function"]
        scores = tf.sigmoid(logits) if function == "sigmoid" else tf.nn.softmax(logits) if function == "softmax" else logits
        label_id = tf.argmax(scores, axis=-1, output_type=tf.int32)
        return {"logits": logits, "probabilities": scores, "label_id": label_id,
                "label": tf.gather(self._labels, label_id), "score": tf.reduce_max(scores, axis=-1)}
