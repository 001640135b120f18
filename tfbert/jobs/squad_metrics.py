"""Exact match and F1 of extractive answers, as SQuAD's official evaluation scripts (v1.1 and v2.0) count them.

An answer and each gold answer are normalised (lower case; punctuation, the articles a/an/the and extra
white space removed); exact match is 1 when the prediction equals a gold answer, F1 is the best token
overlap F1 over the gold answers. A question without gold answers (SQuAD 2.0's impossible ones) is
scored against the empty answer: 1 when the prediction is empty too, else 0.
"""

import collections
import re
import string

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text):
    """Lower case, punctuation removed, articles removed, white space collapsed (SQuAD's normalize_answer)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction, gold):
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:  # an empty answer matches only an empty answer
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, golds):
    """Mean exact match and F1, in percent as SQuAD reports them.

    Args:
        predictions: list of str, one answer a question ("" for no answer).
        golds: list of lists of str, the gold answers of each question ([] for an impossible question).

    Returns:
        {"exact_match": float, "f1": float, "count": int}, plus "has_answer_*" and "no_answer_*"
        splits when both kinds of question are present (as SQuAD 2.0's script reports them).
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions but {len(golds)} questions.")
    rows = []
    for prediction, answers in zip(predictions, golds):
        answers = [a for a in answers if normalize_answer(a)] or [""]
        rows.append((max(exact_match(prediction, a) for a in answers), max(f1(prediction, a) for a in answers),
                     answers != [""]))

    def mean(selected):
        return {"exact_match": 100.0 * sum(r[0] for r in selected) / len(selected),
                "f1": 100.0 * sum(r[1] for r in selected) / len(selected), "count": len(selected)} if selected else None

    scores = mean(rows) or {"exact_match": 0.0, "f1": 0.0, "count": 0}
    has, has_not = [r for r in rows if r[2]], [r for r in rows if not r[2]]
    if has and has_not:
        for prefix, selected in (("has_answer", has), ("no_answer", has_not)):
            scores.update({f"{prefix}_{key}": value for key, value in mean(selected).items()})
    return scores
