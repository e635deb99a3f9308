"""dctoon: portrait photo and video cartoonization built on DCT-Net, run by ONNX Runtime.

    import dctoon
    cartoonizer = dctoon.load("anime")          # a style name or a model file/folder
    cartoon = cartoonizer.stylize(rgb_array)    # uint8 RGB(A) in, same layout out
"""

from .errors import DctoonError, InputError, ModelError

__version__ = "0.1.0"

__all__ = ["Cartoonizer", "DctoonError", "InputError", "ModelError", "Settings", "Style", "installed",
           "load", "read_image", "resolve", "write_image", "__version__"]

_LAZY = {"Cartoonizer": "pipeline", "Settings": "pipeline", "load": "pipeline", "read_image": "images",
         "write_image": "images", "Style": "styles", "installed": "styles", "resolve": "styles"}


def __getattr__(name: str):
    """The API's heavy parts (NumPy, OpenCV, ONNX Runtime) load on first use, so that `dctoon --version`
    and the CLI's checks of arguments and paths answer before any of them is imported."""
    if name not in _LAZY:
        raise AttributeError(f"module 'dctoon' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
