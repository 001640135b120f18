"""Tagged sentences for entity tagging: CoNLL and JSONL readers, IOB1/IOB2 checks, tag names and ids.

CoNLL: one word a line, its tag the last field (tab or space separated, so CoNLL-2003's four columns
work too), a blank line between sentences, `-DOCSTART-` lines skipped. JSONL: one sentence a line,
`{"tokens": [...], "tags": [...]}`. Mistakes are reported with the file and line.

IOB2 (each entity starts with `B-`) is the default; IOB1 files (`I-` starts an entity, `B-` only
splits two adjacent entities of one type) are read with `scheme="iob1"` and converted to IOB2, so a
model always learns IOB2 tags; the entities, and so the scores, are the same.
"""

import dataclasses
import pathlib

from tfbert.defaults import TAG_SCHEMES
from tfbert.errors import TfbertError, check_choice
from tfbert.jobs.entity_scores import OUTSIDE, split_tag
from tfbert.jobs.records import read_records

TAGGED_FORMATS = {".conll": "conll", ".txt": "conll", ".tsv": "conll", ".bio": "conll", ".iob": "conll",
                  ".jsonl": "jsonl", ".json": "jsonl"}
DOCSTART = "-DOCSTART-"


@dataclasses.dataclass
class TaggedSentences:
    """Sentences of words and their tags, read from a file.

    Attributes:
        words: list of lists of str.
        tags: list of lists of str (IOB2 after reading).
        lines: list of lists of int, the line of each word (CoNLL) or of each sentence's record (JSONL).
        source: str. The file read.
    """

    words: list
    tags: list
    lines: list
    source: str

    def __len__(self):
        return len(self.words)

    def where(self, sentence, word=0):
        """"file:line" of a word, for messages."""
        lines = self.lines[sentence]
        return f"{self.source}:{lines[min(word, len(lines) - 1)]}"


def _conll_sentences(path):
    words, tags, lines = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                if words:
                    yield words, tags, lines
                    words, tags, lines = [], [], []
                continue
            if fields[0] == DOCSTART:
                continue
            if len(fields) < 2:
                raise TfbertError(f"{path}:{number}: expected a word and its tag (tab or space separated); "
                                  f"found {line.strip()!r}.")
            words.append(fields[0])
            tags.append(fields[-1])
            lines.append(number)
    if words:
        yield words, tags, lines


def _jsonl_sentences(path):
    for number, record in read_records(path, "jsonl"):
        if "tokens" not in record or "tags" not in record:
            raise TfbertError(f"{path}:{number}: each line must be a JSON object with \"tokens\" and \"tags\" lists.")
        words, tags = record["tokens"], record["tags"]
        if not (isinstance(words, list) and isinstance(tags, list) and all(isinstance(w, str) for w in words)
                and all(isinstance(t, str) for t in tags)):
            raise TfbertError(f"{path}:{number}: \"tokens\" and \"tags\" must be lists of strings (tag names, not ids).")
        if len(words) != len(tags):
            raise TfbertError(f"{path}:{number}: {len(words)} tokens but {len(tags)} tags.")
        if words:
            yield words, tags, [number] * len(words)


def check_tags(tags, scheme, where):
    """Checks one sentence's tags against the scheme; returns them in IOB2.

    Args:
        tags: list of str.
        scheme: "iob2" or "iob1".
        where: callable(word index) -> "file:line", for messages.

    Raises:
        TfbertError: a tag that is not O, B-type or I-type; in IOB2 an I- tag that does not continue
            an entity of its type; in IOB1 a B- tag that does not follow a word of its type.
    """
    converted = []
    previous = (OUTSIDE, "")
    for index, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if not (tag == OUTSIDE or (prefix in ("B", "I") and kind)):
            raise TfbertError(f"{where(index)}: tag {tag!r} is not O, B-<type> or I-<type>.")
        continues = previous[1] == kind and previous[0] != OUTSIDE
        if scheme == "iob2" and prefix == "I" and not continues:
            after = "the sentence's start" if index == 0 else repr(tags[index - 1])
            raise TfbertError(f"{where(index)}: {tag!r} after {after}: in IOB2 an entity starts with B-{kind}. "
                              "If the file uses IOB1 (entities start with I-), pass --tag-scheme iob1.")
        if scheme == "iob1" and prefix == "B" and not continues:
            raise TfbertError(f"{where(index)}: {tag!r} does not follow a {kind} word: in IOB1, B- only separates two "
                              "adjacent entities of one type. If the file uses IOB2, pass --tag-scheme iob2.")
        if scheme == "iob1" and prefix == "I" and not continues:
            tag = f"B-{kind}"
        converted.append(tag)
        previous = (prefix, kind)
    return converted


def read_tagged(path, scheme="iob2"):
    """Reads tagged sentences from a CoNLL (.conll, .txt, .tsv, .bio, .iob) or JSONL (.jsonl) file.

    Args:
        path: str. The file; its suffix picks the format.
        scheme: str. "iob2" (default) or "iob1"; IOB1 tags are converted to IOB2.

    Returns:
        TaggedSentences, tags in IOB2.

    Raises:
        TfbertError: unreadable or empty file, a line without a tag, a malformed or out-of-scheme tag.
    """
    check_choice("scheme", scheme, TAG_SCHEMES)
    path = pathlib.Path(path)
    fmt = TAGGED_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TfbertError(f"{path}: unknown format {path.suffix!r}; use CoNLL (.conll, .txt, .tsv, .bio, .iob) or .jsonl.")
    if not path.is_file():
        raise TfbertError(f"{path} does not exist.")
    sentences = TaggedSentences([], [], [], str(path))
    reader = _conll_sentences if fmt == "conll" else _jsonl_sentences
    try:
        for words, tags, lines in reader(path):
            tags = check_tags(tags, scheme, lambda index, lines=lines: f"{path}:{lines[index]}")
            sentences.words.append(words)
            sentences.tags.append(tags)
            sentences.lines.append(lines)
    except UnicodeDecodeError as e:
        raise TfbertError(f"{path} is not UTF-8 text ({e}).") from e
    if not sentences.words:
        raise TfbertError(f"{path} has no tagged sentences.")
    return sentences


def tag_names(sentences):
    """The tag names of training sentences in id order: "O" first, then each type's B- and I- tags, sorted by type.

    I- tags of every type are included even when the data has none (a type of one-word entities), so a
    model can tag longer entities of it.
    """
    kinds = sorted({split_tag(tag)[1] for tags in sentences.tags for tag in tags} - {""})
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in kinds for prefix in ("B", "I")]


def encode_tags(sentences, names):
    """Tag ids per sentence (lists of int).

    Raises:
        TfbertError: a tag that is not among `names`, with its file and line.
    """
    index = {name: i for i, name in enumerate(names)}
    encoded = []
    for number, tags in enumerate(sentences.tags):
        for position, tag in enumerate(tags):
            if tag not in index:
                types = sorted({split_tag(name)[1] for name in names} - {""})
                raise TfbertError(f"{sentences.where(number, position)}: tag {tag!r} has a type the training data "
                                  f"does not have ({', '.join(types)}). Fix the tag, or add training sentences with it.")
        encoded.append([index[tag] for tag in tags])
    return encoded
