"""Shared fixtures: ../shared beside the checkout holds real photos, videos and reference weights."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "models" / "reference"
IMAGES = SHARED / "media" / "images"
VIDEOS = SHARED / "media" / "videos"
FP16 = REFERENCE / "whitebox_cartoon_gan_fp16.tflite"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (real test data) is not beside the checkout")
    return path


def run(args, capsys) -> tuple[int, str, str]:
    """The CLI in-process: exit code, stdout, stderr."""
    from dctoon.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """stderr holds exactly one 'dctoon: error:' line and no traceback; returns it."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dctoon: error:"), err
    return lines[0]


@pytest.fixture(scope="session")
def fp16_model() -> Path:
    return need(FP16)


@pytest.fixture(scope="session")
def shared_images() -> list[Path]:
    return sorted(need(IMAGES).glob("*.jpg"))
