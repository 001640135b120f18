"""WordPiece vocabularies: reading one as the reference does, checking added tokens, writing an extended one.

The reference (transformers' `BertTokenizer`) reads `vocab.txt` as one token a line, the line number
as id. Tokens added with `add_tokens` get the ids after it; tfbert keeps them as extra lines of an
extended vocabulary written to the cache (`write_vocabulary`), which becomes the export's asset.
"""

import hashlib

from tfbert.errors import TfbertError
from tfbert.files import cache_dir, write_atomic

VOCAB_FILE = "vocab.txt"
DEFAULT_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def read_vocabulary(path):
    """Reads a WordPiece vocabulary as the reference does: one token per line, line number as id.

    Raises:
        TfbertError: the file is missing, empty, not UTF-8, or has lines the graph would read
            differently from the reference (duplicates, carriage returns).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TfbertError(f"cannot read the vocabulary file {path}: {e.strerror}.") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TfbertError(f"the vocabulary file {path} is not UTF-8 text ({e}).") from e
    if "\r" in text:
        raise TfbertError(
            f"the vocabulary file {path} has carriage returns (Windows line endings); "
            "convert it to '\\n' line endings, e.g. with `dos2unix`."
        )
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise TfbertError(f"the vocabulary file {path} is empty.")
    seen = {}
    for line, token in enumerate(tokens, start=1):
        if token in seen:
            raise TfbertError(
                f"the vocabulary file {path} lists {token!r} twice (lines {seen[token]} and {line}); "
                "each token must appear once."
            )
        seen[token] = line
    return tokens


def check_added_tokens(added_tokens, vocabulary_tokens, base_vocabulary_size, path="the vocabulary"):
    """Validates a tokenizer's added tokens against its (extended) vocabulary; returns them normalized.

    Args:
        added_tokens: list of {"content": str, "id": int, "special": bool}, in the order they were
            added (transformers' `added_tokens_decoder`, without the five BERT special tokens).
        vocabulary_tokens: list of str. The vocabulary file's lines.
        base_vocabulary_size: int. The lines WordPiece uses; the lines after it are added tokens.

    Raises:
        TfbertError: naming the entry that is malformed or disagrees with the vocabulary.
    """
    checked, seen = [], set()
    for entry in added_tokens or []:
        if not isinstance(entry, dict) or set(entry) - {"content", "id", "special"} or "content" not in entry or "id" not in entry:
            raise TfbertError(f"each added token must be a dict with 'content', 'id' and 'special'; received {entry!r}.")
        content, token_id, special = entry["content"], entry["id"], bool(entry.get("special", False))
        if not isinstance(content, str) or not content or any(c in content for c in "\n\r\x00\ufffd"):
            raise TfbertError(f"added token {content!r} must be a non-empty string without line breaks, NUL or U+FFFD.")
        if content in seen:
            raise TfbertError(f"added token {content!r} is listed twice.")
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < len(vocabulary_tokens):
            raise TfbertError(f"added token {content!r} has id {token_id!r}, outside {path} (0 to {len(vocabulary_tokens) - 1}).")
        if vocabulary_tokens[token_id] != content:
            raise TfbertError(f"added token {content!r} has id {token_id}, but line {token_id + 1} of {path} is "
                              f"{vocabulary_tokens[token_id]!r}.")
        seen.add(content)
        checked.append({"content": content, "id": token_id, "special": special})
    if isinstance(base_vocabulary_size, bool) or not isinstance(base_vocabulary_size, int) or not (
            1 <= base_vocabulary_size <= len(vocabulary_tokens)):
        raise TfbertError(f"base_vocabulary_size must be between 1 and {len(vocabulary_tokens)} (the lines of {path}); "
                          f"received {base_vocabulary_size!r}.")
    listed = {entry["id"] for entry in checked}
    unlisted = [i for i in range(base_vocabulary_size, len(vocabulary_tokens)) if i not in listed]
    if unlisted:
        raise TfbertError(f"line {unlisted[0] + 1} of {path} ({vocabulary_tokens[unlisted[0]]!r}) comes after the "
                          f"{base_vocabulary_size} WordPiece tokens but is not an added token.")
    return checked


def write_vocabulary(lines):
    """Writes a vocabulary to the cache as `vocabularies/<content hash>/vocab.txt`; returns the path.

    Named vocab.txt because a SavedModel names its asset after the file.
    """
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    folder = cache_dir() / "vocabularies" / hashlib.sha256(data).hexdigest()[:32]
    path = folder / VOCAB_FILE
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    return path
