"""tfbert: BERT as a first-class TensorFlow citizen (raw strings in, hidden states out, in one graph).

The public names load lazily, so that `import tfbert.cli` can configure TensorFlow's logging before
TensorFlow is imported.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BertTokenizerLayer": "tfbert.tokenizer",
    "TfbertError": "tfbert.errors",
    "build_encoder": "tfbert.encoder",
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
