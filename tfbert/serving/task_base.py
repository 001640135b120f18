"""`TaskModule`: what every task export shares (the tokenizer's resources, the task model's variables,
the tokenize signatures, the vocabulary as strings), and `run_model` to call a transformers task model.

The task exports themselves are `tfbert.serving.question_answering`, `token_classification`,
`fill_mask` and `text_classification`; `tfbert.serving.task_export.build_task_module` makes them.
"""

import types

import tensorflow as tf

from tfbert.serving.example_signatures import example_signatures
from tfbert.serving.modules import tokenize_signatures
from tfbert.text.vocabulary import read_vocabulary


class TaskModule(tf.Module):
    """The tracked resources of a task export and its tokenize signatures.

    Args:
        name: str. The module's name.
        tokenizer: BertTokenizerLayer.
        model: a transformers TensorFlow BERT task model (TFBertForQuestionAnswering, ...).
        task: str. The task, as `tfbert export --task` names it.
        options: dict of the export's task options (top_k, ...), kept for `describe`.
    """

    pair_inputs = False  # whether serving_default takes two texts

    def __init__(self, name, tokenizer, model, task, options=None):
        super().__init__(name=name)
        # Keras layers stay untracked (see tfbert.serving.modules.EncoderModule); their resources and
        # variables are tracked directly.
        self._layers = types.SimpleNamespace(tokenizer=tokenizer, model=model, task=task, options=dict(options or {}))
        self.vocab_asset = tokenizer.vocab_asset
        self.lookup_tables = tokenizer.lookup_tables
        self.model_variables = list(model.variables)
        vocabulary = read_vocabulary(tokenizer.vocabulary)
        self._token_strings = tf.constant(vocabulary)
        self._continues_word = tf.constant([token.startswith("##") for token in vocabulary])
        self._tokenize_signatures = tokenize_signatures(tokenizer, self.pair_inputs)

    @property
    def tokenizer(self):
        return self._layers.tokenizer

    @property
    def checkpoint_name(self):
        """The checkpoint the export is built from (for its model card), or None."""
        return getattr(self._layers, "checkpoint_name", None)

    @checkpoint_name.setter
    def checkpoint_name(self, name):
        self._layers.checkpoint_name = name

    @property
    def model(self):
        return self._layers.model

    @property
    def task(self):
        return self._layers.task

    @property
    def options(self):
        return self._layers.options

    @property
    def labels(self):
        """The model's labels in id order (config.id2label), or [] for tasks without labels."""
        return []

    def token_strings(self, ids):
        """The vocabulary's strings of token ids (any shape)."""
        return tf.gather(self._token_strings, ids)

    def continues_word(self, ids):
        """Whether each token id is a WordPiece continuation ("##...")."""
        return tf.gather(self._continues_word, ids)

    def serving_default(self):
        raise NotImplementedError

    def example_options(self):
        """What the export's tf.Example signatures offer beyond `serve_examples` (see
        `tfbert.serving.example_signatures.example_signatures`): none for most tasks."""
        return {}

    def signatures(self):
        serving_default = self.serving_default()
        return {"serving_default": serving_default, **example_signatures(serving_default, **self.example_options()),
                **self._tokenize_signatures}


@tf.autograph.experimental.do_not_convert  # as `bert_outputs`
def run_model(model, tokens):
    """A transformers task model on a tokenizer's dict, in inference mode: -> its output object."""
    return model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                 token_type_ids=tokens["token_type_ids"], training=False)
