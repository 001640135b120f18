"""Exporting an encoder as a SavedModel in TensorFlow Serving's layout: `base_dir/<version>/`.

The export holds only the graph, the weights and the vocabulary asset: loading it needs tensorflow
and tensorflow_text (for its ops), not tfbert, tf_keras or transformers. Signatures (DESIGN.md):

| signature       | inputs            | outputs                                             |
| serving_default | text              | last_hidden_state [batch, seq, hidden], pooled_output [batch, hidden] |
| tokenize        | text              | input_ids, token_type_ids, attention_mask [batch, seq] |
| encode_pair     | text, text_pair   | as serving_default                                  |
| tokenize_pair   | text, text_pair   | as tokenize                                         |
| embed           | text              | sentence_embedding [batch, hidden], mean-pooled, L2-normalised |

An encoder export is also a TF2 "reusable SavedModel" (the TF Hub convention): `__call__(text, training)`
returns all three outputs, with dropout when training=True, and `variables`, `trainable_variables` and
`regularization_losses` are saved. So `tfbert.SavedModelLayer(path, trainable=True)` (or
`hub.KerasLayer`) fine-tunes it inside a new Keras model.
"""

import logging
import os
import pathlib
import shutil
import tempfile
import types

import tensorflow as tf

from tfbert.classifier import HEAD_LAYER
from tfbert.embedding import embed_in_length_groups
from tfbert.encoder import BERT_LAYER, TOKENIZER_LAYER, bert_outputs, mean_pool
from tfbert import serving
from tfbert.errors import TfbertError
from tfbert.export_reader import existing_versions

logger = logging.getLogger(__name__)

_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_PAIR = tf.TensorSpec([None], tf.string, name="text_pair")


class _EncoderModule(tf.Module):
    """The exported object: the tokenizer's resources, BERT's variables and the signatures."""

    # The reusable-SavedModel attributes are saved as plain lists; these class attributes shadow
    # tf.Module's computed properties of the same names, so that the instance can set them.
    variables = trainable_variables = regularization_losses = None

    def __init__(self, tokenizer, bert):
        super().__init__(name="tfbert_encoder")
        # The Keras layers are held untracked (a SimpleNamespace is not trackable): tracking them
        # would save Keras metadata, and loading would then import tf_keras. The signatures need
        # only the resources and variables, which are tracked directly below.
        self._layers = types.SimpleNamespace(tokenizer=tokenizer, bert=bert)
        self.vocab_asset = tokenizer._vocab_asset
        self.vocab_table = tokenizer._vocab_table
        self.token_tables = tokenizer.lookup_tables[1:]
        self.variables = list(bert.variables)
        self.trainable_variables = list(bert.trainable_variables)
        self.regularization_losses = []

    # Each piece is traced once and called by the others (a call of an already traced tf.function
    # reuses its graph): the tokenizer twice (single texts, pairs) and BERT twice (inference,
    # training) instead of once a signature, which keeps exports fast.
    @tf.function
    def _bert(self, tokens, training):
        outputs = bert_outputs(self._layers.bert, tokens, training=training)
        outputs["sentence_embedding"] = mean_pool(outputs["last_hidden_state"], tokens["attention_mask"])
        return outputs

    @tf.function
    def __call__(self, text, training=False):
        return self._bert(self.tokenize(text), training)

    def trace_call(self):
        """Traces `__call__` for inference and training, so that the SavedModel holds both."""
        for training in (False, True):
            self.__call__.get_concrete_function(_TEXT, training=training)

    @staticmethod
    def _hidden_states(outputs):
        return {"last_hidden_state": outputs["last_hidden_state"], "pooled_output": outputs["pooled_output"]}

    @tf.function(input_signature=[_TEXT])
    def serving_default(self, text):
        return self._hidden_states(self.__call__(text, training=False))

    @tf.function(input_signature=[_TEXT])
    def tokenize(self, text):
        return self._layers.tokenizer(text)

    @tf.function(input_signature=[_TEXT, _TEXT_PAIR])
    def encode_pair(self, text, text_pair):
        return self._hidden_states(self._bert(self.tokenize_pair(text, text_pair), False))

    @tf.function(input_signature=[_TEXT, _TEXT_PAIR])
    def tokenize_pair(self, text, text_pair):
        return self._layers.tokenizer((text, text_pair))

    @tf.function(input_signature=[_TEXT])
    def embed(self, text):
        # Texts of very different lengths in one request run in length groups (less padding).
        embeddings = embed_in_length_groups(lambda tokens: self._bert(tokens, False)["sentence_embedding"],
                                            self.tokenize(text), self._layers.bert.config.hidden_size)
        return {"sentence_embedding": embeddings}

    def signatures(self):
        return {
            "serving_default": self.serving_default,
            "tokenize": self.tokenize,
            "encode_pair": self.encode_pair,
            "tokenize_pair": self.tokenize_pair,
            "embed": self.embed,
        }


