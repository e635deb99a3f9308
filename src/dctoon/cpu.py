"""The CPU this runs on: its model and the vector flags that decide which kernels run (a bf16 or
AMX figure means nothing on an AVX2-only machine). Read from /proc/cpuinfo, without importing any
runtime, so that ``--device auto``'s rule and every speed table can name the CPU cheaply."""

from __future__ import annotations

import os
from pathlib import Path

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # native bf16 arithmetic: what makes OpenVINO's bf16 fast


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str] | None]:
    """The CPU's model name and its flags (``None`` where the system does not list them: not Linux)."""
    import platform  # here: 47 ms to import on a loaded machine, and the CLI's parser imports this module

    model, flags = platform.processor() or platform.machine(), None
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":  # after the model name, and the same for every core
                flags = set(value.split())
                break
    except OSError:
        pass
    return model, flags


def cpu_line() -> str:
    """One line for a speed table or `dctoon doctor`: model, cores and the flags of :data:`FLAGS` present."""
    model, flags = cpu_info()
    have = [f for f in FLAGS if f in (flags or ())] or ["flags unknown" if flags is None else "no AVX2"]
    return f"{model}, {os.cpu_count()} cores, {' '.join(have)}"
