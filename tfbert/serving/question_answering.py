"""Extractive question answering served from raw strings: (question, context) -> answer, score, start, end.

The graph does what transformers' `QuestionAnsweringPipeline` (4.57, fast tokenizer) does in Python:

1. windows: the question (cut to `max_question_length` tokens) with the context in windows of
   `max_length` tokens sharing `doc_stride` tokens (`BertTokenizerLayer.tokenize_windows`);
2. per window, start and end probabilities: softmax over the context tokens and [CLS] (the others
   at -10000); the no-answer score is p_start[CLS] * p_end[CLS]; then [CLS] is set to 0 (memory per
   window: seq x max_answer_len span scores);
3. per window, the `2 * top_k + 10` best spans start <= end < start + max_answer_len by
   p_start * p_end, each widened to whole words (the pipeline's `align_to_words`);
4. per question, over all its windows: spans whose answer texts are equal ignoring case are merged
   (their scores added, the first one's position kept), the no-answer candidate is added when
   `handle_impossible_answer` is set, and the `top_k` best are returned.

Where tfbert differs, on purpose: spans of score exactly 0 are dropped (the pipeline can list such
spans, from [CLS], when a window has fewer valid spans than it asks for); an empty context or a batch
position with fewer than `top_k` answers gets answer "", score 0, start 0, end 0; case is folded with
ICU (`tf.strings.lower(encoding="utf-8")`) rather than Python's `str.lower`.
"""

import tensorflow as tf

from tfbert.defaults import QA_DOC_STRIDE, QA_MAX_ANSWER_LENGTH, QA_MAX_QUESTION_LENGTH, QA_MAX_WINDOWS
from tfbert.errors import check_positive_int
from tfbert.serving.task_base import TaskModule, run_model
from tfbert.text.offsets import sanitize_utf8
from tfbert.text.ragged import from_rows
from tfbert.text.windows import check_window_options

QUESTION = tf.TensorSpec([None], tf.string, name="question")
CONTEXT = tf.TensorSpec([None], tf.string, name="context")
MASKED_LOGIT = -10000.0  # the pipeline's value for tokens that cannot be part of an answer


class QuestionAnsweringModule(TaskModule):
    """A question-answering export. Options (the pipeline's names and defaults): top_k=1,
    doc_stride=128, max_answer_len=15, handle_impossible_answer=False, max_question_length=64 (the
    pipeline's max_question_len), max_windows=32 (windows a context; tfbert's bound)."""

    pair_inputs = True

    def __init__(self, tokenizer, model, top_k=1, doc_stride=QA_DOC_STRIDE, max_answer_len=QA_MAX_ANSWER_LENGTH,
                 handle_impossible_answer=False, max_question_length=QA_MAX_QUESTION_LENGTH, max_windows=QA_MAX_WINDOWS):
        check_positive_int("top_k", top_k, "answers a question")
        check_positive_int("max_answer_len", max_answer_len, "tokens an answer")
        check_window_options(tokenizer.max_length, doc_stride, max_question_length, max_windows)
        options = dict(top_k=top_k, doc_stride=doc_stride, max_answer_len=max_answer_len,
                       handle_impossible_answer=bool(handle_impossible_answer),
                       max_question_length=max_question_length, max_windows=max_windows)
        super().__init__("tfbert_question_answering", tokenizer, model, "question-answering", options)
        self._answer = tf.function(self._answer_fn, input_signature=[QUESTION, CONTEXT])

    def serving_default(self):
        return self._answer

    def _answer_fn(self, question, context):
        o = self.options
        windows = self.tokenizer.tokenize_windows(question, context, o["doc_stride"], o["max_question_length"],
                                                  o["max_windows"])
        outputs = run_model(self.model, windows)
        candidates = self._window_candidates(windows, outputs.start_logits, outputs.end_logits)
        answers = _best_answers(candidates, windows["pair"], sanitize_utf8(context), o["top_k"],
                                o["handle_impossible_answer"])
        if o["top_k"] == 1:
            answers = {k: v[:, 0] for k, v in answers.items()}
        return answers

    def _window_candidates(self, windows, start_logits, end_logits):
        """Each window's best spans: dict of [windows, n] "score", "start", "end" (code points), "valid",
        and [windows] "null" (the no-answer score)."""
        ids, mask = windows["input_ids"], windows["attention_mask"]
        seq = tf.shape(ids)[1]
        position = tf.range(seq)[None, :]
        length = tf.reduce_sum(mask, axis=1, keepdims=True)
        # Context tokens (sequence 1, without the last [SEP]) and [CLS] may be in an answer.
        context = (windows["token_type_ids"] == 1) & (position < length - 1)
        desired = context | (position == 0)
        p_start = tf.nn.softmax(tf.where(desired, start_logits, MASKED_LOGIT))
        p_end = tf.nn.softmax(tf.where(desired, end_logits, MASKED_LOGIT))
        null = p_start[:, 0] * p_end[:, 0]
        not_cls = tf.cast(position > 0, p_start.dtype)
        p_start, p_end = p_start * not_cls, p_end * not_cls
        # Spans start <= end < start + max_answer_len, as [windows, start, length - 1]: the band of the
        # pipeline's [start, end] matrix without the zeros around it (seq / max_answer_len times smaller).
        # Flat indices keep the matrix's (start, end) order, so ties fall the same way.
        longest = self.options["max_answer_len"]
        ends = tf.range(seq)[:, None] + tf.range(longest)[None, :]  # [seq, longest]
        p_span_end = tf.gather(p_end, tf.minimum(ends, seq - 1), axis=1) * tf.cast(ends < seq, p_end.dtype)
        spans = tf.reshape(p_start[:, :, None] * p_span_end, [tf.shape(ids)[0], seq * longest])
        count = tf.minimum(2 * self.options["top_k"] + 10, seq * longest)
        score, index = tf.math.top_k(spans, k=count)
        start = index // longest
        end = start + index % longest
        valid = tf.gather(desired, start, batch_dims=1) & tf.gather(desired, end, batch_dims=1) & (score > 0)
        # Whole words: a "##" piece continues the word of the token before it (within the context).
        continues = self.continues_word(ids) & context & tf.concat([tf.zeros_like(context[:, :1]), context[:, :-1]], 1)
        word = tf.cumsum(tf.reshape(tf.cast(~continues, tf.int32), [-1])) - 1
        words = tf.size(word)
        offsets = tf.reshape(windows["offsets"], [-1, 2])
        word_start = tf.math.unsorted_segment_min(offsets[:, 0], word, words)
        word_end = tf.math.unsorted_segment_max(offsets[:, 1], word, words)
        word = tf.reshape(word, tf.shape(ids))
        return {"score": score, "valid": valid, "null": null,
                "start": tf.gather(word_start, tf.gather(word, start, batch_dims=1)),
                "end": tf.gather(word_end, tf.gather(word, end, batch_dims=1))}


