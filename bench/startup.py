"""How long the CLI takes to say yes or no, from a cold start (a fresh process each time): ``dctoon
--version``, a missing input, an existing ``-o``, a text file named .jpg, and one 512 px photo
stylized. Wall time of the whole process, median and range of ``--runs`` runs, as a Markdown table.

    python bench/startup.py [--runs 5] [--photo ../shared/media/images/portrait-512.jpg]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_line  # bench/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "media" / "images" / "portrait-512.jpg"


def timed(args: list[str], cwd: Path, expect: int) -> float:
    """Seconds one fresh ``dctoon`` process takes; its exit code must be ``expect``."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dctoon", *args], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != expect:
        raise SystemExit(f"dctoon {' '.join(args)}: exit {done.returncode}, expected {expect}: {done.stderr[-500:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--photo", type=Path, default=PHOTO)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dctoon-startup-"))
    os.environ["DCTOON_HOME"] = str(work / "home")
    taken = work / "taken.png"
    taken.write_bytes(b"")
    text = work / "notes.jpg"
    text.write_text("a text file, not a picture\n")
    photo = str(a.photo)
    cases = [("`dctoon --version`", lambda i: ["--version"], 0),
             ("missing input: `dctoon image nothere.jpg`", lambda i: ["image", "nothere.jpg"], 2),
             ("existing `-o`: `dctoon image PHOTO -o taken.png`", lambda i: ["image", photo, "-o", str(taken)], 2),
             ("not an image: `dctoon image notes.jpg` (a text file)", lambda i: ["image", str(text)], 2),
             ("`dctoon image` of a 512 px photo", lambda i: ["image", photo, "-o", str(work / f"out{i}.png")], 0)]
    try:
        print(f"{cpu_line()}; load average {os.getloadavg()[0]:.1f} at the start\n")
        print("| command | median s | min-max s |\n|---|---:|---:|")
        for label, args, expect in cases:
            times = [timed(args(i), work, expect) for i in range(a.runs)]
            print(f"| {label} | {statistics.median(times):.2f} | {min(times):.2f}-{max(times):.2f} |", flush=True)
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
