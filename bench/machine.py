"""One line about the CPU for every speed table (``dctoon.cpu.cpu_line``, the one `dctoon doctor` prints):
model, cores and the vector flags that decide which kernels run."""

from __future__ import annotations

from dctoon.cpu import cpu_line

__all__ = ["cpu_line"]

if __name__ == "__main__":
    print(cpu_line())
