"""Checkpoint weights into transformers' TensorFlow BERT models, and back out under PyTorch names.

Weights are read without torch (safetensors) or from tf_model.h5, checked against the config, and
written in the layout PyTorch's `from_pretrained` reads.
"""

import logging

import numpy as np
from transformers.modeling_tf_pytorch_utils import (convert_tf_weight_name_to_pt_weight_name,
                                                    load_pytorch_state_dict_in_tf2_model)

from tfbert.checkpoints.layout import CONFIG_FILE, H5_FILE
from tfbert.checkpoints.state_dict import read_state_dict
from tfbert.errors import TfbertError
from tfbert.models.backbone import BertBackbone, build_bert

logger = logging.getLogger(__name__)


def load_weights(model_class, checkpoint, name, optional=("pooler",), exclude=()):
    """A transformers BERT model of `model_class` (TFBertModel, TFBertForPreTraining, ...) with the
    checkpoint's weights, loaded without torch (safetensors) or from tf_model.h5.

    Args:
        optional: substrings of the PyTorch weight names the checkpoint may lack (they keep their
            fresh initial values); any other missing weight is an error.
        exclude: prefixes of PyTorch weight names to leave out of loading (a head being replaced,
            whose shape may differ). Safetensors checkpoints only.

    Returns:
        (model, the optional weight names the checkpoint lacked).

    Raises:
        TfbertError: the weights file is corrupt, does not fit the config, or lacks weights.
    """
    if checkpoint.weights_file.name == H5_FILE:
        try:
            return model_class.from_pretrained(str(checkpoint.folder), config=checkpoint.config, name=name), []
        except (OSError, ValueError) as e:
            raise TfbertError(f"the weights file {checkpoint.weights_file} is corrupt or truncated ({e}).") from e
    state_dict = read_state_dict(checkpoint.weights_file)
    state_dict = {key: value for key, value in state_dict.items() if not key.startswith(tuple(exclude))}
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
    model, missing = load_weights(BertBackbone, checkpoint, name)
    if missing:
        logger.warning(
            "%s has no pooler weights: pooled_output comes from a randomly initialised layer.", checkpoint.weights_file
        )
    return model



MAIN_LAYER_PARTS = ("embeddings", "encoder", "pooler")  # TFBertMainLayer's sub-layers


def _tf_name(weight, model, main_weights):
    """The weight's TensorFlow name as transformers converts it: "<model>/bert/<embeddings|encoder|pooler>/..."
    for the main layer's weights. A main layer built inside another model's name scope (a classifier
    read back with `load_classifier`) names them "bert/embeddings/...", without its own level."""
    if id(weight) not in main_weights:
        return weight.name
    parts = weight.name.split("/")
    start = next(i for i, part in enumerate(parts) if part in MAIN_LAYER_PARTS)
    return "/".join([model.name, model.bert.name, *parts[start:]])


def pytorch_state_dict(model):
    """A transformers TensorFlow BERT model's weights under PyTorch names, as numpy arrays."""
    state = {}
    main_weights = {id(w) for w in model.bert.weights} if hasattr(model, "bert") else set()
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(
            _tf_name(weight, model, main_weights), tf_weight_shape=weight.shape)
        value = weight.numpy()
        if transpose.name == "SIMPLE":
            value = value.T
        state[name] = np.ascontiguousarray(value)
    return state
