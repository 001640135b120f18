"""`fit`, `evaluate` and `predict` on tf.data datasets without waiting for tf.data's autotuning thread.

With TensorFlow 2.21 (tf_keras 2.21), deleting a dataset's iterator waits until tf.data's autotuning
thread next wakes up, and that thread sleeps for a period that doubles from 10 ms up to a minute
while the iterator lives. Keras deletes an iterator at the end of every epoch of `fit`, of every
validation pass, of `evaluate` and of `predict`, so the longer the epoch, the longer the wait: on a
2-core Xeon, Keras' `fit` of the default checkpoint's classifier on `Dataset.from_tensor_slices(...)
.batch(32)` waited 39 s between two 40-second epochs (benchmarks/README.md#time-outside-the-steps).
With `tf.data.Options().autotune.enabled = False` there is no wait.

`without_autotune_wait(dataset)` turns autotuning off for a dataset that leaves it unset (the default),
and tfbert's models (`AutotuneFree`) do so for the datasets given to `fit`, `evaluate` and `predict`.
What autotuning would have tuned keeps TensorFlow's defaults: a parallel `map` with
`num_parallel_calls=AUTOTUNE` runs as many calls as there are cores, and `prefetch(AUTOTUNE)` sizes its
buffer itself. A dataset that sets `autotune.enabled` keeps its setting.
"""

import inspect

import tensorflow as tf
import tf_keras


def without_autotune_wait(data):
    """`data` with tf.data autotuning off when it is a `tf.data.Dataset` that leaves it unset; else `data`."""
    if isinstance(data, tf.data.Dataset) and data.options().autotune.enabled is None:
        options = tf.data.Options()
        options.autotune.enabled = False
        return data.with_options(options)
    return data


def _with_datasets(method, names):
    signature = inspect.signature(getattr(tf_keras.Model, method))

    def call(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        for name in names:
            if name in bound.arguments:
                bound.arguments[name] = without_autotune_wait(bound.arguments[name])
        return getattr(super(AutotuneFree, self), method)(*bound.args[1:], **bound.kwargs)

    call.__name__ = method
    call.__doc__ = f"`tf_keras.Model.{method}`; datasets among {', '.join(names)} go through `without_autotune_wait`."
    return call


class AutotuneFree:
    """Mixin for tf_keras models: `fit` (x, validation_data), `evaluate` and `predict` (x) take their
    tf.data datasets through `without_autotune_wait` (see the module docstring)."""

    fit = _with_datasets("fit", ("x", "validation_data"))
    evaluate = _with_datasets("evaluate", ("x",))
    predict = _with_datasets("predict", ("x",))
