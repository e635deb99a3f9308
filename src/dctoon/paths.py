"""Where dctoon keeps what it downloads or converts: ``$DCTOON_HOME`` (default ``~/.cache/dctoon``)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("DCTOON_HOME") or Path.home() / ".cache" / "dctoon")


def styles_dir() -> Path:
    """Downloaded and imported styles, one folder each."""
    return home() / "styles"


def models_dir() -> Path:
    """Helper models (person segmentation), converted to ONNX."""
    return home() / "models"


def downloads_dir() -> Path:
    """Partial downloads (``*.part``), kept between runs so that a download can resume."""
    return home() / "downloads"


def engines_dir() -> Path:
    """TensorRT engines built for the style models (``--device tensorrt``), one per model and size."""
    return home() / "tensorrt"
