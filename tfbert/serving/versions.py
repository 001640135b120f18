"""TF Serving's version folders (`base_dir/<version>/`): the one scanner every consumer uses, and pruning.

Paths may be local or on any filesystem TensorFlow reads (gs://, hdfs://), so they are handled as
strings with `tf.io.gfile`, never as `pathlib` paths (which would turn "gs://b" into "gs:/b").
"""

import logging
import os
import pathlib
import posixpath
import shutil
import tempfile

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfbert.errors import TfbertError, check_positive_int

logger = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"


def existing_versions(path):
    """The numeric version folders under path (TF Serving's layout), ascending; [] if there are none."""
    path = str(path).rstrip("/") or "/"
    if not tf.io.gfile.isdir(path):
        return []
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
    return sorted(int(name) for name in names if name.isdigit() and tf.io.gfile.isdir(posixpath.join(path, name)))


def read_saved_model(export_dir):
    """The `saved_model.pb` of a SavedModel folder, as a SavedModel protobuf.

    Raises:
        TfbertError: the file is missing, or is not a SavedModel protobuf.
    """
    path = posixpath.join(str(export_dir).rstrip("/") or "/", SAVED_MODEL_FILE)
    if not tf.io.gfile.exists(path):
        raise TfbertError(f"{path} is missing: pass a SavedModel version folder, "
                          "e.g. saved_models/minilm-l6-uncased/1.")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        return saved_model_pb2.SavedModel.FromString(data)
    except Exception as e:  # protobuf raises its own DecodeError, with no common base to name
        raise TfbertError(f"{path} is not a SavedModel protobuf: {e}") from e


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


def retire(base_dir, folder, replacement=None):
    """Removes a version folder so a watching server never sees it half-deleted: rename it aside (into a
    non-numeric folder, which TF Serving ignores), move `replacement` (a finished folder) into its
    place if given, then delete the old one."""
    base_dir, folder = pathlib.Path(base_dir), pathlib.Path(folder)
    retired = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".old-{folder.name}-"))
    os.rename(folder, retired / "old")
    if replacement is not None:
        os.rename(replacement, folder)
    shutil.rmtree(retired)


def prune_versions(base_dir, keep):
    """Deletes all but the `keep` highest numeric versions under base_dir; returns the versions deleted."""
    check_positive_int("keep", keep, "versions to keep")
    base_dir = pathlib.Path(base_dir)
    removed = existing_versions(base_dir)[:-keep]
    for version in removed:
        retire(base_dir, base_dir / str(version))
        logger.info("removed %s (keeping the %d newest versions)", base_dir / str(version), keep)
    return removed
