"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class DctoonError(Exception):
    """A problem with the user's input or setup, explained in one line."""


class ModelError(DctoonError):
    """A model file or style folder that cannot be used."""


class InputError(DctoonError):
    """An image or video that cannot be read or processed."""