def _best_answers(candidates, pair, context, top_k, handle_impossible_answer):
    """Merges each question's window candidates and keeps its top_k: dict of [batch, top_k] "answer",
    "score", "start", "end"."""
    batch = tf.shape(context, out_type=tf.int64)[0]
    pair = tf.cast(pair, tf.int64)

    def by_question(values):  # [windows, n] -> [batch, (candidates)] in window order (windows come by pair)
        return from_rows(tf.reshape(values, [-1]), tf.repeat(pair, tf.shape(values)[1]), batch)

    valid = by_question(candidates["valid"])
    scores, start, end = (tf.ragged.boolean_mask(by_question(candidates[k]), valid) for k in ("score", "start", "end"))
    # At least one column, so that the reductions below never run over an empty axis.
    width = tf.maximum(tf.reduce_max(tf.concat([scores.row_lengths(), [0]], 0)), 1)
    present = tf.sequence_mask(scores.row_lengths(), width)
    shape = tf.stack([batch, width])
    scores, start, end = scores.to_tensor(0.0, shape=shape), start.to_tensor(0, shape=shape), end.to_tensor(0, shape=shape)
    text = tf.broadcast_to(context[:, None], tf.shape(start))
    answer = tf.strings.substr(text, start, end - start, unit="UTF8_CHAR")
    # Equal answers ignoring case merge into the first of them, their scores added.
    folded = tf.strings.lower(answer, encoding="utf-8")
    same = tf.equal(folded[:, :, None], folded[:, None, :]) & present[:, :, None] & present[:, None, :]
    first = tf.argmax(tf.cast(same, tf.int32), axis=2, output_type=tf.int32)
    merged = tf.einsum("bi,bij->bj", scores, tf.one_hot(first, tf.shape(start)[1], dtype=scores.dtype))
    keep = present & tf.equal(first, tf.range(tf.shape(start)[1])[None, :])
    ranked = tf.where(keep, merged, -1.0)
    if handle_impossible_answer:
        null = tf.minimum(tf.math.unsorted_segment_min(candidates["null"], pair, batch), 1e6)
        ranked = tf.concat([ranked, null[:, None]], axis=1)
        answer = tf.concat([answer, tf.fill([batch, 1], "")], axis=1)
        start, end = (tf.concat([x, tf.zeros([batch, 1], x.dtype)], axis=1) for x in (start, end))
    padding = tf.maximum(top_k - tf.shape(ranked)[1], 0)
    ranked = tf.pad(ranked, [[0, 0], [0, padding]], constant_values=-1.0)
    answer = tf.pad(answer, [[0, 0], [0, padding]])
    start, end = (tf.pad(x, [[0, 0], [0, padding]]) for x in (start, end))
    best, index = tf.math.top_k(ranked, k=top_k)  # ties keep the earlier candidate, as Python's stable sort
    found = best >= 0

    def pick(values, empty):
        return tf.where(found, tf.gather(values, index, batch_dims=1), empty)

    return {"answer": pick(answer, ""), "score": tf.where(found, best, 0.0),
            "start": tf.cast(pick(start, 0), tf.int32), "end": tf.cast(pick(end, 0), tf.int32)}
