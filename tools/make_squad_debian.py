"""Builds a SQuAD-format question-answering set from Debian package descriptions (real text, real spans).

No QA corpus is reachable from the project's machines, so this makes one by rule from
../shared/data/debian-descriptions.txt (one sentence a line, a blank line between documents). Each
document, its sentences joined with spaces, is a context. Questions come from sentences of three shapes,
and each answer is the span of the context the rule names, so every answer is text that is really there:

1. "<Subject> is <a/an/the ...>." -> "What is <Subject>?"; the answer is the phrase after "is",
   without the final period. The subject starts the sentence: "This package", "This library", or a
   name (a capitalised or numeric first word that is not a function word such as "This" or "For",
   then at most 4 more words).
2. "<Subject> provides|contains|includes|supports|offers <object>." -> "What does <subject>
   provide|contain|include|support|offer?"; the answer is the object, without the final period.
3. "... written in <Language> ..." (a capitalised word, or C++/C#) -> "What language is <the
   document's first subject> written in?" only when rule 1 or 2 found a named subject in the document;
   the answer is the language.

Answers are 1 to 30 words. A document gives at most one question per rule. With --unanswerable F, a
fraction F of the questions are also asked of another document whose context does not contain their
answer, as SQuAD 2.0's impossible questions (`is_impossible`, no answers). Documents go to dev when a
hash of their text says so (--dev-fraction), so no context is in both splits.

usage: python tools/make_squad_debian.py OUT_DIR [--corpus PATH] [--train N] [--dev N] [--unanswerable F]
writes OUT_DIR/train.json and OUT_DIR/dev.json (SQuAD v1.1 layout, or v2.0 with --unanswerable).
"""

import argparse
import hashlib
import json
import pathlib
import random
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "debian-descriptions.txt"
# A subject starts the sentence: a name (a capitalised or numeric word that is not a function word,
# then up to 4 more words), or "This package" / "This library".
STARTERS = "A|All|An|As|Each|Every|For|If|In|It|Its|Many|Most|Note|On|Some|Since|That|The|There|These|This|To|When|With"
SUBJECT = rf"((?:This package|This library|(?!(?:{STARTERS})\b)[A-Z0-9][\w.+-]*(?: [\w.+-]+){{0,4}}?))"
IS_RULE = re.compile(rf"^{SUBJECT} is ((?:an?|the) [^.]+?)\.$")
VERBS = {"provides": "provide", "contains": "contain", "includes": "include", "supports": "support", "offers": "offer"}
VERB_RULE = re.compile(rf"^{SUBJECT} ({'|'.join(VERBS)}) ([^.]+?)\.$")
WRITTEN_RULE = re.compile(r"\bwritten in (C\+\+|C#|[A-Z][A-Za-z]+)\b")


def documents(path):
    """Lists of sentences, one list a document."""
    current = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                yield current
                current = []
    if current:
        yield current


def _mid_sentence(subject):
    """"this package" for "This package"; names keep their case."""
    return subject[0].lower() + subject[1:] if subject.startswith("This ") else subject


def questions(sentences):
    """(question, answer, answer_start) triples of one document, and its context."""
    context = " ".join(sentences)
    found, offset, subject = [], 0, None
    for sentence in sentences:
        start = context.index(sentence, offset)
        offset = start + len(sentence)
        match = IS_RULE.match(sentence)
        if match and not any(q[0].startswith("What is") for q in found):
            subject = subject or match.group(1)
            found.append((f"What is {_mid_sentence(match.group(1))}?", match.group(2), start + match.start(2)))
            continue
        match = VERB_RULE.match(sentence)
        if match and not any(q[0].startswith("What does") for q in found):
            subject = subject or match.group(1)
            name = _mid_sentence(match.group(1))
            found.append((f"What does {name} {VERBS[match.group(2)]}?", match.group(3), start + match.start(3)))
    for sentence_start, sentence in ((context.index(s), s) for s in sentences):
        match = WRITTEN_RULE.search(sentence)
        if match and subject and not subject.startswith("This "):
            found.append((f"What language is {subject} written in?", match.group(1), sentence_start + match.start(1)))
            break
    return context, [(q, a, s) for q, a, s in found if 1 <= len(a.split()) <= 30 and context[s:s + len(a)] == a]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--train", type=int, default=4000, help="training questions (at most)")
    parser.add_argument("--dev", type=int, default=600, help="dev questions (at most)")
    parser.add_argument("--dev-fraction", type=float, default=0.15)
    parser.add_argument("--unanswerable", type=float, default=0.0, help="share of extra SQuAD 2.0 impossible questions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    splits = {"train": [], "dev": []}
    for number, sentences in enumerate(documents(args.corpus)):
        context, found = questions(sentences)
        if not found:
            continue
        digest = int(hashlib.sha256(context.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        splits["dev" if digest < args.dev_fraction else "train"].append((number, context, found))
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, limit in (("train", args.train), ("dev", args.dev)):
        rng.shuffle(splits[split])
        paragraphs, count = [], 0
        for number, context, found in splits[split]:
            if count >= limit:
                break
            qas = [{"id": f"debian-{number}-{i}", "question": q, "answers": [{"text": a, "answer_start": s}],
                    "is_impossible": False} for i, (q, a, s) in enumerate(found[:limit - count])]
            count += len(qas)
            paragraphs.append({"context": context, "qas": qas})
        if args.unanswerable:
            pool = [q for p in paragraphs for q in p["qas"]]
            for index, question in enumerate(rng.sample(pool, int(len(pool) * args.unanswerable))):
                target = paragraphs[rng.randrange(len(paragraphs))]
                if question["answers"][0]["text"] in target["context"] or question in target["qas"]:
                    continue
                target["qas"].append({"id": f"{question['id']}-impossible-{index}", "question": question["question"],
                                      "answers": [], "is_impossible": True})
        version = "v2.0" if args.unanswerable else "1.1"
        data = {"version": version, "data": [{"title": f"debian-{split}", "paragraphs": paragraphs}]}
        (out / f"{split}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        total = sum(len(p["qas"]) for p in paragraphs)
        print(f"{out / f'{split}.json'}: {len(paragraphs)} contexts, {total} questions")


if __name__ == "__main__":
    main()
