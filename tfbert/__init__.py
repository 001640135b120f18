"""tfbert: BERT as a first-class TensorFlow citizen (raw strings in, hidden states out, in one graph).

The public names load lazily, so that `import tfbert.cli` can configure TensorFlow's logging before
TensorFlow is imported.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BertBackbone": "tfbert.backbone",
    "BertClassifier": "tfbert.classifier",
    "BertTokenizerLayer": "tfbert.tokenizer",
    "build_classifier": "tfbert.classifier",
    "create_optimizer": "tfbert.classifier",
    "finetune": "tfbert.finetune",
    "load_classifier": "tfbert.classifier",
    "make_dataset": "tfbert.data",
    "read_examples": "tfbert.data",
    "save_classifier": "tfbert.classifier",
    "SavedModelLayer": "tfbert.saved_model_layer",
    "TfbertError": "tfbert.errors",
    "BertPretrainer": "tfbert.pretraining",
    "build_encoder": "tfbert.encoder",
    "embed": "tfbert.embedding",
    "build_pretrainer": "tfbert.pretraining",
    "pretrain": "tfbert.pretrain",
    "prune_heads": "tfbert.surgery",
    "add_tokens": "tfbert.surgery",
    "check_serving": "tfbert.serving",
    "export_saved_model": "tfbert.export",
    "prune_versions": "tfbert.export",
    "update_models_config": "tfbert.serving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfbert' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
