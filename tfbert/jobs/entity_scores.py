"""Entity-level precision, recall and F1 of tagged sentences, counted as conlleval counts chunks.

conlleval (the CoNLL-2000 evaluation script, also used for CoNLL-2003 and WNUT-17) and seqeval's
default mode score whole entities: an entity is correct when the gold and predicted tags both make a
chunk of the same type over exactly the same words. Chunks follow conlleval's rules, so IOB1 and IOB2
tags are both read:

- `B-X` always starts a chunk of type X;
- `I-X` continues the chunk before it if that chunk has type X, and starts one otherwise (after `O`,
  at the start of a sentence, or after a chunk of another type);
- `O` (or any tag without a type) ends a chunk; so does the end of a sentence.

seqeval itself is an sdist from 2020 that does not build on these machines, hence this module.
"""

import dataclasses

OUTSIDE = "O"


def split_tag(tag):
    """("B", "PER") for "B-PER"; ("O", "") for "O" or any tag without a type. Types may contain hyphens."""
    prefix, dash, kind = tag.partition("-")
    return (prefix, kind) if dash else (tag, "")


def _ends(previous, current):
    (previous_prefix, previous_type), (prefix, kind) = previous, current
    if previous_prefix in (OUTSIDE, ""):
        return False
    return prefix in ("B", OUTSIDE) or not kind or previous_type != kind


def _starts(previous, current):
    (previous_prefix, previous_type), (prefix, kind) = previous, current
    if not kind:
        return False
    return prefix == "B" or previous_prefix == OUTSIDE or previous_type != kind


def entity_spans(tags):
    """The chunks of one sentence's tags: a list of (type, first word, last word), in order.

    >>> entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 1), ('LOC', 3, 3), ('LOC', 4, 4)]
    """
    spans, start, kind = [], None, None
    previous = (OUTSIDE, "")
    for index, tag in enumerate(tags):
        current = split_tag(tag)
        if start is not None and _ends(previous, current):
            spans.append((kind, start, index - 1))
            start = None
        if _starts(previous, current):
            start, kind = index, current[1]
        previous = current
    if start is not None:
        spans.append((kind, start, len(tags) - 1))
    return spans


@dataclasses.dataclass
class EntityScores:
    """Entity counts and scores; `by_type` holds one EntityScores per entity type."""

    gold: int  # entities in the gold tags
    predicted: int  # entities in the predicted tags
    correct: int  # predicted entities equal to a gold one (type and words)
    by_type: dict = dataclasses.field(default_factory=dict)

    @property
    def precision(self):
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self):
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self):
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def as_dict(self):
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "gold": self.gold,
                "predicted": self.predicted, "correct": self.correct}


def score_entities(gold, predicted):
    """Entity-level scores of predicted tags against gold tags.

    Args:
        gold, predicted: lists of sentences, each a list of tag strings ("B-PER", "I-PER", "O"); a
            predicted sentence has as many tags as its gold one.

    Returns:
        EntityScores, overall and `by_type`.

    Raises:
        ValueError: the two lists differ in sentences or a sentence in length.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted ones.")
    counts = {}  # type -> [gold, predicted, correct]
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {index} has {len(gold_tags)} gold tags but {len(predicted_tags)} predicted ones.")
        gold_spans, predicted_spans = set(entity_spans(gold_tags)), set(entity_spans(predicted_tags))
        for spans, column in ((gold_spans, 0), (predicted_spans, 1), (gold_spans & predicted_spans, 2)):
            for kind, _, _ in spans:
                counts.setdefault(kind, [0, 0, 0])[column] += 1
    by_type = {kind: EntityScores(*values) for kind, values in sorted(counts.items())}
    totals = [sum(values[column] for values in counts.values()) for column in range(3)]
    return EntityScores(*totals, by_type=by_type)
