"""Model surgery: adding tokens to the vocabulary, pruning attention heads.

`add_tokens` is transformers' `tokenizer.add_tokens(...)` followed by
`model.resize_token_embeddings(len(tokenizer))`, on a model whose tokenizer is in the graph.

transformers' TensorFlow BERT raises NotImplementedError for `prune_heads` (and for `head_mask`);
`prune_heads` here removes the heads' weights, as PyTorch's `BertModel.prune_heads` does, so the
pruned model is smaller and faster, and it equals the unpruned model run with those heads masked.
"""

import logging

from tfbert.errors import TfbertError
from tfbert.models.backbone import pruned_backbone, resized_copy
from tfbert.models.classifier import BertClassifier, ClassifierHead, wire_classifier
from tfbert.models.encoder import BertEncoder, RawTextModel, wire_encoder
from tfbert.models.pretrainer import BertPretrainer
from tfbert.text.tokenizer import BertTokenizerLayer
from tfbert.text.vocabulary import read_vocabulary, write_vocabulary

logger = logging.getLogger(__name__)


def _new_added_tokens(tokenizer, tokens, special_tokens):
    """transformers' `PreTrainedTokenizer._add_tokens` on a tokenizer layer's state.

    Returns:
        (added token entries after the call, the vocabulary's new lines).
    """
    if isinstance(tokens, str):
        tokens = [tokens]
    vocabulary = read_vocabulary(tokenizer.vocabulary)
    current = {token: i for i, token in enumerate(vocabulary[:tokenizer.base_vocabulary_size])}
    added = [dict(a) for a in tokenizer.added_tokens]
    current.update({a["content"]: a["id"] for a in added})
    known = set(tokenizer.special_tokens) | {a["content"] for a in added}
    new_lines = []
    for token in tokens:
        if not isinstance(token, str):
            raise TfbertError(f"tokens must be strings; received {token!r} ({type(token).__name__}).")
        if token == "" or token in known:
            continue
        if any(c in token for c in "\n\r\x00\ufffd"):
            raise TfbertError(f"token {token!r} contains a line break, NUL or U+FFFD; a vocabulary line cannot hold it.")
        special = bool(special_tokens) or token in tokenizer.special_tokens
        # Normal added tokens are matched in the lower-cased text, so they are lower-cased too.
        content = token.lower() if not special and tokenizer.do_lower_case else token
        if content in known:
            continue
        if content not in current:
            current[content] = len(vocabulary) + len(new_lines)
            new_lines.append(content)
        added.append({"content": content, "id": current[content], "special": special})
        known.add(content)
    return added, vocabulary + new_lines


def _with_added_tokens(tokenizer, tokens, special_tokens):
    added, lines = _new_added_tokens(tokenizer, tokens, special_tokens)
    if added == [dict(a) for a in tokenizer.added_tokens]:
        return tokenizer, 0
    config = tokenizer.get_config()
    config.update(vocabulary=str(write_vocabulary(lines)), added_tokens=added,
                  base_vocabulary_size=tokenizer.base_vocabulary_size)
    return BertTokenizerLayer.from_config(config), len(lines) - tokenizer.vocabulary_size


def add_tokens(model, tokens, special_tokens=False):
    """A copy of an encoder, classifier or pre-trainer with tokens added to its vocabulary.

    transformers' `tokenizer.add_tokens(tokens, special_tokens)` then
    `model.resize_token_embeddings(len(tokenizer))`: the tokenizer layer keeps every added token
    whole wherever it occurs in the text (also inside words, as the reference's trie does), ids
    and outputs of text without them stay the same, and the new token embeddings start as the mean
    of the existing ones.

    Args:
        model: tf_keras.Model from `build_encoder`, `build_classifier` or `build_pretrainer`.
        tokens: str or list of str. With do_lower_case they are lower-cased (unless special).
            Tokens already added are skipped; tokens already in the vocabulary keep their id but
            are no longer split.
        special_tokens: bool. Add them as special tokens: not lower-cased, never masked in pre-training.
            Defaults to False.

    Returns:
        A new model of the same kind; the original is unchanged. The vocabulary, extended with
        the new tokens as its last lines, is written to the cache (`tfbert.files.cache_dir()`)
        and becomes the export's vocabulary asset; `save_classifier` copies it.
    """
    if isinstance(model, BertPretrainer):
        tokenizer, count = _with_added_tokens(model.tokenizer, tokens, special_tokens)
        bert = resized_copy(model.model, tokenizer.vocabulary_size)
        logger.info("added %d new tokens (vocabulary: %d tokens)", count, tokenizer.vocabulary_size)
        return BertPretrainer(tokenizer, bert, mask_rate=model.mask_rate, name=model.name).build_on_text()
    if not isinstance(model, RawTextModel):
        raise TfbertError("add_tokens needs a model from tfbert.build_encoder, build_classifier or build_pretrainer; "
                          f"received {type(model).__name__}.")
    tokenizer, count = _with_added_tokens(model.tokenizer, tokens, special_tokens)
    bert = resized_copy(model.bert, tokenizer.vocabulary_size)
    logger.info("added %d new tokens (vocabulary: %d tokens)", count, tokenizer.vocabulary_size)
    return _rewire(model, tokenizer, bert)


def _rewire(model, tokenizer, bert):
    """The encoder or classifier `model` rebuilt around a new tokenizer layer and backbone."""
    if isinstance(model, BertClassifier):
        copy = ClassifierHead.from_config(model.head.get_config())
        rebuilt = wire_classifier(tokenizer, bert, copy, model.text_pair, name=model.name,
                                  checkpoint_name=model.checkpoint_name)
        copy.set_weights(model.head.get_weights())
        return rebuilt
    if isinstance(model, BertEncoder):
        return wire_encoder(tokenizer, bert, model.checkpoint_name)
    raise TfbertError(f"cannot rebuild a {type(model).__name__}: pass a model from tfbert.build_encoder or build_classifier.")


def prune_heads(model, heads):
    """A copy of an encoder or classifier without the given attention heads.

    Args:
        model: tf_keras.Model from `build_encoder` or `build_classifier`.
        heads: dict of layer index to the head indices to remove, e.g. {0: [1, 3], 5: [0]}.

    Returns:
        A new model of the same kind. Its BERT config records `pruned_heads`, so `get_config`
        round-trips, `save_classifier` / `load_classifier` keep the pruned shapes, and exports hold
        only the kept heads' weights. The original model is unchanged.

    Raises:
        TfbertError: an unknown layer or head, all heads of a layer, or a layer pruned before.
    """
    if not isinstance(model, (BertEncoder, BertClassifier)):
        raise TfbertError("prune_heads needs a model from tfbert.build_encoder or tfbert.build_classifier; "
                          f"received {type(model).__name__}.")
    if not isinstance(heads, dict):
        raise TfbertError(f"heads must be a dict of layer to head indices, e.g. {{0: [1, 3]}}; received {heads!r}.")
    return _rewire(model, model.tokenizer, pruned_backbone(model.bert, heads))
