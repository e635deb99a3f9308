"""dctoon: portrait photo and video cartoonization built on DCT-Net, run by ONNX Runtime.

    import dctoon
    cartoonizer = dctoon.load("anime")          # a style name or a model file/folder
    cartoon = cartoonizer.stylize(rgb_array)    # uint8 RGB(A) in, same layout out
"""

from .errors import DctoonError, InputError, ModelError
from .images import read_image, write_image
from .pipeline import Cartoonizer, Settings, load
from .styles import Style, installed, resolve

__version__ = "0.1.0"

__all__ = ["Cartoonizer", "DctoonError", "InputError", "ModelError", "Settings", "Style", "installed",
           "load", "read_image", "resolve", "write_image", "__version__"]
