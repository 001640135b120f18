"""Exporting an encoder as a SavedModel in TensorFlow Serving's layout: `base_dir/<version>/`.

The export holds only the graph, the weights and the vocabulary asset: loading it needs tensorflow
and tensorflow_text (for its ops), not tfbert, tf_keras or transformers. Signatures (DESIGN.md):

| signature       | inputs            | outputs                                             |
| serving_default | text              | last_hidden_state [batch, seq, hidden], pooled_output [batch, hidden] |
| tokenize        | text              | input_ids, token_type_ids, attention_mask [batch, seq] |
| encode_pair     | text, text_pair   | as serving_default                                  |
| tokenize_pair   | text, text_pair   | as tokenize                                         |
| embed           | text              | sentence_embedding [batch, hidden], mean-pooled, L2-normalised |
"""

import logging
import os
import pathlib
import shutil
import tempfile
import types

import tensorflow as tf

from tfbert.encoder import BERT_LAYER, TOKENIZER_LAYER, bert_outputs, mean_pool
from tfbert.errors import TfbertError

logger = logging.getLogger(__name__)

_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_PAIR = tf.TensorSpec([None], tf.string, name="text_pair")


class _EncoderModule(tf.Module):
    """The exported object: the tokenizer's resources, BERT's variables and the signatures."""

    def __init__(self, tokenizer, bert):
        super().__init__(name="tfbert_encoder")
        # The Keras layers are held untracked (a SimpleNamespace is not trackable): tracking them
        # would save Keras metadata, and loading would then import tf_keras. The signatures need
        # only the resources and variables, which are tracked directly below.
        self._layers = types.SimpleNamespace(tokenizer=tokenizer, bert=bert)
        self.vocab_asset = tokenizer._vocab_asset
        self.vocab_table = tokenizer._vocab_table
        self.bert_variables = list(bert.variables)

    def _encode(self, tokens):
        return bert_outputs(self._layers.bert, tokens, training=False)

    @tf.function(input_signature=[_TEXT])
    def serving_default(self, text):
        return self._encode(self._layers.tokenizer(text))

    @tf.function(input_signature=[_TEXT])
    def tokenize(self, text):
        return self._layers.tokenizer(text)

    @tf.function(input_signature=[_TEXT, _TEXT_PAIR])
    def encode_pair(self, text, text_pair):
        return self._encode(self._layers.tokenizer((text, text_pair)))

    @tf.function(input_signature=[_TEXT, _TEXT_PAIR])
    def tokenize_pair(self, text, text_pair):
        return self._layers.tokenizer((text, text_pair))

    @tf.function(input_signature=[_TEXT])
    def embed(self, text):
        tokens = self._layers.tokenizer(text)
        hidden = self._encode(tokens)["last_hidden_state"]
        return {"sentence_embedding": mean_pool(hidden, tokens["attention_mask"])}

    def signatures(self):
        return {
            "serving_default": self.serving_default,
            "tokenize": self.tokenize,
            "encode_pair": self.encode_pair,
            "tokenize_pair": self.tokenize_pair,
            "embed": self.embed,
        }


def existing_versions(base_dir):
    """The numeric version folders under base_dir, ascending."""
    base_dir = pathlib.Path(base_dir)
    if not base_dir.is_dir():
        return []
    return sorted(int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _validate_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TfbertError(f"version must be a positive integer (TF Serving's version folders); received version={version!r}.")


def export_saved_model(model, base_dir, version=None, overwrite=False):
    """Writes `model` (from `build_encoder`) as a SavedModel to `base_dir/<version>`.

    Writing is atomic: the export is written under a temporary non-numeric name in base_dir, which
    TF Serving ignores, then renamed into place.

    Args:
        model: tf_keras.Model from `tfbert.build_encoder`.
        base_dir: str. The model's folder, e.g. "saved_models/minilm-l6-uncased".
        version: int. Version folder to write. Defaults to one more than the highest existing version (1 if none).
        overwrite: bool. Replace an existing version. Defaults to False.

    Returns:
        pathlib.Path of the version folder written.

    Raises:
        TfbertError: the version exists and overwrite is False, or the model is not an encoder.
    """
    try:
        tokenizer, bert = model.get_layer(TOKENIZER_LAYER), model.get_layer(BERT_LAYER)
    except ValueError as e:
        raise TfbertError(
            f"export_saved_model needs a model from tfbert.build_encoder (with layers {TOKENIZER_LAYER!r} "
            f"and {BERT_LAYER!r}); received {model.name!r}."
        ) from e
    base_dir = pathlib.Path(base_dir)
    if version is None:
        version = (existing_versions(base_dir) or [0])[-1] + 1
    _validate_version(version)
    target = base_dir / str(version)
    if target.exists() and not overwrite:
        raise TfbertError(
            f"{target} already exists; pick another version (--version), or pass --overwrite / overwrite=True to replace it."
        )
    base_dir.mkdir(parents=True, exist_ok=True)
    module = _EncoderModule(tokenizer, bert)
    staging = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".tmp-{version}-"))
    try:
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        if target.exists():  # overwrite: move the old version aside first, then swap
            retired = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".old-{version}-"))
            os.rename(target, retired / "old")
            os.rename(staging, target)
            shutil.rmtree(retired)
        else:
            os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s", target)
    return target
