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


class ResourceError(DctoonError):
    """The machine ran out of something (threads, memory, disk space, open files): never the input's fault."""


# what each resource's exhaustion looks like, from Python, the OS or a library (onnxruntime, OpenVINO, FFmpeg)
_EXHAUSTED = (
    ("memory", ("ENOMEM",), ("Cannot allocate memory", "bad_alloc", "out of memory", "Out of memory",
                            "failed to map segment", "Failed to allocate memory"),
     "free some memory, or use a smaller --max-side"),
    ("threads", ("EAGAIN",), ("can't start new thread", "pthread_create", "Resource temporarily unavailable"),
     "too many threads or processes are running: close some, or use fewer --threads"),
    ("disk space", ("ENOSPC", "EDQUOT"), ("No space left on device", "Disk quota exceeded"),
     "free some space and try again"),
    ("open files", ("EMFILE", "ENFILE"), ("Too many open files",), "close other programs or raise `ulimit -n`"),
)


def exhausted(e: BaseException) -> ResourceError | None:
    """``e`` as a one-line :class:`ResourceError` when it says the machine ran out of threads, memory,
    disk space or open files, else None; so that a failure to start a thread is not called a corrupt
    video, nor a failed allocation a damaged model."""
    import errno

    code = getattr(e, "errno", None)
    text = str(e)
    for what, codes, signs, advice in _EXHAUSTED:
        by_type = what == "memory" and isinstance(e, MemoryError)
        by_code = code is not None and code in {getattr(errno, c) for c in codes}
        sign = next((s for s in signs if s in text), None)  # a library's long message: the words that tell
        if by_type or by_code or sign:
            detail = sign or (text.splitlines() or [""])[0][:120] or type(e).__name__
            return ResourceError(f"this machine ran out of {what} ({detail}): {advice}")
    return None
