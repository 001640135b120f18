"""Question–context pairs with their answers: SQuAD v1.1 and v2.0 JSON, and JSONL, checked.

JSON: SQuAD's layout, `{"data": [{"paragraphs": [{"context": ..., "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible"}]}]}]}`. JSONL: one question a line, as Hugging Face's
`squad` data sets hold it: `{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}`.
Every answer must be the context's text at its `answer_start` (character offsets); a mistake names the
file, the question's id (or line) and what the context holds there. A question with no answers (or
`is_impossible`) is a SQuAD 2.0 impossible question.
"""

import dataclasses
import json
import pathlib

from tfbert.errors import TfbertError


@dataclasses.dataclass
class QuestionAnswers:
    """Questions, their contexts and gold answers, read from a file.

    Attributes:
        ids: list of str.
        questions, contexts: lists of str.
        answers: list of lists of (text, start) pairs; [] for an impossible question.
        source: str. The file read.
    """

    ids: list
    questions: list
    contexts: list
    answers: list
    source: str

    def __len__(self):
        return len(self.ids)

    @property
    def answer_texts(self):
        return [[text for text, _ in answers] for answers in self.answers]


def _checked_answers(answers, context, where):
    checked = []
    for text, start in answers:
        if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
            raise TfbertError(f"{where}: an answer needs a text (string) and an answer_start (int); found {text!r}, {start!r}.")
        found = context[start:start + len(text)]
        if start < 0 or found != text:
            raise TfbertError(f"{where}: the answer {text!r} is not at answer_start {start} of its context "
                              f"(the context holds {found!r} there). Fix answer_start (a character offset).")
        checked.append((text, start))
    return checked


def _from_json(path, data):
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise TfbertError(f"{path}: not SQuAD JSON (a {{\"data\": [...]}} object); use SQuAD's layout, or JSONL.")
    for article in data["data"]:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise TfbertError(f"{path}: a paragraph has no \"context\" string.")
            for qa in paragraph.get("qas", []):
                qid = str(qa.get("id", ""))
                where = f"{path}: question {qid!r}"
                if not isinstance(qa.get("question"), str):
                    raise TfbertError(f"{where}: no \"question\" string.")
                answers = [] if qa.get("is_impossible") else [(a.get("text"), a.get("answer_start"))
                                                               for a in qa.get("answers", [])]
                yield qid, qa["question"], context, _checked_answers(answers, context, where)


def _from_jsonl(path, handle):
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise TfbertError(f"{where}: not a JSON object ({e.msg}).") from e
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("question", "context")):
            raise TfbertError(f"{where}: each line needs \"question\" and \"context\" strings, and \"answers\".")
        answers = record.get("answers") or {"text": [], "answer_start": []}
        if not isinstance(answers, dict) or len(answers.get("text", [])) != len(answers.get("answer_start", [])):
            raise TfbertError(f"{where}: \"answers\" must be {{\"text\": [...], \"answer_start\": [...]}} of equal lengths.")
        pairs = list(zip(answers["text"], answers["answer_start"]))
        yield str(record.get("id", number)), record["question"], record["context"], _checked_answers(pairs, record["context"], where)


def read_squad(path):
    """Reads a SQuAD v1.1 / v2.0 JSON file or a JSONL file of questions (see the module docstring).

    Returns:
        QuestionAnswers.

    Raises:
        TfbertError: an unreadable file, a missing field, or an answer that is not where it says.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise TfbertError(f"{path} does not exist.")
    result = QuestionAnswers([], [], [], [], str(path))
    try:
        with open(path, encoding="utf-8") as handle:
            if path.suffix.lower() == ".jsonl":
                rows = list(_from_jsonl(path, handle))
            else:
                try:
                    data = json.load(handle)
                except json.JSONDecodeError as e:
                    raise TfbertError(f"{path}: not JSON ({e.msg} at line {e.lineno}); SQuAD files are one JSON "
                                      "object, use .jsonl for one question a line.") from e
                rows = list(_from_json(path, data))
    except UnicodeDecodeError as e:
        raise TfbertError(f"{path} is not UTF-8 text ({e}).") from e
    for qid, question, context, answers in rows:
        result.ids.append(qid)
        result.questions.append(question)
        result.contexts.append(context)
        result.answers.append(answers)
    if not result.ids:
        raise TfbertError(f"{path} has no questions.")
    return result
