"""Questions, contexts and answers to training windows, and answers back from a question-answering model.

Windows come from the model's in-graph tokenizer (`BertTokenizerLayer.tokenize_windows`): the question
cut to `max_question_length` tokens, the context in windows of `max_length` tokens sharing
`doc_stride` tokens, exactly as the question-answering export makes them. An answer's characters are
mapped to tokens through the windows' offsets, as transformers' question-answering recipe
(`prepare_train_features`) does: the start is the token holding the answer's first character, the
end the token holding its last; a window that does not hold the whole answer, and every window of an
impossible question, is labelled [CLS] (position 0).

The dev metric decodes as the export does, because it is the export's code: a
`QuestionAnsweringModule` on the model being trained answers each dev question from its whole
context (windows merged), and SQuAD's exact match and F1 score the answers.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.defaults import QA_DOC_STRIDE, QA_MAX_QUESTION_LENGTH, QA_MAX_WINDOWS
from tfbert.jobs.squad_metrics import squad_scores
from tfbert.models.question_answerer import TOKEN_INPUTS
from tfbert.serving.question_answering import QuestionAnsweringModule
from tfbert.text.windows import check_window_options


@dataclasses.dataclass
class QAWindows:
    """Training windows.

    Attributes:
        tokens: dict of "input_ids", "token_type_ids", "attention_mask": int32 [windows, longest].
        lengths: int32 [windows], tokens per window.
        example: int32 [windows], the question each window comes from.
        start_positions, end_positions: int32 [windows], the answer's tokens (0, 0: no answer here).
    """

    tokens: dict
    lengths: np.ndarray
    example: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray

    def __len__(self):
        return len(self.lengths)


def _answer_positions(offsets, token_types, length, answer):
    """(start, end) token positions of an answer (text, start character) in one window; (0, 0) when the
    window does not hold all of it, as transformers' recipe labels such windows."""
    if answer is None:
        return 0, 0
    text, start_char = answer
    end_char = start_char + len(text)
    context = np.flatnonzero((token_types[:length] == 1) & (offsets[:length, 1] > offsets[:length, 0]))
    if not len(context):
        return 0, 0
    first, last = context[0], context[-1]
    if not (offsets[first, 0] <= start_char and offsets[last, 1] >= end_char):
        return 0, 0
    start = first
    while start <= last and offsets[start, 0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end, 1] >= end_char:
        end -= 1
    return int(start - 1), int(end + 1)


def qa_windows(tokenizer, questions, contexts, answers, doc_stride=QA_DOC_STRIDE,
               max_question_length=QA_MAX_QUESTION_LENGTH, max_windows=QA_MAX_WINDOWS, chunk=128):
    """Training windows and their answer positions (see the module docstring).

    Args:
        tokenizer: BertTokenizerLayer (the model's `tokenizer`; its max_length is the window length).
        questions, contexts: lists of str.
        answers: list of (text, start character) per question, or None for an impossible question
            (transformers' recipe trains on each question's first gold answer).
        doc_stride, max_question_length, max_windows: as the question-answering export's options.

    Returns:
        QAWindows.
    """
    # Checked here, not while tracing, where the error would come back wrapped in TensorFlow's.
    check_window_options(tokenizer.max_length, doc_stride, max_question_length, max_windows)
    windows = tf.function(lambda q, c: tokenizer.tokenize_windows(q, c, doc_stride, max_question_length, max_windows),
                          input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    rows = {name: [] for name in TOKEN_INPUTS}
    lengths, example, starts, ends = [], [], [], []
    for begin in range(0, len(questions), chunk):
        out = windows(tf.constant(questions[begin:begin + chunk], tf.string),
                      tf.constant(contexts[begin:begin + chunk], tf.string))
        out = {name: value.numpy() for name, value in out.items()}
        for window in range(len(out["pair"])):
            question = begin + int(out["pair"][window])
            length = int(out["attention_mask"][window].sum())
            start, end = _answer_positions(out["offsets"][window], out["token_type_ids"][window], length,
                                           answers[question])
            for name in TOKEN_INPUTS:
                rows[name].append(out[name][window, :length])
            lengths.append(length)
            example.append(question)
            starts.append(start)
            ends.append(end)
    longest = max(lengths, default=1)
    tokens = {name: np.stack([np.pad(row, (0, longest - len(row))) for row in values]).astype(np.int32)
              if values else np.zeros([0, 1], np.int32) for name, values in rows.items()}
    return QAWindows(tokens, np.asarray(lengths, np.int32), np.asarray(example, np.int32),
                     np.asarray(starts, np.int32), np.asarray(ends, np.int32))


def qa_dataset(windows, batch_size=32, shuffle=False, seed=0, bucketing=True, window_batches=32):
    """A tf.data of (tokens, {"start_logits": start, "end_logits": end}) batches for a question answerer's
    `fit`; each batch is cut to its longest window. With bucketing, windows of similar length are batched
    together (sorted within `window_batches` batches of shuffled windows), as `make_dataset` does."""
    count = len(windows)
    order = np.arange(count)
    if shuffle:
        order = np.random.default_rng(seed).permutation(count)
    if bucketing:
        span = batch_size * window_batches
        order = np.concatenate([part[np.argsort(windows.lengths[part], kind="stable")]
                                for part in np.array_split(order, max(1, math.ceil(count / span)))]) if count else order
    batches = [order[i:i + batch_size] for i in range(0, count, batch_size)]
    if shuffle:
        np.random.default_rng(seed + 1).shuffle(batches)

    def batch_arrays():
        for rows in batches:
            longest = int(windows.lengths[rows].max())
            yield ({name: value[rows, :longest] for name, value in windows.tokens.items()},
                   {"start_logits": windows.start_positions[rows], "end_logits": windows.end_positions[rows]})

    spec = ({name: tf.TensorSpec([None, None], tf.int32) for name in TOKEN_INPUTS},
            {name: tf.TensorSpec([None], tf.int32) for name in ("start_logits", "end_logits")})
    dataset = tf.data.Dataset.from_generator(batch_arrays, output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(tf.data.AUTOTUNE)


class SquadScoresCallback(tf_keras.callbacks.Callback):
    """Adds dev exact match and F1 (SQuAD's, in percent) to each epoch's logs as `val_exact_match` and
    `val_f1`, answering each dev question from its whole context with the export's own decoding.

    Args:
        questions, contexts: lists of str (dev).
        golds: list of lists of str, the gold answers ([] for impossible questions).
        options: the question-answering export's options (doc_stride, max_answer_len, ...).
        batch_size: int. Questions answered at a time.
    """

    def __init__(self, questions, contexts, golds, options, batch_size=32):
        super().__init__()
        self.questions, self.contexts, self.golds = questions, contexts, golds
        self.options, self.batch_size = dict(options), batch_size
        self._answer = None

    def answers(self):
        if self._answer is None:  # one module for the run: its graph reads the live weights
            module = QuestionAnsweringModule(self.model.tokenizer, self.model.span_predictor, **self.options)
            self._answer = module.serving_default()
        predicted = []
        for begin in range(0, len(self.questions), self.batch_size):
            out = self._answer(question=tf.constant(self.questions[begin:begin + self.batch_size]),
                               context=tf.constant(self.contexts[begin:begin + self.batch_size]))
            predicted += [answer.decode("utf-8") for answer in out["answer"].numpy()]
        return predicted

    def on_epoch_end(self, epoch, logs=None):
        scores = squad_scores(self.answers(), self.golds)
        if logs is not None:
            logs.update(val_exact_match=scores["exact_match"], val_f1=scores["f1"])
