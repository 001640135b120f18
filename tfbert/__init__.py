"""tfbert: BERT as a first-class TensorFlow citizen (raw strings in, hidden states out, in one graph).

The package draws the chain: text (the in-graph tokenizer) -> checkpoints (Hugging Face folders) ->
models (Keras models on raw strings) -> serving (exports for TF Serving) -> jobs (fine-tuning,
pre-training, embedding corpora) -> cli. Each imports only from those before it.

The public names load lazily, so that `import tfbert.cli` can configure TensorFlow's logging before
TensorFlow is imported.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BertTokenizerLayer": "tfbert.text.tokenizer",
    "BertBackbone": "tfbert.models.backbone",
    "BertEncoder": "tfbert.models.encoder",
    "build_encoder": "tfbert.models.encoder",
    "Pooling": "tfbert.models.pooling",
    "embed": "tfbert.models.embedding",
    "BertClassifier": "tfbert.models.classifier",
    "build_classifier": "tfbert.models.classifier",
    "load_classifier": "tfbert.models.classifier",
    "save_classifier": "tfbert.models.classifier",
    "create_optimizer": "tfbert.models.optimization",
    "BertTokenClassifier": "tfbert.models.token_classifier",
    "build_token_classifier": "tfbert.models.token_classifier",
    "BertQuestionAnswerer": "tfbert.models.question_answerer",
    "build_question_answerer": "tfbert.models.question_answerer",
    "save_transformers": "tfbert.models.transformers_layout",
    "BertPretrainer": "tfbert.models.pretrainer",
    "build_pretrainer": "tfbert.models.pretrainer",
    "add_tokens": "tfbert.models.surgery",
    "prune_heads": "tfbert.models.surgery",
    "export_saved_model": "tfbert.serving.export",
    "build_task_module": "tfbert.serving.task_export",
    "prune_versions": "tfbert.serving.versions",
    "check_serving": "tfbert.serving.op_check",
    "update_models_config": "tfbert.serving.models_config",
    "SavedModelLayer": "tfbert.serving.saved_model_layer",
    "read_examples": "tfbert.jobs.examples",
    "make_dataset": "tfbert.jobs.batching",
    "finetune": "tfbert.jobs.finetune",
    "read_tagged": "tfbert.jobs.tagged_text",
    "tagging_features": "tfbert.jobs.tagging",
    "tagging_dataset": "tfbert.jobs.tagging",
    "predict_tags": "tfbert.jobs.tagging",
    "score_entities": "tfbert.jobs.entity_scores",
    "read_squad": "tfbert.jobs.squad",
    "squad_scores": "tfbert.jobs.squad_metrics",
    "qa_windows": "tfbert.jobs.qa_features",
    "qa_dataset": "tfbert.jobs.qa_features",
    "pretrain": "tfbert.jobs.pretrain",
    "TfbertError": "tfbert.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfbert' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