class _ClassifierModule(tf.Module):
    """The exported classifier: raw strings to probabilities, logits, label and label_id.

    | task           | outputs                                                              |
    | classification | probabilities, logits [batch, labels], label (string) [batch], label_id (int32) [batch] |
    | multi_label    | probabilities, logits [batch, labels], predicted (int32, 1 where probability >= 0.5) [batch, labels] |
    | regression     | score [batch]                                                        |

    A single-text classifier has `serving_default` (text) and `tokenize`; a sentence-pair classifier has
    `classify_pair` (text, text_pair), the same function as its `serving_default`, and `tokenize_pair`.
    """

    def __init__(self, model):
        super().__init__(name="tfbert_classifier")
        tokenizer, head = model.get_layer(TOKENIZER_LAYER), model.get_layer(HEAD_LAYER)
        # Plain Python values sit in the untracked namespace too: a tracked list would be saved.
        self._layers = types.SimpleNamespace(model=model, tokenizer=tokenizer, head=head, labels=list(head.labels or []),
                                             task=head.task, text_pair=len(model.inputs) == 2)
        self.vocab_asset = tokenizer._vocab_asset
        self.vocab_table = tokenizer._vocab_table
        self.token_tables = tokenizer.lookup_tables[1:]
        self.model_variables = list(model.variables)
        self._label_names = tf.constant(self.labels or [""], tf.string)
        if self.text_pair:
            self._classify_pair = tf.function(self._classify_pair_fn, input_signature=[_TEXT, _TEXT_PAIR])
            self._tokenize_pair = tf.function(lambda text, text_pair: tokenizer((text, text_pair)),
                                              input_signature=[_TEXT, _TEXT_PAIR])
        else:
            self._classify = tf.function(self._classify_fn, input_signature=[_TEXT])
            self._tokenize = tf.function(lambda text: tokenizer(text), input_signature=[_TEXT])

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
        if self.text_pair:
            return {"serving_default": self._classify_pair, "classify_pair": self._classify_pair,
                    "tokenize_pair": self._tokenize_pair}
        return {"serving_default": self._classify, "tokenize": self._tokenize}


def _validate_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TfbertError(f"version must be a positive integer (TF Serving's version folders); received version={version!r}.")


def _validate_keep(keep):
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise TfbertError(f"keep must be a positive number of versions to keep, or None to keep all; received keep={keep!r}.")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_abandoned(base_dir):
    """Deletes staging folders (.tmp-<version>-<pid>-*) whose export process has died, e.g. killed mid-write."""
    for path in base_dir.glob(".tmp-*-*-*"):
        parts = path.name.split("-")
        if path.is_dir() and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            logger.info("removing %s, left by an export that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def _retire(base_dir, folder, label):
    """Removes a version folder so a watching server never sees it half-deleted: rename aside, then delete."""
    retired = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".old-{label}-"))
    os.rename(folder, retired / "old")
    shutil.rmtree(retired)


