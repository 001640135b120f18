"""BERT pre-training on raw strings: dynamic masking in the graph, masked LM and next-sentence prediction.

    (text, text_pair) -> tokenizer -> mask_tokens (fresh every step) -> TFBertForPreTraining's
    encoder -> MLM head on the masked positions only, NSP head on the pooled output

`save_pretrained` writes a Hugging Face checkpoint folder (config.json, vocab.txt,
tokenizer_config.json, model.safetensors with PyTorch names) that `tfbert export --model DIR` and
transformers' PyTorch `BertModel.from_pretrained` / `BertForPreTraining.from_pretrained` read.
"""

import json
import logging
import pathlib

import tensorflow as tf
import tf_keras
from transformers import BertConfig, TFBertForPreTraining

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.checkpoints.writer import write_checkpoint
from tfbert.errors import TfbertError
from tfbert.models.backbone import build_bert
from tfbert.models.datasets import AutotuneFree
from tfbert.models.encoder import TOKENIZER_LAYER, bert_outputs
from tfbert.models.training_ops import use_training_ops
from tfbert.models.weights import load_weights, pytorch_state_dict
from tfbert.text.tokenizer import BertTokenizerLayer

logger = logging.getLogger(__name__)

IGNORE = -100  # label of unmasked positions, as in transformers
TINY_CONFIG = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                   max_position_embeddings=512)


def mask_tokens(input_ids, attention_mask, special_ids, vocab_size, mask_id, mask_rate=0.15, seed=None):
    """BERT's masking, drawn anew at every call: 15% of the non-special tokens are selected; of
    those, 80% become [MASK], 10% a random token, 10% stay as they are.

    Args:
        input_ids: int32 [batch, seq].
        attention_mask: int32 [batch, seq]; padding is never selected.
        special_ids: int32 [n]; tokens never selected ([CLS], [SEP], [PAD], ...).
        vocab_size: int. Random replacements are drawn from [0, vocab_size).
        mask_id: int. The [MASK] id.
        mask_rate: float. Share of the candidate tokens selected. Defaults to 0.15.
        seed: optional int for `tf.random` (tests).

    Returns:
        (masked_input_ids int32 [batch, seq], labels int32 [batch, seq]: the original id where
        selected, -100 elsewhere).
    """
    shape = tf.shape(input_ids)
    special = tf.reduce_any(tf.equal(input_ids[:, :, None], tf.cast(special_ids, input_ids.dtype)[None, None, :]), axis=-1)
    candidates = tf.logical_and(tf.equal(attention_mask, 1), tf.logical_not(special))
    selected = tf.logical_and(candidates, tf.random.uniform(shape, seed=seed) < mask_rate)
    action = tf.random.uniform(shape, seed=None if seed is None else seed + 1)
    to_mask = tf.logical_and(selected, action < 0.8)
    to_random = tf.logical_and(selected, tf.logical_and(action >= 0.8, action < 0.9))
    random_ids = tf.random.uniform(shape, 0, vocab_size, dtype=input_ids.dtype, seed=None if seed is None else seed + 2)
    masked = tf.where(to_mask, tf.cast(mask_id, input_ids.dtype), tf.where(to_random, random_ids, input_ids))
    labels = tf.where(selected, input_ids, tf.cast(IGNORE, input_ids.dtype))
    return masked, labels


