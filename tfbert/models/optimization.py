"""The optimizer BERT fine-tunes and pre-trains with: AdamW, linear warm-up, then linear decay to 0.

transformers' `AdamWeightDecay` (tf_keras' legacy Adam with decoupled weight decay), with one change of
speed, not of math: the gradient of an embedding table (which `tf.gather` makes sparse, an
`IndexedSlices` of the rows a batch used) is applied densely. Adam decays both moments of every row at
every step whether the row was used or not, so Keras' sparse path rewrites the whole table anyway, in
about ten passes (scale m, scatter into m, the same for v, the square root, the division, the update,
each on [vocab_size, hidden_size]), and the scatters put the moments in TensorFlow's copy-on-read mode,
in which every read of them copies the table. The dense path is one `ResourceApplyAdam`, the same
update (a row the batch did not use has a zero gradient), as PyTorch's AdamW does for an `nn.Embedding`.
What it saves: benchmarks/README.md#the-optimizer-and-the-embedding-table.
"""

import tensorflow as tf
import tf_keras
from transformers import AdamWeightDecay as TransformersAdamWeightDecay
from transformers import create_optimizer as hf_create_optimizer

from tfbert.defaults import FINETUNE_LEARNING_RATE
from tfbert.errors import check_positive_int

DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_WEIGHT_DECAY = 0.01
NOT_DECAYED = ["LayerNorm", "layer_norm", "bias"]  # transformers' create_optimizer's exclusions
HF_EPSILON = 1e-8  # transformers' create_optimizer's adam_epsilon


@tf_keras.saving.register_keras_serializable(package="tfbert")
class AdamWeightDecay(TransformersAdamWeightDecay):
    """transformers' `AdamWeightDecay`, applying sparse gradients (embedding tables) densely; see the
    module docstring. Same arguments and config as transformers'."""

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
        rows = handle.shape[0] if handle.shape[0] is not None else tf.shape(handle, out_type=indices.dtype)[0]
        return self._resource_apply_dense(tf.math.unsorted_segment_sum(grad, indices, rows), handle, **kwargs)


def create_optimizer(train_steps=None, learning_rate=FINETUNE_LEARNING_RATE, warmup_fraction=DEFAULT_WARMUP_FRACTION,
                     weight_decay=DEFAULT_WEIGHT_DECAY):
    """AdamW for BERT: linear warm-up over `warmup_fraction` of the steps, then linear decay to 0.

    transformers' `create_optimizer` (`AdamWeightDecay`; LayerNorm weights and biases are not decayed),
    as in the original BERT recipe, with tfbert's `AdamWeightDecay` (dense updates of embedding tables).

    Args:
        train_steps: int. Total steps. None: constant learning rate, no warm-up (the same optimizer
            otherwise: epsilon, weight decay and its exclusions).
        learning_rate: float. Peak learning rate. Defaults to 1e-4 (tfbert.defaults.FINETUNE_LEARNING_RATE).
        warmup_fraction: float. Share of the steps spent warming up. Defaults to 0.1.
        weight_decay: float. Decoupled weight decay rate. Defaults to 0.01.
    """
    rate = learning_rate
    if train_steps is not None:
        check_positive_int("train_steps", train_steps, "epochs x steps per epoch")
        _, rate = hf_create_optimizer(init_lr=learning_rate, num_train_steps=train_steps,
                                      num_warmup_steps=int(round(warmup_fraction * train_steps)),
                                      weight_decay_rate=weight_decay)
    return AdamWeightDecay(learning_rate=rate, weight_decay_rate=weight_decay, epsilon=HF_EPSILON,
                           exclude_from_weight_decay=NOT_DECAYED)