def prune_versions(base_dir, keep):
    """Deletes all but the `keep` highest numeric versions under base_dir; returns the versions deleted."""
    _validate_keep(keep)
    base_dir = pathlib.Path(base_dir)
    removed = existing_versions(base_dir)[:-keep]
    for version in removed:
        _retire(base_dir, base_dir / str(version), version)
        logger.info("removed %s (keeping the %d newest versions)", base_dir / str(version), keep)
    return removed


def _export_module(model):
    """The tf.Module to save: a classifier's or an encoder's signatures."""
    names = {layer.name for layer in getattr(model, "layers", [])}
    if {TOKENIZER_LAYER, BERT_LAYER, HEAD_LAYER} <= names:
        return _ClassifierModule(model)
    if {TOKENIZER_LAYER, BERT_LAYER} <= names:
        return _EncoderModule(model.get_layer(TOKENIZER_LAYER), model.get_layer(BERT_LAYER))
    raise TfbertError(
        f"export_saved_model needs a model from tfbert.build_encoder or tfbert.build_classifier (with layers "
        f"{TOKENIZER_LAYER!r} and {BERT_LAYER!r}); received {getattr(model, 'name', model)!r}."
    )


def export_saved_model(model, base_dir, version=None, overwrite=False, keep=None, warmup=True):
    """Writes `model` (from `build_encoder` or `build_classifier`) as a SavedModel to `base_dir/<version>`.

    Writing is atomic: the export is written under a temporary non-numeric name in base_dir
    (`.tmp-<version>-<pid>-*`), which TF Serving ignores, then renamed into place. A staging folder
    left by a killed export is removed by the next export into the same base_dir.

    Args:
        model: tf_keras.Model from `tfbert.build_encoder` (the signatures in the module docstring) or
            `tfbert.build_classifier` (see `_ClassifierModule`).
        base_dir: str. The model's folder, e.g. "saved_models/minilm-l6-uncased".
        version: int. Version folder to write. Defaults to one more than the highest existing version (1 if none).
        overwrite: bool. Replace an existing version. Defaults to False.
        keep: int. After writing, delete all but the `keep` newest versions. Defaults to None (keep all).
        warmup: bool. Write `assets.extra/tf_serving_warmup_requests`, replayed by TF Serving at load
            time so the first real request is not the slow one. Defaults to True.

    Returns:
        pathlib.Path of the version folder written.

    Raises:
        TfbertError: the version exists and overwrite is False, or the model is not an encoder.
    """
    module = _export_module(model)
    base_dir = pathlib.Path(base_dir)
    if version is None:
        version = (existing_versions(base_dir) or [0])[-1] + 1
    _validate_version(version)
    _validate_keep(keep)
    target = base_dir / str(version)
    if target.exists() and not overwrite:
        raise TfbertError(
            f"{target} already exists; pick another version (--version), or pass --overwrite / overwrite=True to replace it."
        )
    base_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(base_dir)
    staging = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".tmp-{version}-{os.getpid()}-"))
    try:
        # mkdtemp makes the folder private (0700); a server running as another user must read it.
        os.chmod(staging, 0o777 & ~_umask())
        if isinstance(module, _EncoderModule):
            module.trace_call()
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        if warmup:
            signatures = {name: [spec.name for spec in fn.input_signature] for name, fn in module.signatures().items()}
            max_length = model.get_layer(TOKENIZER_LAYER).max_length
            serving.write_warmup(staging, serving.warmup_records(base_dir.name, signatures, max_length))
        if isinstance(module, _ClassifierModule) and module.labels:
            (staging / "assets.extra").mkdir(exist_ok=True)
            (staging / "assets.extra" / "labels.txt").write_text("".join(f"{label}\n" for label in module.labels),
                                                                 encoding="utf-8")
        if target.exists():  # overwrite: move the old version aside first, then swap
            _retire_and_replace(base_dir, target, staging, version)
        else:
            os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s", target)
    if keep is not None:
        prune_versions(base_dir, keep)
    return target


def _retire_and_replace(base_dir, target, staging, version):
    retired = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".old-{version}-"))
    os.rename(target, retired / "old")
    os.rename(staging, target)
    shutil.rmtree(retired)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
