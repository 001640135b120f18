"""Distribution strategies for fine-tuning: one process, this machine's devices, or several workers."""

import os

import tensorflow as tf
import tf_keras

from tfbert.defaults import STRATEGIES
from tfbert.errors import TfbertError


def make_strategy(name="default"):
    """A tf.distribute strategy: "default" (one process), "mirrored" (this machine's devices) or
    "multi-worker" (MultiWorkerMirroredStrategy across the processes named in TF_CONFIG)."""
    if name not in STRATEGIES:
        raise TfbertError(f"strategy must be one of {', '.join(STRATEGIES)}; received {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise TfbertError("--strategy multi-worker needs TF_CONFIG (the cluster's workers and this process's index); "
                              "see the README's 'Training on several machines'.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run's files: the chief, or worker 0 of a cluster without a chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (resolver.task_type == "worker" and resolver.task_id == 0
                                                    and "chief" not in resolver.cluster_spec().as_dict())


def seeded_strategy(seed, strategy="default"):
    """Seeds Keras (weights of new heads, dropout, shuffling) and makes the strategy; returns (strategy,
    whether this process is the chief). `strategy` is a name of `make_strategy` or a tf.distribute strategy."""
    tf_keras.utils.set_random_seed(seed)
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    return strategy, is_chief(strategy)
