"""The error tfbert raises for user mistakes, and the argument checks that raise it.

The CLI prints a `TfbertError`'s message on one line, without a traceback, so every message names
the argument, shows what was received and says what is valid.
"""


class TfbertError(ValueError):
    """A mistake in what the user passed (a model, a file, an argument), with how to fix it."""


def check_positive_int(name, value, meaning="", allow_none=False):
    """Raises TfbertError unless `value` is an int >= 1 (bool is not an int here).

    Args:
        name: str. The argument's name, as the user wrote it.
        value: the value received.
        meaning: str. What the number counts, shown in brackets, e.g. "TF Serving's version folders".
        allow_none: bool. None is valid too (e.g. "keep all"). Defaults to False.
    """
    if allow_none and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        about = f" ({meaning})" if meaning else ""
        none = ", or None" if allow_none else ""
        raise TfbertError(f"{name} must be a positive integer{about}{none}; received {name}={value!r}.")
    return value


def check_choice(name, value, choices):
    """Raises TfbertError unless `value` is one of `choices`."""
    if value not in choices:
        raise TfbertError(f"{name} must be one of {', '.join(map(repr, choices))}; received {name}={value!r}.")
    return value


def check_dropout(name, value):
    """Raises TfbertError unless `value` is a dropout rate: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise TfbertError(f"{name} must be a number in [0, 1) (the fraction of units dropped while training); "
                          f"received {name}={value!r}.")
    return value
