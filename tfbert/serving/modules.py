"""The tf.Modules an export saves: raw strings in, a model's outputs out, one signature a use.

The export holds only the graph, the weights and the vocabulary asset: loading it needs tensorflow
and tensorflow_text (for its ops), not tfbert, tf_keras or transformers. An encoder's signatures:

| signature       | inputs            | outputs                                             |
| serving_default | text              | last_hidden_state [batch, seq, hidden], pooled_output [batch, hidden] |
| tokenize        | text              | input_ids, token_type_ids, attention_mask [batch, seq] |
| encode_pair     | text, text_pair   | as serving_default                                  |
| tokenize_pair   | text, text_pair   | as tokenize                                         |
| embed           | text              | sentence_embedding [batch, hidden], mean-pooled, L2-normalised |
| tokenize_with_offsets      | text            | as tokenize, and offsets [batch, seq, 2]  |
| tokenize_pair_with_offsets | text, text_pair | as tokenize_pair, and offsets [batch, seq, 2] |
| serve_examples  | examples (serialized tf.Example with a `text` feature) | as serving_default |

`offsets` are each token's (start, end) in its own text, in code points, as transformers'
`offset_mapping`; (0, 0) for [CLS], [SEP] and padding.

An encoder export is also a TF2 "reusable SavedModel" (the TF Hub convention): `__call__(text, training)`
returns all three outputs, with dropout when training=True, and `variables`, `trainable_variables` and
`regularization_losses` are saved. So `tfbert.SavedModelLayer(path, trainable=True)` (or
`hub.KerasLayer`) fine-tunes it inside a new Keras model.
"""

import types

import tensorflow as tf

from tfbert.errors import TfbertError
from tfbert.models.classifier import BertClassifier
from tfbert.models.encoder import BertEncoder, bert_outputs
from tfbert.models.inference import computing_with
from tfbert.models.length_groups import embed_in_length_groups
from tfbert.models.pooling import sentence_embedding_pooling
from tfbert.serving.example_signatures import example_signatures

TEXT = tf.TensorSpec([None], tf.string, name="text")
TEXT_PAIR = tf.TensorSpec([None], tf.string, name="text_pair")


def tokenize_signatures(tokenizer, pair):
    """The tokenize signatures of a classifier or task export, as tf.functions: "tokenize" and
    "tokenize_with_offsets" (text), or with `pair` "tokenize_pair" and "tokenize_pair_with_offsets"
    (text, text_pair)."""
    if pair:
        return {"tokenize_pair": tf.function(lambda text, text_pair: tokenizer((text, text_pair)),
                                             input_signature=[TEXT, TEXT_PAIR]),
                "tokenize_pair_with_offsets": tf.function(
                    lambda text, text_pair: tokenizer.tokenize_with_offsets((text, text_pair)),
                    input_signature=[TEXT, TEXT_PAIR])}
    return {"tokenize": tf.function(lambda text: tokenizer(text), input_signature=[TEXT]),
            "tokenize_with_offsets": tf.function(tokenizer.tokenize_with_offsets, input_signature=[TEXT])}


