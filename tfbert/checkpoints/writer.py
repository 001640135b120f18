"""Writing a Hugging Face checkpoint folder that transformers (PyTorch and TensorFlow) and tfbert read back:
config.json, vocab.txt, tokenizer_config.json, added_tokens.json and model.safetensors (PyTorch names),
and the model card, README.md (`tfbert.checkpoints.model_card`)."""

import json
import os
import pathlib

from safetensors.numpy import save_file

from tfbert.checkpoints.layout import (ADDED_TOKENS_FILE, CONFIG_FILE, SAFETENSORS_FILE, TOKENIZER_CONFIG_FILE,
                                       VOCAB_FILE)
from tfbert.checkpoints.model_card import checkpoint_card
from tfbert.text.vocabulary import DEFAULT_SPECIAL_TOKENS, read_vocabulary


def tokenizer_config(tokenizer):
    """transformers' tokenizer_config.json for a `BertTokenizerLayer`, added tokens included."""
    decoder = {tokenizer.unk_id: tokenizer.unk_token, tokenizer.sep_id: tokenizer.sep_token,
               tokenizer.pad_id: tokenizer.pad_token, tokenizer.cls_id: tokenizer.cls_token,
               tokenizer.mask_id: tokenizer.mask_token}
    decoder = {i: {"content": t, "special": True} for i, t in decoder.items()}
    decoder.update({a["id"]: {"content": a["content"], "special": a["special"]} for a in tokenizer.added_tokens})
    return {"do_lower_case": tokenizer.do_lower_case, "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
            "strip_accents": tokenizer.strip_accents, "model_max_length": tokenizer.max_length,
            "tokenizer_class": "BertTokenizer", **{key: getattr(tokenizer, key) for key in DEFAULT_SPECIAL_TOKENS},
            "additional_special_tokens": [a["content"] for a in tokenizer.added_tokens if a["special"]],
            "added_tokens_decoder": {str(i): {**d, "lstrip": False, "rstrip": False, "single_word": False,
                                              "normalized": not d["special"]} for i, d in sorted(decoder.items())}}


def write_checkpoint(folder, config, tokenizer, state_dict, architectures, base_model=None, card=None):
    """Writes a checkpoint folder; returns it.

    Args:
        folder: str. Created if missing; files already there are replaced.
        config: transformers.BertConfig. Written with `architectures` set.
        tokenizer: BertTokenizerLayer. Its vocabulary and options.
        state_dict: dict of str to np.ndarray, under PyTorch names.
        architectures: list of str, e.g. ["BertForPreTraining"].
        base_model: str. The checkpoint the model was built from, for the card.
        card: dict. More of the card's fields (`ModelCard`: training, command, name, base_model).
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.architectures = list(architectures)
    config.to_json_file(str(folder / CONFIG_FILE))
    # transformers' layout: vocab.txt holds the WordPiece tokens, added tokens go to added_tokens.json
    # and tokenizer_config.json's added_tokens_decoder, so BertTokenizer.from_pretrained reads them back.
    vocabulary = read_vocabulary(tokenizer.vocabulary)
    (folder / VOCAB_FILE).write_text("".join(t + "\n" for t in vocabulary[:tokenizer.base_vocabulary_size]),
                                     encoding="utf-8")
    (folder / TOKENIZER_CONFIG_FILE).write_text(json.dumps(tokenizer_config(tokenizer), indent=1), encoding="utf-8")
    new_tokens = {a["content"]: a["id"] for a in tokenizer.added_tokens if a["id"] >= tokenizer.base_vocabulary_size}
    if new_tokens:
        (folder / ADDED_TOKENS_FILE).write_text(json.dumps(new_tokens, indent=1), encoding="utf-8")
    save_file(state_dict, str(folder / SAFETENSORS_FILE), metadata={"format": "pt"})
    os.chmod(folder / SAFETENSORS_FILE, 0o644)  # safetensors writes 0600; the folder is for sharing
    fields = {"base_model": base_model, **(card or {})}  # the card's own base_model, if any, wins
    checkpoint_card(folder, config, tokenizer, architectures, **fields).write(folder)
    return folder
