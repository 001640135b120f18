"""Masked-token prediction served from raw strings: text -> token_str, token, score, sequence, num_masks.

The graph does what transformers' `FillMaskPipeline` (4.57, fast tokenizer) does in Python: for each
[MASK] of a text, the `top_k` (default 5) most probable tokens (softmax over the vocabulary) with
their probability (`score`), id (`token`), string (`token_str`, the token decoded alone) and the
text with that token in the mask's place (`sequence`, decoded as `tokenizer.decode` does: special
tokens left out when the text has one mask, kept when it has several). Outputs are
[batch, masks, top_k], padded to the batch's most masks ("" and 0), and `num_masks` [batch].

Where tfbert differs: a text without [MASK] gets no predictions (num_masks 0) where the pipeline
raises an error; `targets` is not offered; texts are truncated to the export's max_length.
"""

import tensorflow as tf

from tfbert.errors import check_positive_int
from tfbert.defaults import FILL_MASK_TOP_K
from tfbert.serving.modules import TEXT
from tfbert.serving.task_base import TaskModule
from tfbert.text.detokenize import decode_tokens
from tfbert.text.ragged import from_rows


class FillMaskModule(TaskModule):
    """A fill-mask export (a `TFBertForMaskedLM`). Options: top_k (default 5),
    clean_up_tokenization_spaces (default True, BERT's tokenizers' setting)."""

    def __init__(self, tokenizer, model, top_k=FILL_MASK_TOP_K, clean_up_tokenization_spaces=True):
        check_positive_int("top_k", top_k, "tokens a mask")
        if top_k > tokenizer.vocabulary_size:
            top_k = tokenizer.vocabulary_size
        super().__init__("tfbert_fill_mask", tokenizer, model, "fill-mask",
                         dict(top_k=top_k, clean_up_tokenization_spaces=bool(clean_up_tokenization_spaces)))
        self._special_ids = tf.constant(tokenizer.special_ids, tf.int32)
        self._fill = tf.function(self._fill_fn, input_signature=[TEXT])

    def serving_default(self):
        return self._fill

    def _fill_fn(self, text):
        tokens = self.tokenizer(text)
        ids = tokens["input_ids"]
        hidden = self.model.bert(input_ids=ids, attention_mask=tokens["attention_mask"],
                                 token_type_ids=tokens["token_type_ids"], training=False)[0]
        masks = tf.where(tf.equal(ids, self.tokenizer.mask_id))  # [masks, 2]: row, position
        logits = self.model.mlm(sequence_output=tf.gather_nd(hidden, masks)[None], training=False)[0]
        score, token = tf.math.top_k(tf.nn.softmax(logits), k=self.options["top_k"])
        row, k = masks[:, 0], self.options["top_k"]
        batch = tf.shape(ids, out_type=tf.int64)[0]
        num_masks = tf.math.bincount(tf.cast(row, tf.int32), minlength=tf.cast(batch, tf.int32),
                                     maxlength=tf.cast(batch, tf.int32))
        single = tf.gather(num_masks, row) == 1
        # One sequence a (mask, candidate): the row's ids with the candidate at the mask, padding removed.
        candidate_row = tf.repeat(row, k)
        filled = tf.tensor_scatter_nd_update(
            tf.gather(ids, candidate_row), tf.stack([tf.range(tf.size(candidate_row, out_type=tf.int64)),
                                                     tf.repeat(masks[:, 1], k)], axis=1), tf.reshape(token, [-1]))
        kept = tf.not_equal(filled, self.tokenizer.pad_id)
        special = tf.reduce_any(tf.equal(filled[:, :, None], self._special_ids), axis=-1)
        kept &= ~(special & tf.repeat(single, k)[:, None])
        sequence = decode_tokens(tf.ragged.boolean_mask(self.token_strings(filled), kept),
                                 self.options["clean_up_tokenization_spaces"])
        token_str = decode_tokens(tf.RaggedTensor.from_tensor(self.token_strings(tf.reshape(token, [-1, 1]))),
                                  self.options["clean_up_tokenization_spaces"])
        outputs = {"score": score, "token": token, "token_str": tf.reshape(token_str, [-1, k]),
                   "sequence": tf.reshape(sequence, [-1, k])}
        # [batch, masks, k]; the explicit shape also holds when no text of the batch has a mask.
        shape = tf.stack([batch, tf.cast(tf.reduce_max(tf.concat([num_masks, [0]], 0)), tf.int64), k])
        padded = {name: from_rows(value, row, batch).to_tensor(shape=shape)
                  for name, value in outputs.items()}
        return {**padded, "num_masks": tf.cast(num_masks, tf.int32)}
