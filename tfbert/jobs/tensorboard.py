"""TensorBoard logs of a training run: every epoch's metrics and learning rate, and the run's hyper-parameters.

    <logdir>/train/        epoch_loss, epoch_<metric>, epoch_learning_rate, epoch_train_seconds
    <logdir>/validation/   epoch_loss, epoch_<metric> on dev (the `val_` logs, prefix dropped)
    <logdir>/              the hyper-parameters, for TensorBoard's HParams dashboard

The scalars are Keras' `TensorBoard` callback's (tf_keras), at step = epoch index (0-based); the
hyper-parameters are written with TensorBoard's `hparams` summary (its `KerasCallback` is a Keras 3
callback, which tf_keras' `fit` does not run). Look at them with `tensorboard --logdir <logdir>`.
"""

import pathlib

import tensorflow as tf
import tf_keras
from tensorboard.plugins.hparams import api as hparams_api

LOGS_FOLDER = "logs"  # the default logdir, inside a run's folder


def _hparam_value(value):
    """A value the HParams plugin takes (bool, int, float or str)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def write_hparams(logdir, hparams):
    """Writes the run's hyper-parameters (a dict of str to scalars, None or lists) as an HParams summary."""
    pathlib.Path(logdir).mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hparams_api.hparams({name: _hparam_value(value) for name, value in sorted(hparams.items())})
    writer.close()


def tensorboard_callback(logdir, hparams):
    """Writes the hyper-parameters now and returns the Keras callback that logs each epoch to `logdir`.

    Args:
        logdir: path. Where the logs go (see the module docstring).
        hparams: dict. The run's settings, shown in TensorBoard's HParams dashboard.

    Returns:
        tf_keras.callbacks.TensorBoard: epoch scalars only (no graph, no profile, no per-batch writes).
    """
    write_hparams(logdir, hparams)
    return tf_keras.callbacks.TensorBoard(str(logdir), write_graph=False, profile_batch=0, update_freq="epoch")


def write_scalars(logdir, run, step, values):
    """Writes scalars beside the callback's (e.g. held-out metrics after training): logdir/run, `epoch_<name>`."""
    writer = tf.summary.create_file_writer(str(pathlib.Path(logdir) / run))
    with writer.as_default():
        for name, value in values.items():
            tf.summary.scalar(f"epoch_{name}", value, step=step)
    writer.close()
