"""Loading an export: the one loader every consumer of a SavedModel uses, with one clear error for every failure.

Paths may be local or on any filesystem TensorFlow reads (gs://, hdfs://).
"""

import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the tokenizer's ops before an export's graph is read

from tfbert.errors import TfbertError
from tfbert.serving.versions import resolve_export


def load_export(path, signature=None, reusable=False):
    """Loads an export with `tf.saved_model.load`, turning every way it can fail into one clear error.

    Args:
        path: str. A version folder, or a model folder (its newest version); local or remote.
        signature: str. A signature the caller needs (e.g. "embed"). Defaults to None (no check).
        reusable: bool. Require a reusable encoder export (`__call__` and `trainable_variables`),
            as `SavedModelLayer` does. Defaults to False.

    Returns:
        (the loaded object, the resolved folder as a str).

    Raises:
        TfbertError: no SavedModel there, a corrupt or truncated one, or not the kind asked for.
    """
    folder = resolve_export(path)
    try:
        loaded = tf.saved_model.load(folder)
    except (OSError, ValueError, tf.errors.OpError) as e:
        # A truncated saved_model.pb fails as a protobuf DecodeError (a ValueError); missing variables
        # or an unknown op as tf.errors; an unreadable file as OSError. Keep the first line of the cause.
        cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TfbertError(f"cannot load the SavedModel in {folder}: it is corrupt or incomplete ({cause}). "
                          "Export it again.") from e
    if signature is not None and signature not in loaded.signatures:
        raise TfbertError(f"{folder} has no {signature!r} signature (it has {', '.join(sorted(loaded.signatures))}): "
                          "pass an encoder export (`tfbert export` writes serving_default, tokenize, encode_pair, "
                          "tokenize_pair and embed).")
    if reusable and not (callable(loaded) and hasattr(loaded, "trainable_variables")):
        raise TfbertError(f"{folder} is not a reusable encoder export (no __call__ or trainable_variables): export it "
                          "again with tfbert.export_saved_model / `tfbert export` from this version of tfbert.")
    return loaded, folder


class SavedModelEmbedder:
    """An export's `embed` signature: a callable list of str -> np.ndarray float32 [batch, hidden]; `.width` its size.

    Args:
        path: str. A version folder, or a model folder (its newest version, resolved once).
    """

    def __init__(self, path):
        loaded, self.folder = load_export(path, signature="embed")
        self._loaded = loaded  # the signature needs its object alive
        self.run = loaded.signatures["embed"]
        self.width = int(self.run.structured_outputs["sentence_embedding"].shape[-1])

    def __call__(self, texts):
        return self.run(text=tf.constant(texts, tf.string))["sentence_embedding"].numpy()
