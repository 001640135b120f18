"""Hugging Face task checkpoints: which task a folder's `architectures` names, and its model with the head.

    BertForQuestionAnswering         -> question-answering    (TFBertForQuestionAnswering)
    BertForTokenClassification       -> token-classification  (TFBertForTokenClassification)
    BertForSequenceClassification    -> text-classification   (TFBertForSequenceClassification)
    BertForMaskedLM, BertForPreTraining -> fill-mask          (TFBertForMaskedLM: the MLM head)
    anything else (BertModel, ...)   -> encoder

The weights load without torch (`tfbert.models.weights.load_weights`); a head the checkpoint lacks is
an error, never a random layer.
"""

from transformers import (TFBertForMaskedLM, TFBertForQuestionAnswering, TFBertForSequenceClassification,
                          TFBertForTokenClassification)

from tfbert.errors import TfbertError, check_choice
from tfbert.defaults import EXPORT_TASKS
from tfbert.models.weights import load_weights

ARCHITECTURE_TASKS = {
    "BertForQuestionAnswering": "question-answering",
    "BertForTokenClassification": "token-classification",
    "BertForSequenceClassification": "text-classification",
    "BertForMaskedLM": "fill-mask",
    "BertForPreTraining": "fill-mask",
}
TASK_MODELS = {
    "question-answering": TFBertForQuestionAnswering,
    "token-classification": TFBertForTokenClassification,
    "text-classification": TFBertForSequenceClassification,
    "fill-mask": TFBertForMaskedLM,
}
# The head's weights under PyTorch names: a checkpoint without them has no head to serve.
HEAD_WEIGHTS = {
    "question-answering": "qa_outputs.",
    "token-classification": "classifier.",
    "text-classification": "classifier.",
    "fill-mask": "cls.predictions.",
}


def checkpoint_task(checkpoint):
    """The task a checkpoint was saved for, from config.json's `architectures` ("encoder" when none)."""
    for architecture in checkpoint.config.architectures or []:
        if architecture in ARCHITECTURE_TASKS:
            return ARCHITECTURE_TASKS[architecture]
    return "encoder"


def load_task_model(checkpoint, task, name="bert_task"):
    """The transformers TensorFlow model of `task` with the checkpoint's weights, head included.

    Raises:
        TfbertError: the task is unknown or "encoder", or the checkpoint has no weights for its head.
    """
    check_choice("task", task, EXPORT_TASKS)
    if task == "encoder":
        raise TfbertError("the encoder has no task head; build it with tfbert.build_encoder.")
    model, missing = load_weights(TASK_MODELS[task], checkpoint, name, optional=("pooler", HEAD_WEIGHTS[task]))
    head = [k for k in missing if HEAD_WEIGHTS[task] in k and "decoder.weight" not in k]
    if head:
        saved_for = checkpoint_task(checkpoint)
        raise TfbertError(
            f"{checkpoint.folder} has no {task} head (missing {head[0]}); its config.json names "
            f"{checkpoint.config.architectures or 'no architectures'} ({saved_for}). Export it with --task {saved_for}, "
            f"or fine-tune a {task} head first.")
    return model
