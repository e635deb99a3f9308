"""One line about the CPU for every speed table: model, cores and the vector flags that decide
which kernels run (a bf16 or AMX figure means nothing on an AVX2-only machine)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_line() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags] or ["flags unknown"]
    return f"{model}, {os.cpu_count()} cores, {' '.join(have)}"


if __name__ == "__main__":
    print(cpu_line())
