"""Finding and loading an export: one version scanner and one loader for every consumer of a SavedModel.

Paths may be local or on any filesystem TensorFlow reads (gs://, hdfs://), so they are handled as
strings with `tf.io.gfile`, never as `pathlib` paths (which would turn "gs://b" into "gs:/b").
"""

import pathlib
import posixpath

import tensorflow as tf

from tfbert.errors import TfbertError

SAVED_MODEL_FILE = "saved_model.pb"


def existing_versions(path):
    """The numeric version folders under path (TF Serving's layout), ascending; [] if there are none."""
    path = str(path).rstrip("/") or "/"
    if not tf.io.gfile.isdir(path):
        return []
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
    return sorted(int(name) for name in names if name.isdigit() and tf.io.gfile.isdir(posixpath.join(path, name)))


def resolve_export(path):
    """The SavedModel folder at path, as a str: path itself if it holds saved_model.pb, else its highest
    numeric version folder (TF Serving's layout).

    Raises:
        TfbertError: path is neither.
    """
    path = str(path).rstrip("/") or "/"
    if tf.io.gfile.exists(posixpath.join(path, SAVED_MODEL_FILE)):
        return path
    versions = existing_versions(path)
    if not versions:
        raise TfbertError(f"{path} is neither a SavedModel folder nor a folder of numeric versions holding one.")
    return posixpath.join(path, str(versions[-1]))


def latest_version(path):
    """`resolve_export` for a local path, as a pathlib.Path."""
    return pathlib.Path(resolve_export(path))


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
    import tensorflow_text  # noqa: F401 - registers the tokenizer's ops before the graph is read

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