@tf_keras.saving.register_keras_serializable(package="tfbert")
class BertPretrainer(AutotuneFree, tf_keras.Model):
    """Raw-string sentence pairs -> MLM and NSP losses; trains with `compile` / `fit`.

    `fit` takes batches of ({"text", "text_pair"}, next_sentence_label), e.g. from
    `tfbert.corpus.pretraining_batches`. Metrics: loss, mlm_loss, nsp_loss, mlm_accuracy (over the
    selected positions), nsp_accuracy.

    Args:
        tokenizer: BertTokenizerLayer.
        model: transformers.TFBertForPreTraining. Its GELU and dropout become tfbert's training kernels
            (`tfbert.models.training_ops`).
        mask_rate: float. Defaults to 0.15.
    """

    def __init__(self, tokenizer, model, mask_rate=0.15, **kwargs):
        super().__init__(**kwargs)
        use_training_ops(model)
        self.tokenizer, self.model, self.mask_rate = tokenizer, model, mask_rate
        # Never masked: BERT's special tokens and special added tokens (added normal tokens are text).
        specials = sorted({tokenizer.pad_id, *tokenizer.special_ids})
        self._special_ids = tf.constant(specials, tf.int32)
        self._loss_trackers = {name: tf_keras.metrics.Mean(name=name) for name in ("loss", "mlm_loss", "nsp_loss")}
        self._mlm_accuracy = tf_keras.metrics.SparseCategoricalAccuracy(name="mlm_accuracy")
        self._nsp_accuracy = tf_keras.metrics.SparseCategoricalAccuracy(name="nsp_accuracy")

    @property
    def metrics(self):
        return [*self._loss_trackers.values(), self._mlm_accuracy, self._nsp_accuracy]

    def heads(self, tokens, positions=None, training=False):
        """BERT and both heads on token ids (no masking): what training runs after `mask_tokens`.

        Args:
            tokens: dict of int32 [batch, seq] `input_ids`, `token_type_ids`, `attention_mask`.
            positions: int64 [n, 2] (row, position) pairs: compute MLM logits there only. The
                vocabulary projection is the costliest layer, so training runs it on the selected
                positions alone. Defaults to None (every position).
            training: bool. Dropout on. Defaults to False.

        Returns:
            (mlm_logits float32 [batch, seq, vocab], or [n, vocab] at `positions`;
             nsp_logits float32 [batch, 2]: index 0 "B follows A", as in transformers.)
        """
        outputs = bert_outputs(self.model.bert, tokens, training=training)
        states = outputs["last_hidden_state"]
        if positions is not None:
            states = tf.gather_nd(states, positions)[None]
        mlm_logits = self.model.mlm(states, training=training)
        nsp_logits = self.model.nsp(outputs["pooled_output"])
        return (mlm_logits if positions is None else mlm_logits[0]), nsp_logits

    def _forward(self, features, training):
        tokens = self.tokenizer((features["text"], features["text_pair"]))
        masked, labels = mask_tokens(tokens["input_ids"], tokens["attention_mask"], self._special_ids,
                                     self.model.config.vocab_size, self.tokenizer.mask_id, self.mask_rate)
        positions = tf.where(tf.not_equal(labels, IGNORE))
        mlm_logits, nsp_logits = self.heads({**tokens, "input_ids": masked}, positions, training)
        return tf.gather_nd(labels, positions), mlm_logits, nsp_logits

    def _compute_losses(self, features, nsp_labels, training):
        mlm_labels, mlm_logits, nsp_logits = self._forward(features, training)
        mlm_losses = tf_keras.losses.sparse_categorical_crossentropy(mlm_labels, mlm_logits, from_logits=True)
        mlm_loss = tf.reduce_sum(mlm_losses) / tf.maximum(tf.cast(tf.size(mlm_losses), tf.float32), 1.0)
        nsp_loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True))
        return mlm_loss, nsp_loss, (mlm_labels, mlm_logits, nsp_logits)

    def _update_metrics(self, mlm_loss, nsp_loss, nsp_labels, outputs):
        mlm_labels, mlm_logits, nsp_logits = outputs
        self._loss_trackers["loss"].update_state(mlm_loss + nsp_loss)
        self._loss_trackers["mlm_loss"].update_state(mlm_loss)
        self._loss_trackers["nsp_loss"].update_state(nsp_loss)
        self._mlm_accuracy.update_state(mlm_labels, mlm_logits)
        self._nsp_accuracy.update_state(nsp_labels, nsp_logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        features, nsp_labels = data
        with tf.GradientTape() as tape:
            mlm_loss, nsp_loss, outputs = self._compute_losses(features, nsp_labels, training=True)
            loss = mlm_loss + nsp_loss
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._update_metrics(mlm_loss, nsp_loss, nsp_labels, outputs)

    def test_step(self, data):
        features, nsp_labels = data
        mlm_loss, nsp_loss, outputs = self._compute_losses(features, nsp_labels, training=False)
        return self._update_metrics(mlm_loss, nsp_loss, nsp_labels, outputs)

    def build_on_text(self):
        """Builds the model by calling it on one short pair (a subclassed Keras model builds on its
        first call), so that it saves, restores (BackupAndRestore) and summarises at once. Returns self."""
        self({"text": tf.constant(["."]), "text_pair": tf.constant(["."])})
        return self

    def call(self, features, training=False):
        _, mlm_logits, nsp_logits = self._forward(features, training)
        return {"mlm_logits": mlm_logits, "nsp_logits": nsp_logits}

    def get_config(self):
        return {"name": self.name, "tokenizer": tf_keras.saving.serialize_keras_object(self.tokenizer),
                "bert_config": self.model.config.to_dict(), "mask_rate": self.mask_rate}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        tokenizer = tf_keras.saving.deserialize_keras_object(config.pop("tokenizer"))
        model = TFBertForPreTraining(BertConfig.from_dict(config.pop("bert_config")), name="bert_for_pretraining")
        return cls(tokenizer, model, **config)


def _bert_config(config, vocab_size):
    if isinstance(config, str) and config == "tiny":
        return BertConfig(vocab_size=vocab_size, **TINY_CONFIG)
    if isinstance(config, dict):
        return BertConfig(**{"vocab_size": vocab_size, **config})
    path = pathlib.Path(config)
    if not path.is_file():
        raise TfbertError(f"config must be 'tiny', a dict or a config.json file; {path} does not exist.")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise TfbertError(f"{path} is not JSON: {e}") from e
    values.setdefault("vocab_size", vocab_size)
    if values["vocab_size"] != vocab_size:
        raise TfbertError(f"{path} has vocab_size {values['vocab_size']}, but the vocabulary has {vocab_size} tokens.")
    return BertConfig(**values)


def build_pretrainer(model=None, config=None, vocabulary=None, max_length=128, mask_rate=0.15, allow_pickle=False,
                     **tokenizer_options):
    """A `BertPretrainer` from a checkpoint (continued pre-training) or a fresh config (from scratch).

    Args:
        model: str. Checkpoint to continue from (preset, folder, hub id). Its MLM and NSP heads are
            loaded when present, else initialised fresh. Ignored when `config` is given.
        config: "tiny" (2 layers, hidden 128, 2 heads), a dict of BertConfig fields, or a config.json
            path: a randomly initialised BERT of that size.
        vocabulary: str. vocab.txt for a fresh config. Defaults to the default checkpoint's.
        max_length: int. Longest pair, special tokens included. Defaults to 128.
        mask_rate: float. Defaults to 0.15.

    Returns:
        BertPretrainer, built (its weights exist), ready for `compile` and `fit`.
    """
    if config is not None:
        if vocabulary is None:
            vocabulary = str(load_checkpoint().vocab_file)
        tokenizer_options = {"do_lower_case": True, **tokenizer_options}
        tokenizer = BertTokenizerLayer(vocabulary, max_length=max_length, name=TOKENIZER_LAYER, **tokenizer_options)
        bert_config = _bert_config(config, tokenizer.vocabulary_size)
        bert = TFBertForPreTraining(bert_config, name="bert_for_pretraining")
        build_bert(bert)
    else:
        checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
        tokenizer = checkpoint.build_tokenizer(max_length, "longest", name=TOKENIZER_LAYER, **tokenizer_options)
        bert = _load_pretraining_model(checkpoint)
    return BertPretrainer(tokenizer, bert, mask_rate=mask_rate, name="bert_pretrainer").build_on_text()


def _load_pretraining_model(checkpoint):
    bert, missing = load_weights(TFBertForPreTraining, checkpoint, "bert_for_pretraining", optional=("cls.", "pooler"))
    heads = [k for k in missing if k.startswith("cls.")]
    if heads:
        logger.info("%s has no pre-training heads (%s...): they start from fresh weights", checkpoint.weights_file, heads[0])
    return bert


def save_pretrained(pretrainer, folder, card=None):
    """Writes a Hugging Face checkpoint folder (`tfbert.checkpoints.writer`) that PyTorch's
    `BertForPreTraining.from_pretrained` and `tfbert.build_encoder` read back; `card` holds fields of
    its model card (`tfbert.checkpoints.model_card.ModelCard`: training, command, name, base_model)."""
    return write_checkpoint(folder, pretrainer.model.config, pretrainer.tokenizer, pytorch_state_dict(pretrainer.model),
                            architectures=["BertForPreTraining"], card=card)
