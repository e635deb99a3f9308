"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class DctoonError(Exception):
    """A problem with the user's input or setup, explained in one line."""


class ModelError(DctoonError):
    """A model file or style folder that cannot be used."""


class InputError(DctoonError):
    """An image or video that cannot be read or processed."""


class Interrupted(DctoonError, KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a video: ``result`` is the partial video kept with ``keep_partial``
    (None when nothing was kept). Still a ``KeyboardInterrupt``, so code that stops on one stops."""

    def __init__(self, result=None):
        super().__init__("interrupted")
        self.result = result


def describe_range(low=None, high=None) -> str:
    """'between 1 and 1,024', 'at least 0' or 'at most 9': as errors and ``--help`` say it."""
    def num(v) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:g}"
    if low is not None and high is not None:
        return f"between {num(low)} and {num(high)}"
    return f"at least {num(low)}" if low is not None else f"at most {num(high)}"


def check_range(name: str, value, low=None, high=None) -> None:
    """An option outside [low, high] (either end open when None; NaN always outside) as the one
    line the CLI prints: checked before any model loads or work starts."""
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{name} must be {describe_range(low, high)}, got {value}")
