"""`save_transformers`: a fine-tuned tfbert model as a Hugging Face checkpoint folder that transformers'
PyTorch classes, its pipelines and `tfbert export` load.

    BertClassifier, pooling "pooled"  -> BertForSequenceClassification
    BertTokenClassifier               -> BertForTokenClassification
    BertQuestionAnswerer              -> BertForQuestionAnswering

The folder holds config.json (with `architectures`, `id2label`, `label2id`), model.safetensors under
PyTorch names, vocab.txt and tokenizer_config.json. A classifier with "mean" or "cls" pooling has no
transformers class (BertForSequenceClassification classifies BERT's pooler output), so it is refused.
"""

import numpy as np
from transformers import BertConfig

from tfbert.checkpoints.model_card import made_by
from tfbert.checkpoints.writer import write_checkpoint
from tfbert.errors import TfbertError
from tfbert.models.classifier import BertClassifier
from tfbert.models.question_answerer import BertQuestionAnswerer
from tfbert.models.token_classifier import BertTokenClassifier, config_with_labels
from tfbert.models.weights import pytorch_state_dict

PROBLEM_TYPES = {"classification": "single_label_classification", "multi_label": "multi_label_classification",
                 "regression": "regression"}


def _classifier_checkpoint(model):
    head = model.head
    if head.pooling != "pooled":
        raise TfbertError(
            f"this classifier pools with {head.pooling!r}, and transformers has no class for that: its "
            "BertForSequenceClassification classifies BERT's pooler output. Fine-tune with pooling='pooled' "
            "(--pooling pooled) to save in Hugging Face layout; the TF Serving export works with any pooling.")
    labels = head.labels or ["LABEL_0"]
    config = config_with_labels(model.bert.config, labels)
    config.problem_type = PROBLEM_TYPES[head.task]
    config.classifier_dropout = head.dropout
    kernel, bias = head.dense.kernel.numpy(), head.dense.bias.numpy()
    state = {**pytorch_state_dict(model.bert), "classifier.weight": np.ascontiguousarray(kernel.T),
             "classifier.bias": np.ascontiguousarray(bias)}
    return config, state, "BertForSequenceClassification"


def _token_classifier_checkpoint(model):
    return BertConfig.from_dict(model.tagger.config.to_dict()), pytorch_state_dict(model.tagger), "BertForTokenClassification"


def _question_answerer_checkpoint(model):
    predictor = model.span_predictor
    return BertConfig.from_dict(predictor.config.to_dict()), pytorch_state_dict(predictor), "BertForQuestionAnswering"


def save_transformers(model, folder, card=None):
    """Writes a fine-tuned model as a Hugging Face checkpoint folder (see the module docstring), with its
    model card; returns it.

    Args:
        model: BertClassifier (with "pooled" pooling), BertTokenClassifier or BertQuestionAnswerer.
        folder: str. Created if missing; files already there are replaced.
        card: dict. More of the model card's fields (`tfbert.checkpoints.model_card.ModelCard`: training,
            command, name).

    Raises:
        TfbertError: the model has no transformers class (a classifier with "mean" or "cls" pooling).
    """
    if isinstance(model, BertClassifier):
        config, state, architecture = _classifier_checkpoint(model)
    elif isinstance(model, BertTokenClassifier):
        config, state, architecture = _token_classifier_checkpoint(model)
    elif isinstance(model, BertQuestionAnswerer):
        config, state, architecture = _question_answerer_checkpoint(model)
    else:
        raise TfbertError(f"save_transformers takes a model from tfbert.build_classifier, build_token_classifier or "
                          f"build_question_answerer; received {type(model).__name__}.")
    card = {"command": made_by("tfbert.save_transformers", folder=str(folder)), **(card or {})}
    return write_checkpoint(folder, config, model.tokenizer, state, [architecture],
                            base_model=getattr(model, "checkpoint_name", None), card=card)