def token_specs(tokenize):
    """TensorSpecs of the tokens a tokenize tf.function returns, to trace a function of them on its own."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]),
                                 tokenize.get_concrete_function().structured_outputs)


class EncoderModule(tf.Module):
    """The exported object: the tokenizer's resources, BERT's variables and the signatures."""

    # The reusable-SavedModel attributes are saved as plain lists; these class attributes shadow
    # tf.Module's computed properties of the same names, so that the instance can set them.
    variables = trainable_variables = regularization_losses = None
    task, labels = "encoder", ()  # as task exports name theirs (model cards)

    def __init__(self, tokenizer, bert):
        super().__init__(name="tfbert_encoder")
        # The Keras layers are held untracked (a SimpleNamespace is not trackable): tracking them
        # would save Keras metadata, and loading would then import tf_keras. The signatures need
        # only the resources and variables, which are tracked directly below.
        self._layers = types.SimpleNamespace(tokenizer=tokenizer, bert=bert, pooling=sentence_embedding_pooling())
        self.vocab_asset = tokenizer.vocab_asset
        self.lookup_tables = tokenizer.lookup_tables
        self.variables = list(bert.variables)
        self.trainable_variables = list(bert.trainable_variables)
        self.regularization_losses = []
        self.inference_weights = None  # set by the export when its signatures compute with copies

    # Each piece is traced once and called by the others (a call of an already traced tf.function
    # reuses its graph): the tokenizer twice (single texts, pairs) and BERT twice (inference,
    # training), or three times when the signatures compute with copies (`_serve`), instead of once
    # a signature, which keeps exports fast.
    def _outputs(self, tokens, training):
        outputs = bert_outputs(self._layers.bert, tokens, training=training)
        outputs["sentence_embedding"] = self._layers.pooling({**outputs, "attention_mask": tokens["attention_mask"]})
        return outputs

    @tf.function
    def _bert(self, tokens, training):
        return self._outputs(tokens, training)

    @tf.function
    def _serve(self, tokens):
        """BERT for the signatures. An export whose signatures compute with weight copies
        (`inference_weights`: query/key/value side by side, bfloat16) traces it apart from `__call__`,
        which must compute with the variables as they are trained."""
        if self.inference_weights is None:
            return self._bert(tokens, False)
        with computing_with(self.inference_weights):
            return self._outputs(tokens, False)

    @tf.function
    def __call__(self, text, training=False):
        return self._bert(self.tokenize(text), training)

    def trace_shared(self):
        """Traces the functions the signatures share, and `__call__` for inference and training, so that
        the SavedModel holds both.

        Call it inside the save context of the `tf.saved_model.save` that follows (`export_saved_model`
        does): tf.function keys its traces on that context, and traces made outside it are made again
        inside. BERT (`_bert`, and `_serve` for the signatures) is traced on its own first: traced only
        from within other functions, the save traces it again."""
        tokens = token_specs(self.tokenize)
        self._serve.get_concrete_function(tokens)
        for training in (False, True):
            self._bert.get_concrete_function(tokens, training)
            self.__call__.get_concrete_function(TEXT, training=training)

    @staticmethod
    def _hidden_states(outputs):
        return {"last_hidden_state": outputs["last_hidden_state"], "pooled_output": outputs["pooled_output"]}

    @tf.function(input_signature=[TEXT])
    def serving_default(self, text):
        return self._hidden_states(self._serve(self.tokenize(text)))

    @tf.function(input_signature=[TEXT])
    def tokenize(self, text):
        return self._layers.tokenizer(text)

    @tf.function(input_signature=[TEXT, TEXT_PAIR])
    def encode_pair(self, text, text_pair):
        return self._hidden_states(self._serve(self.tokenize_pair(text, text_pair)))

    @tf.function(input_signature=[TEXT, TEXT_PAIR])
    def tokenize_pair(self, text, text_pair):
        return self._layers.tokenizer((text, text_pair))

    @tf.function(input_signature=[TEXT])
    def tokenize_with_offsets(self, text):
        return self._layers.tokenizer.tokenize_with_offsets(text)

    @tf.function(input_signature=[TEXT, TEXT_PAIR])
    def tokenize_pair_with_offsets(self, text, text_pair):
        return self._layers.tokenizer.tokenize_with_offsets((text, text_pair))

    @tf.function(input_signature=[TEXT])
    def embed(self, text):
        # Texts of very different lengths in one request run in length groups (less padding).
        embeddings = embed_in_length_groups(lambda tokens: self._serve(tokens)["sentence_embedding"],
                                            self.tokenize(text), self._layers.bert.config.hidden_size)
        return {"sentence_embedding": embeddings}

    def signatures(self):
        return {
            "serving_default": self.serving_default,
            **example_signatures(self.serving_default),
            "tokenize": self.tokenize,
            "encode_pair": self.encode_pair,
            "tokenize_pair": self.tokenize_pair,
            "embed": self.embed,
            "tokenize_with_offsets": self.tokenize_with_offsets,
            "tokenize_pair_with_offsets": self.tokenize_pair_with_offsets,
        }


class ClassifierModule(tf.Module):
    """The exported classifier: raw strings to probabilities, logits, label and label_id.

    | task           | outputs                                                              |
    | classification | probabilities, logits [batch, labels], label (string) [batch], label_id (int32) [batch] |
    | multi_label    | probabilities, logits [batch, labels], predicted (int32, 1 where probability >= 0.5) [batch, labels] |
    | regression     | score [batch]                                                        |

    A single-text classifier has `serving_default` (text), `tokenize` and `tokenize_with_offsets`; a
    sentence-pair classifier has `classify_pair` (text, text_pair), the same function as its
    `serving_default`, `tokenize_pair` and `tokenize_pair_with_offsets`. Both have `serve_examples`
    and, for TF Serving's Classify API, `classify` (classes and scores: the labels and their
    probabilities), or for a regressor its Regress API's `regress` (`tfbert.serving.example_signatures`).
    """

    def __init__(self, model):
        super().__init__(name="tfbert_classifier")
        tokenizer, head = model.tokenizer, model.head
        # Plain Python values sit in the untracked namespace too: a tracked list would be saved.
        self._layers = types.SimpleNamespace(model=model, tokenizer=tokenizer, head=head, labels=list(head.labels or []),
                                             task=head.task, text_pair=model.text_pair)
        self.vocab_asset = tokenizer.vocab_asset
        self.lookup_tables = tokenizer.lookup_tables
        self.model_variables = list(model.variables)
        self._label_names = tf.constant(self.labels or [""], tf.string)
        if self.text_pair:
            self._classify_pair = tf.function(self._classify_pair_fn, input_signature=[TEXT, TEXT_PAIR])
        else:
            self._classify = tf.function(self._classify_fn, input_signature=[TEXT])
        self._tokenize_signatures = tokenize_signatures(tokenizer, self.text_pair)

    @property
    def labels(self):
        return self._layers.labels

    @property
    def task(self):
        return self._layers.task

    @property
    def text_pair(self):
        return self._layers.text_pair

    def _outputs(self, logits):
        if self.task == "regression":
            return {"score": logits[:, 0]}
        if self.task == "multi_label":
            probabilities = tf.sigmoid(logits)
            return {"probabilities": probabilities, "logits": logits,
                    "predicted": tf.cast(probabilities >= 0.5, tf.int32)}
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"probabilities": tf.nn.softmax(logits), "logits": logits, "label_id": label_id,
                "label": tf.gather(self._label_names, label_id)}

    def _classify_fn(self, text):
        return self._outputs(self._layers.model(text, training=False))

    def _classify_pair_fn(self, text, text_pair):
        return self._outputs(self._layers.model({"text": text, "text_pair": text_pair}, training=False))

    def signatures(self):
        serving_default = self._classify_pair if self.text_pair else self._classify
        if self.task == "regression":
            examples = example_signatures(serving_default, score="score")
        else:
            examples = example_signatures(serving_default, labels=self.labels, scores="probabilities")
        pair = {"classify_pair": self._classify_pair} if self.text_pair else {}
        return {"serving_default": serving_default, **pair, **examples, **self._tokenize_signatures}


def check_exportable(model):
    """Raises TfbertError unless `export_module` takes `model`: a model from build_encoder or build_classifier."""
    if not isinstance(model, (BertClassifier, BertEncoder)):
        raise TfbertError(f"export_saved_model needs a model from tfbert.build_encoder or tfbert.build_classifier; "
                          f"received {type(model).__name__} {getattr(model, 'name', '')!r}.")


def export_module(model):
    """The tf.Module to save for a model: a classifier's or an encoder's signatures."""
    check_exportable(model)
    if isinstance(model, BertClassifier):
        return ClassifierModule(model)
    return EncoderModule(model.tokenizer, model.bert)
