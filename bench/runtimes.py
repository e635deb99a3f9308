"""One official DCT-Net network in each runtime and ONNX Runtime setting: what a frame costs.

    python bench/runtimes.py [--style ../shared/models/official/dctnet_anime.tflite] [--repeat 5]

Rows, fp32 unless said, on every core, the same weights:
- TensorFlow: the official frozen-graph layout in a TF1 session (``bench/reference.py``'s graphs);
- LiteRT with XNNPACK: the ``.tflite`` file itself (fixed at 288x288: larger sizes are tried and
  reported when the delegate refuses them);
- ONNX Runtime as dctoon runs it (``dctoon.runtime.session``), then one knob changed at a time:
  the memory arena off, graph optimisation at "extended" (no NCHWc layout transform), worker
  spinning off, and IO binding (input and output buffers bound once, reused every run);
- OpenVINO on the CPU, fp32 and bf16 (what ``--device openvino`` runs where the CPU has bf16).

Each cell is the best of ``--repeat`` runs after one warm-up, on a random 0-255 image. The table
goes to bench/RESULTS.md by hand, with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import OFFICIAL  # noqa: E402

SIZES = [(288, 288), (720, 1280)]


def best_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def ort_runs(onnx: bytes, x: np.ndarray, repeat: int) -> dict[str, float]:
    import onnxruntime as ort

    from dctoon.runtime import session

    def tuned(**change) -> ort.InferenceSession:
        o = ort.SessionOptions()
        o.log_severity_level = 3
        o.graph_optimization_level = change.get("level", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        o.enable_cpu_mem_arena = change.get("arena", True)
        if "spinning" in change:
            o.add_session_config_entry("session.intra_op.allow_spinning", change["spinning"])
        return ort.InferenceSession(onnx, sess_options=o, providers=["CPUExecutionProvider"])

    base = session(onnx)
    name = base.get_inputs()[0].name
    rows = {"ONNX Runtime, as dctoon runs it": best_ms(lambda: base.run(None, {name: x}), repeat)}
    for label, change in (("arena off", {"arena": False}),
                          ("optimisation 'extended'", {"level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}),
                          ("spinning off", {"spinning": "0"})):
        s = tuned(**change)
        rows[f"ONNX Runtime, {label}"] = best_ms(lambda s=s: s.run(None, {name: x}), repeat)
    binding = base.io_binding()
    binding.bind_cpu_input(name, x)
    binding.bind_output(base.get_outputs()[0].name, "cpu")
    base.run_with_iobinding(binding)
    rows["ONNX Runtime, IO binding"] = best_ms(lambda: base.run_with_iobinding(binding), repeat)
    return rows


def openvino_runs(onnx: bytes, x: np.ndarray, repeat: int) -> dict[str, float]:
    """OpenVINO on the CPU: the whole graph in fp32 and in bf16, and as ``--device openvino`` runs it
    (the U-Net in bf16 where the CPU has it, the guided filter in fp32)."""
    import openvino as ov

    from dctoon.network import INPUT_NAME
    from dctoon.runtime import OpenVINOSession

    core = ov.Core()
    rows = {}
    for precision in ("f32", "bf16"):
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        request = core.compile_model(core.read_model(onnx), "CPU", config).create_infer_request()
        rows[f"OpenVINO {precision}, the whole graph"] = best_ms(lambda r=request: r.infer({0: x}), repeat)
    dctoon = OpenVINOSession(onnx)
    rows[f"OpenVINO as dctoon runs it ({dctoon.precision} U-Net, f32 guided filter)"] = best_ms(
        lambda: dctoon.run(None, {INPUT_NAME: x}), repeat)
    return rows


def litert_ms(path: Path, x: np.ndarray, repeat: int) -> float | str:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=os.cpu_count())
    d = it.get_input_details()[0]
    try:
        if tuple(d["shape"][-3:-1]) != x.shape[1:3]:
            it.resize_tensor_input(d["index"], list(x.shape[-(len(d["shape"])):]))
        it.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        return f"fails: {str(e).splitlines()[0][:56].rsplit(' ', 1)[0]} ..."
    sample = x.reshape(it.get_input_details()[0]["shape"])

    def run():
        it.set_tensor(d["index"], sample)
        it.invoke()

    return best_ms(run, repeat)


def main() -> None:
    from dctoon.importers import read_any
    from reference import OfficialGraphs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default=str(OFFICIAL / "dctnet_anime.tflite"), help="an official .tflite")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    path = Path(args.style)
    onnx = read_any(path).onnx().SerializeToString()
    graphs = OfficialGraphs(path)
    table: dict[str, dict[str, float | str]] = {}
    for h, w in SIZES:
        x = np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
        col = f"{w}x{h}"
        table.setdefault("TensorFlow (the official way)", {})[col] = best_ms(
            lambda x=x: graphs.run("model_bg", x[0]), args.repeat)
        table.setdefault("LiteRT XNNPACK (the .tflite)", {})[col] = litert_ms(path, x, args.repeat)
        for label, ms in (ort_runs(onnx, x, args.repeat) | openvino_runs(onnx, x, args.repeat)).items():
            table.setdefault(label, {})[col] = ms
    cols = [f"{w}x{h}" for h, w in SIZES]
    print(f"{path.name}, fp32, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"best of {args.repeat} (ms)\n")
    print("| runtime | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for label, row in table.items():
        cells = [row[c] if isinstance(row[c], str) else f"{row[c]:.0f}" for c in cols]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
