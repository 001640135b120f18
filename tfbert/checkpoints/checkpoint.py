"""A checked checkpoint folder: its BERT config, vocabulary, tokenizer options and weights file.

`model` may be a preset name (`tfbert.checkpoints.presets.PRESETS`), a local folder in Hugging Face
layout (`config.json`, `vocab.txt`, and `model.safetensors`, `tf_model.h5` or, opted in,
`pytorch_model.bin`), or a Hugging Face hub id. Everything is checked here, before any weight is read.
"""

import dataclasses
import json
import logging
import pathlib

from transformers import BertConfig

from tfbert.checkpoints.fetch import resolve_model
from tfbert.checkpoints.layout import (ADDED_TOKENS_FILE, CONFIG_FILE, PICKLE_FILE, SENTENCE_TRANSFORMERS_MODULES_FILE,
                                       SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, VOCAB_FILE, WEIGHT_FILES)
from tfbert.errors import TfbertError
from tfbert.files import read_json
from tfbert.text.packing import check_max_length
from tfbert.text.tokenizer import BertTokenizerLayer
from tfbert.text.vocabulary import DEFAULT_SPECIAL_TOKENS, read_vocabulary, write_vocabulary

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Checkpoint:
    """A checked checkpoint folder: its BERT config, vocabulary, tokenizer options and weights file."""

    name: str
    folder: pathlib.Path
    config: object  # transformers.BertConfig
    vocab_file: pathlib.Path
    tokenizer_options: dict
    weights_file: pathlib.Path

    @property
    def max_length(self):
        return self.config.max_position_embeddings

    @property
    def pooling(self):
        """How the checkpoint was trained to pool a sentence: "mean" or "cls" for a sentence-transformers
        checkpoint (from its Pooling module's config), else "pooled" (BERT's pooler, as pre-trained)."""
        return sentence_transformers_pooling(self.folder) or "pooled"

    def build_tokenizer(self, max_length=None, padding="longest", name="tokenizer", **overrides):
        """The checkpoint's `BertTokenizerLayer`: its vocabulary and tokenizer options.

        Args:
            max_length: int. Defaults to the checkpoint's max_position_embeddings (also the upper bound).
            padding: str. "longest" or "max_length". Defaults to "longest".
            name: str. The layer's name. Defaults to "tokenizer".
            **overrides: tokenizer options replacing the checkpoint's (e.g. do_lower_case=False).
        """
        if max_length is None:
            max_length = self.max_length
        check_max_length(max_length, self.max_length, "the checkpoint's max_position_embeddings")
        options = {**self.tokenizer_options, **overrides}
        return BertTokenizerLayer(str(self.vocab_file), max_length=max_length, padding=padding, name=name, **options)


