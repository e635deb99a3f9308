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
