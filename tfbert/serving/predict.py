"""`predict`: run an export's default signature on texts and return one plain row a text, as a user
checks a model before deploying it (`tfbert predict`).

Rows hold Python values: strings decoded from UTF-8, arrays as nested lists. Outputs padded to the
batch's most entities or masks are cut to the text's own count (`num_entities`, `num_masks`).
"""

import numpy as np
import tensorflow as tf

from tfbert.errors import TfbertError
from tfbert.serving.loading import load_export

COUNTS = ("num_entities", "num_masks")  # outputs that say how many entries of the others are real


def predict(saved_model, texts, pairs=None, signature="serving_default"):
    """Runs `signature` of an export on texts (and second texts).

    Args:
        saved_model: str. A version folder, or a model folder (its newest version).
        texts: list of str. The signature's first input (text, or question for question answering).
        pairs: list of str. Its second input (text_pair, or context), one a text. Defaults to None.
        signature: str. Defaults to "serving_default".

    Returns:
        (list of dict: one row of outputs a text, the resolved folder).

    Raises:
        TfbertError: the export's signature takes another number of inputs, or the counts differ.
    """
    loaded, folder = load_export(saved_model, signature=signature)
    function = loaded.signatures[signature]
    order = _input_order(sorted(function.structured_input_signature[1]))
    given = [texts] if pairs is None else [texts, pairs]
    if len(order) != len(given):
        wanted = " and ".join(order)
        raise TfbertError(f"{folder}'s {signature} signature takes {wanted}; pass "
                          + ("one TEXT (no --pair)." if len(order) == 1 else "TEXT and --pair TEXT for each text."))
    if pairs is not None and len(pairs) != len(texts):
        raise TfbertError(f"got {len(texts)} texts and {len(pairs)} --pair texts; give one --pair a text.")
    outputs = function(**{name: tf.constant(values, tf.string) for name, values in zip(order, given)})
    outputs = {name: value.numpy() for name, value in outputs.items()}
    return [_row(outputs, i) for i in range(len(texts))], folder


def _input_order(names):
    """The signature's inputs in reading order: text before text_pair, question before context."""
    first = [n for n in ("text", "question") if n in names]
    return first + [n for n in names if n not in first]


def _row(outputs, i):
    count = next((int(outputs[name][i]) for name in COUNTS if name in outputs), None)
    row = {}
    for name, value in outputs.items():
        value = value[i]
        if count is not None and name not in COUNTS:
            value = value[:count]
        row[name] = _plain(value)
    return row


def _plain(value):
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value] if value.dtype == object else value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.item() if isinstance(value, np.generic) else value
