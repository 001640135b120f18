"""The optimizer BERT fine-tunes and pre-trains with: AdamW, linear warm-up, then linear decay to 0."""

from transformers import AdamWeightDecay
from transformers import create_optimizer as hf_create_optimizer

from tfbert.defaults import FINETUNE_LEARNING_RATE
from tfbert.errors import check_positive_int

DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_WEIGHT_DECAY = 0.01


def create_optimizer(train_steps=None, learning_rate=FINETUNE_LEARNING_RATE, warmup_fraction=DEFAULT_WARMUP_FRACTION,
                     weight_decay=DEFAULT_WEIGHT_DECAY):
    """AdamW for BERT: linear warm-up over `warmup_fraction` of the steps, then linear decay to 0.

    transformers' `create_optimizer` (`AdamWeightDecay`; LayerNorm weights and biases are not decayed),
    as in the original BERT recipe.

    Args:
        train_steps: int. Total steps. None: constant learning rate, no warm-up.
        learning_rate: float. Peak learning rate. Defaults to 1e-4 (tfbert.defaults.FINETUNE_LEARNING_RATE).
        warmup_fraction: float. Share of the steps spent warming up. Defaults to 0.1.
        weight_decay: float. Decoupled weight decay rate. Defaults to 0.01.
    """
    if train_steps is None:
        return AdamWeightDecay(learning_rate=learning_rate, weight_decay_rate=weight_decay, epsilon=1e-6,
                               exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
    check_positive_int("train_steps", train_steps, "epochs x steps per epoch")
    optimizer, _ = hf_create_optimizer(init_lr=learning_rate, num_train_steps=train_steps,
                                       num_warmup_steps=int(round(warmup_fraction * train_steps)),
                                       weight_decay_rate=weight_decay)
    return optimizer
