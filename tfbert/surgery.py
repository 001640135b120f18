"""Model surgery: pruning attention heads.

transformers' TensorFlow BERT raises NotImplementedError for `prune_heads` (and for `head_mask`);
`prune_heads` here removes the heads' weights, as PyTorch's `BertModel.prune_heads` does, so the
pruned model is smaller and faster, and it equals the unpruned model run with those heads masked.
"""

from tfbert.backbone import pruned_backbone
from tfbert.classifier import HEAD_LAYER, ClassifierHead, _wire
from tfbert.encoder import BERT_LAYER, TOKENIZER_LAYER, wire_encoder
from tfbert.errors import TfbertError


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
    names = {layer.name for layer in getattr(model, "layers", [])}
    if not {TOKENIZER_LAYER, BERT_LAYER} <= names:
        raise TfbertError("prune_heads needs a model from tfbert.build_encoder or tfbert.build_classifier.")
    if not isinstance(heads, dict):
        raise TfbertError(f"heads must be a dict of layer to head indices, e.g. {{0: [1, 3]}}; received {heads!r}.")
    tokenizer = model.get_layer(TOKENIZER_LAYER)
    bert = pruned_backbone(model.get_layer(BERT_LAYER), heads)
    if HEAD_LAYER in names:
        head = model.get_layer(HEAD_LAYER)
        copy = ClassifierHead.from_config(head.get_config())
        pruned = _wire(tokenizer, bert, copy, text_pair=len(model.inputs) == 2, name=model.name)
        copy.set_weights(head.get_weights())
    else:
        pruned = wire_encoder(tokenizer, bert)
    pruned.checkpoint_name = getattr(model, "checkpoint_name", None)
    return pruned
