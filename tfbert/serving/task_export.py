"""`build_task_module`: a Hugging Face task checkpoint as a task export, strings in, answers out.

The task comes from config.json's `architectures` (`tfbert.models.tasks`) unless `task` names it;
each task's options are those of its transformers pipeline, with the pipeline's defaults.
"""

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.defaults import QA_MAX_LENGTH
from tfbert.errors import TfbertError
from tfbert.models.precision import policy_scope
from tfbert.models.tasks import checkpoint_task, load_task_model
from tfbert.serving.fill_mask import FillMaskModule
from tfbert.serving.question_answering import QuestionAnsweringModule
from tfbert.serving.text_classification import TextClassificationModule
from tfbert.serving.token_classification import TokenClassificationModule

TASK_MODULES = {
    "question-answering": QuestionAnsweringModule,
    "token-classification": TokenClassificationModule,
    "fill-mask": FillMaskModule,
    "text-classification": TextClassificationModule,
}


def build_task_module(model=None, task=None, max_length=None, allow_pickle=False, **options):
    """The export module of a task checkpoint.

    Args:
        model: str. Preset name, local Hugging Face folder or hub id. Defaults to the default preset.
        task: str. "question-answering", "token-classification", "fill-mask" or "text-classification".
            Defaults to the task of the checkpoint's `architectures`.
        max_length: int. Longest tokenized input (a window, for question answering). Defaults to the
            pipeline's: 384 for question answering (at most the checkpoint's), else the checkpoint's
            max_position_embeddings.
        allow_pickle: bool. Accept a `pytorch_model.bin` checkpoint. Defaults to False.
        **options: the task's options, as its module documents (top_k, doc_stride, aggregation_strategy...).

    Returns:
        A `TaskModule` to pass to `tfbert.export_saved_model`.

    Raises:
        TfbertError: the checkpoint has no head for the task, or an option is invalid.
    """
    checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
    task = task or checkpoint_task(checkpoint)
    if task == "encoder":
        raise TfbertError(
            f"{checkpoint.folder} is not a task checkpoint (config.json architectures: {checkpoint.config.architectures}); "
            "export it as an encoder (tfbert export without --task), or name the task with --task.")
    if task not in TASK_MODULES:
        raise TfbertError(f"task must be one of {', '.join(TASK_MODULES)}; received task={task!r}.")
    if max_length is None and task == "question-answering":
        max_length = min(QA_MAX_LENGTH, checkpoint.max_length)
    tokenizer = checkpoint.build_tokenizer(max_length)
    with policy_scope("float32"):  # a global mixed-precision policy does not decide the export's precision
        model = load_task_model(checkpoint, task)
    module = TASK_MODULES[task](tokenizer, model, **options)
    module.checkpoint_name = checkpoint.name
    return module
