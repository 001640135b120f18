"""The error tfbert raises for user mistakes: the CLI prints its message on one line, no traceback."""


class TfbertError(ValueError):
    """A mistake in what the user passed (a model, a file, an argument), with how to fix it."""