def sentence_transformers_pooling(folder):
    """"mean" or "cls" from a sentence-transformers folder's modules.json and Pooling config; None otherwise."""
    folder = pathlib.Path(folder)
    try:
        modules = json.loads((folder / SENTENCE_TRANSFORMERS_MODULES_FILE).read_text(encoding="utf-8"))
        pooling_path = next(m["path"] for m in modules if m.get("type", "").endswith("Pooling"))
        config = json.loads((folder / pooling_path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return None
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    return None


def _tokenizer_options(folder, vocab):
    options = {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True, **DEFAULT_SPECIAL_TOKENS}
    for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):
        path = folder / name
        if path.is_file():
            for key, value in read_json(path).items():
                if isinstance(value, dict) and "content" in value:  # serialized AddedToken
                    value = value["content"]
                if key in options and (value is None or isinstance(value, (bool, str))):
                    options[key] = value
    if options["do_lower_case"]:
        cased = sum(1 for token in vocab if token[:1].isupper() and not token.startswith("["))
        if cased > 0.05 * len(vocab):
            logger.warning(
                "the vocabulary of %s looks cased (%d tokens start with an upper-case letter) but "
                "do_lower_case is True; pass do_lower_case=False if the model was trained cased.",
                folder, cased,
            )
    return options


def _added_tokens(folder, vocab, options):
    """The tokens added to a Hugging Face tokenizer, from tokenizer_config.json's `added_tokens_decoder`
    (transformers >= 4.34) or `added_tokens.json`, in the order transformers reads them back.

    Returns:
        list of {"content", "id", "special"}, without BERT's five special tokens.

    Raises:
        TfbertError: an added token with options tfbert does not reproduce (lstrip, rstrip,
            single_word, or normalization other than transformers' default).
    """
    config_path = folder / TOKENIZER_CONFIG_FILE
    decoder = read_json(config_path).get("added_tokens_decoder") if config_path.is_file() else None
    entries = []
    if isinstance(decoder, dict):
        for token_id, token in decoder.items():
            if not isinstance(token, dict) or "content" not in token:
                raise TfbertError(f"{config_path}: added_tokens_decoder[{token_id!r}] is not an AddedToken dict.")
            special = bool(token.get("special", False))
            options_used = [k for k in ("lstrip", "rstrip", "single_word") if token.get(k)]
            if not special and token.get("normalized", True) is False:
                options_used.append("normalized=False")
            entries.append((int(token_id), token["content"], special, options_used))
    elif (folder / ADDED_TOKENS_FILE).is_file():
        added = read_json(folder / ADDED_TOKENS_FILE)
        entries = sorted((int(i), content, False, []) for content, i in added.items())
    standard = {options[key] for key in DEFAULT_SPECIAL_TOKENS}
    result = []
    for token_id, content, special, options_used in entries:
        if content in standard and token_id < len(vocab) and vocab[token_id] == content:
            continue  # BERT's own special tokens
        if options_used:
            raise TfbertError(
                f"{folder}: the added token {content!r} uses {', '.join(options_used)}; tfbert reproduces added "
                "tokens as transformers' add_tokens makes them (no lstrip, rstrip or single_word; normal tokens normalized)."
            )
        result.append({"content": content, "id": token_id, "special": special})
    return result


def _extended_vocabulary(folder, vocab, added):
    """The vocabulary with the added tokens beyond it as extra lines: (path, base size)."""
    if not added:
        return folder / VOCAB_FILE, len(vocab)
    new = sorted((a["id"], a["content"]) for a in added if a["id"] >= len(vocab))
    expected = list(range(len(vocab), len(vocab) + len(new)))
    if [i for i, _ in new] != expected:
        raise TfbertError(f"{folder}: the added tokens' ids {[i for i, _ in new]} do not follow the {len(vocab)} "
                          "tokens of vocab.txt without gaps.")
    return write_vocabulary(vocab + [content for _, content in new]), len(vocab)


def load_checkpoint(model=None, allow_pickle=False, cache=None):
    """Resolves `model` and checks its files and config before any weight is read.

    Args:
        model: str. Preset name, local folder or hub id. Defaults to the default preset.
        allow_pickle: bool. Accept `pytorch_model.bin` (read with `torch.load(weights_only=True)`,
            needs torch). Pickle files can run code, so this is off by default. Defaults to False.
        cache: str. Cache folder for fetched presets. Defaults to `cache_dir()`.

    Raises:
        TfbertError: a file is missing, the model is not BERT, the vocabulary disagrees with the config.
    """
    folder, name = resolve_model(model, cache)
    for required in (CONFIG_FILE, VOCAB_FILE):
        if not (folder / required).is_file():
            raise TfbertError(f"the checkpoint folder {folder} has no {required}.")
    raw_config = read_json(folder / CONFIG_FILE)
    model_type = raw_config.get("model_type")
    if model_type != "bert":
        raise TfbertError(
            f"{folder / CONFIG_FILE} has model_type={model_type!r}; tfbert loads BERT checkpoints "
            "(model_type 'bert') only."
        )
    config = BertConfig.from_dict(raw_config)
    vocab = read_vocabulary(folder / VOCAB_FILE)
    options = _tokenizer_options(folder, vocab)
    added = _added_tokens(folder, vocab, options)
    vocab_file, base_size = _extended_vocabulary(folder, vocab, added)
    if added:
        options.update(added_tokens=added, base_vocabulary_size=base_size)
    tokens = len(vocab) + sum(1 for a in added if a["id"] >= len(vocab))
    if tokens != config.vocab_size:
        raise TfbertError(
            f"{folder / VOCAB_FILE} has {tokens} tokens" + (f" ({len(vocab)} and {tokens - len(vocab)} added)" if tokens > len(vocab) else "")
            + f" but {CONFIG_FILE} says vocab_size={config.vocab_size}; the vocabulary does not belong to these weights."
        )
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise TfbertError(f"the checkpoint folder {folder} has no weights file (one of {', '.join(WEIGHT_FILES)}).")
    if weights.name == PICKLE_FILE and not allow_pickle:
        raise TfbertError(
            f"{weights} is a pickle checkpoint, which can run arbitrary code when loaded; tfbert refuses it "
            "by default. Convert it to model.safetensors, or opt in with --allow-pickle / allow_pickle=True "
            "(read with torch.load(weights_only=True); needs torch)."
        )
    return Checkpoint(name, folder, config, vocab_file, options, weights)
