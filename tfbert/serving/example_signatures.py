"""Signatures on serialized `tf.Example`s: `serve_examples` in every export, `classify` and `regress` for
TF Serving's Classify and Regress APIs (and TFX's tooling, which sends Examples).

| signature      | method name                 | input                 | outputs                                    |
| serve_examples | tensorflow/serving/predict  | examples [batch]      | serving_default's                          |
| classify       | tensorflow/serving/classify | inputs [batch]        | classes [batch, labels] (string), scores [batch, labels] (float32) |
| regress        | tensorflow/serving/regress  | inputs [batch]        | outputs [batch] (float32)                  |

Each input is a batch of serialized `tf.Example`s holding serving_default's inputs as bytes features
of one value each: `text` (and `text_pair` for a sentence-pair classifier; `question` and `context`
for question answering). Other features are ignored. An Example that does not parse, or lacks a
feature, fails its request with TensorFlow's message naming the feature ("Feature: text (data type:
string) is required but could not be found.").

`tf.saved_model.save` writes every signature with the predict method name (tensorflow/tensorflow#38081),
and TF Serving's Classify and Regress refuse a signature without theirs, so `set_method_names`
rewrites them in the saved `saved_model.pb` (and its fingerprint).
"""

import pathlib

import tensorflow as tf
from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fingerprinting_pywrap

from tfbert.serving.versions import SAVED_MODEL_FILE, read_saved_model

EXAMPLES = tf.TensorSpec([None], tf.string, name="examples")
CLASSIFY_INPUTS = tf.TensorSpec([None], tf.string, name="inputs")  # TF Serving's kClassifyInputs / kRegressInputs
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
METHOD_NAMES = {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}  # signature: its TF Serving method
FINGERPRINT_FILE = "fingerprint.pb"


def example_features(signature):
    """The tf.Example features a signature's examples carry: its inputs' names, in order."""
    return [spec.name for spec in signature.input_signature]


def parse_examples(serialized, features):
    """Serialized tf.Examples [batch] -> {feature: string tensor [batch]}, one bytes value each."""
    return tf.io.parse_example(serialized, {name: tf.io.FixedLenFeature([], tf.string) for name in features})


def serve_examples_function(signature):
    """`signature` (a tf.function on string inputs) taking serialized tf.Examples instead: `examples`."""
    features = example_features(signature)
    return tf.function(lambda examples: signature(**parse_examples(examples, features)), input_signature=[EXAMPLES])


def classify_function(signature, labels, scores):
    """TF Serving's classify signature over `signature`: `inputs` (serialized tf.Examples) -> `classes`,
    the label names [batch, labels], and `scores`, its output `scores` [batch, labels]."""
    features = example_features(signature)
    names = tf.constant(list(labels), tf.string)

    def classify(inputs):
        outputs = signature(**parse_examples(inputs, features))
        batch_scores = tf.cast(outputs[scores], tf.float32)
        return {"classes": tf.tile(names[None, :], [tf.shape(batch_scores)[0], 1]), "scores": batch_scores}

    return tf.function(classify, input_signature=[CLASSIFY_INPUTS])


def regress_function(signature, score):
    """TF Serving's regress signature over `signature`: `inputs` (serialized tf.Examples) -> `outputs`,
    its output `score` [batch]."""
    features = example_features(signature)
    return tf.function(lambda inputs: {"outputs": tf.cast(signature(**parse_examples(inputs, features))[score], tf.float32)},
                       input_signature=[CLASSIFY_INPUTS])


def example_signatures(serving_default, labels=None, scores=None, score=None):
    """An export's tf.Example signatures over its `serving_default`: `serve_examples`, plus `classify`
    when `scores` names its class scores output (with `labels`, the class names), or `regress` when
    `score` names its score output."""
    signatures = {"serve_examples": serve_examples_function(serving_default)}
    if scores is not None:
        signatures["classify"] = classify_function(serving_default, labels, scores)
    if score is not None:
        signatures["regress"] = regress_function(serving_default, score)
    return signatures


def set_method_names(export_dir):
    """Gives the export's `classify` and `regress` signatures TF Serving's method names (METHOD_NAMES)
    and rewrites the SavedModel's fingerprint to match; returns the signatures changed."""
    path = pathlib.Path(export_dir) / SAVED_MODEL_FILE
    proto = read_saved_model(export_dir)
    changed = []
    for meta_graph in proto.meta_graphs:
        for name, method in METHOD_NAMES.items():
            if name in meta_graph.signature_def and meta_graph.signature_def[name].method_name != method:
                meta_graph.signature_def[name].method_name = method
                changed.append(name)
    if changed:
        path.write_bytes(proto.SerializeToString(deterministic=True))
        if (pathlib.Path(export_dir) / FINGERPRINT_FILE).is_file():
            fingerprint = fingerprinting_pywrap.CreateFingerprintDef(str(export_dir))
            (pathlib.Path(export_dir) / FINGERPRINT_FILE).write_bytes(fingerprint)
    return changed
