"""The TTN graph and the weight importers, checked on real weights against real runtimes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dctoon import network
from dctoon.errors import ModelError
from dctoon.importers import read_any, read_graphdef, read_tflite
from dctoon.model import TTN

from conftest import OFFICIAL, REFERENCE, need


def random_weights(seed: int = 0, channel: int = 8, blocks: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"{s.name}.{p}": (rng.normal(0, (2 / (s.cin * s.k * s.k)) ** 0.5, (s.cout, s.cin, s.k, s.k))
                              if p == "weight" else rng.normal(0, 0.05, s.cout)).astype(np.float32)
            for s in network.conv_specs(channel, blocks) for p in ("weight", "bias")}


def tflite_reference(path, bgr: np.ndarray) -> np.ndarray:
    """The TFLite interpreter's output, post-processed as the official graphs do (truncating cast)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    if len(inp["shape"]) == 3:  # the official DCT-Net files: one HxWx3 BGR 0-255 image, scaled inside
        it.set_tensor(inp["index"], bgr.astype(np.float32))
    else:  # White-box: a batch in [-1, 1]
        it.set_tensor(inp["index"], (bgr.astype(np.float32) / 127.5 - 1)[None])
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])[0]
    return np.clip((out + 1) * 127.5, 0, 255).astype(np.uint8)


def test_architecture_has_the_published_parameter_count():
    n = sum(s.cout * s.cin * s.k * s.k + s.cout for s in network.conv_specs())
    assert n == 1_467_075


def test_onnx_graph_matches_numpy_reference_at_odd_sizes():
    """TF SAME padding, legacy resize and the guided filter agree between ONNX and numpy."""
    w = random_weights()
    path_bytes = network.build_onnx(w, radius=2, eps=1e-2).SerializeToString()
    import onnxruntime as ort

    sess = ort.InferenceSession(path_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for h, wd in [(32, 48), (36, 20)]:
        x = rng.integers(0, 256, (2, h, wd, 3)).astype(np.float32)
        ours = sess.run(None, {"input_image": x})[0]
        ref = network.reference_forward(w, x, radius=2, eps=1e-2)
        assert ours.shape == (2, h, wd, 3) and ours.dtype == np.uint8
        d = np.abs(ours.astype(int) - ref.astype(int))
        assert d.max() <= 1 and d.mean() < 0.01


def test_tone_bands_flatten_shading_keep_colour_and_survive_a_round_trip(tmp_path):
    """A luminance ramp becomes steps (its values gather on the plateaus between levels) with the
    chroma untouched; the ONNX graph agrees with numpy, and a saved model reads back with its bands."""
    ramp = np.linspace(-0.9, 0.9, 2001, dtype=np.float32)
    x = np.stack([ramp, ramp - 0.05, ramp + 0.05], -1)[None]  # BGR: a tinted grey ramp
    y = network.tone_bands(x, 8)
    luma = lambda t: t @ np.asarray(network.LUMA_BGR, np.float32)  # noqa: E731
    on_plateau = lambda t: np.abs(np.abs(t - np.round(t)) - 0.5) < 0.1  # noqa: E731  (t: luma in levels)
    assert on_plateau(8 * (luma(y) + 1) / 2).mean() > 0.6 and on_plateau(8 * (luma(x) + 1) / 2).mean() < 0.25
    assert np.diff(luma(y[0])).min() > -1e-6  # steps, never reversed
    assert np.allclose(y - luma(y)[..., None], x - luma(x)[..., None], atol=1e-5)  # colour kept
    assert np.abs(luma(y) - luma(x)).max() <= 1 / 8 + 1e-4  # within half a band (1/8 on -1..1)

    w = random_weights()
    import onnxruntime as ort

    sess = ort.InferenceSession(network.build_onnx(w, bands=8).SerializeToString(), providers=["CPUExecutionProvider"])
    img = np.random.default_rng(3).integers(0, 256, (2, 32, 40, 3)).astype(np.float32)
    d = np.abs(sess.run(None, {"input_image": img})[0].astype(int) - network.reference_forward(w, img, bands=8).astype(int))
    assert d.max() <= 2 and d.mean() < 0.02
    assert np.abs(network.reference_forward(w, img, bands=8).astype(int) - network.reference_forward(w, img).astype(int)).mean() > 1

    path = tmp_path / "banded.onnx"
    path.write_bytes(network.build_onnx(w, bands=6, sharpness=2.0).SerializeToString())
    imp = read_any(path)
    assert (imp.bands, imp.band_sharpness) == (6, 2.0)
    assert np.array_equal(TTN(path).run_batch(img[:1].astype(np.uint8)),
                          ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"]).run(
                              None, {"input_image": img[:1].astype(np.uint8).astype(np.float32)})[0])


def test_flat_fills_flatten_texture_keep_lines_and_survive_a_round_trip(tmp_path):
    """A textured patch with a dark line across it: the texture flattens (Sobel flat share rises),
    the line stays as dark as it was, the region's mean colour stays; the same patch near white is
    left to the shock filter alone, which makes a soft edge crisper and keeps its two sides; ONNX agrees
    with numpy, and a saved model reads back with its radius."""
    rng = np.random.default_rng(4)
    x = np.full((1, 64, 64, 3), 0.3, np.float32) + rng.normal(0, 0.04, (1, 64, 64, 1)).astype(np.float32)
    x[:, 30:32] = -0.8  # a dark line, two pixels thick
    y = network.flat_fills(x, 4)
    grey = lambda t: ((t[0] @ np.asarray(network.LUMA_BGR, np.float32)) + 1) * 127.5  # noqa: E731
    flat = lambda t: (np.hypot(cv2.Sobel(grey(t), cv2.CV_32F, 1, 0), cv2.Sobel(grey(t), cv2.CV_32F, 0, 1))[8:24, 8:56] < 8).mean()  # noqa: E731
    assert flat(x) < 0.1 and flat(y) > 0.5
    assert np.abs(y[:, 30:32] - x[:, 30:32]).max() < 0.05  # the line kept
    assert abs(y[:, 8:24].mean() - x[:, 8:24].mean()) < 0.01
    light = x + 0.6  # near-white (grey 0.95): the fills fade out and the shading a face is read by stays
    assert np.abs(network.flat_fills(light, 4) - network._shock(light))[:, :16].max() < 1e-6  # (away from the line)
    edge = np.repeat(cv2.GaussianBlur(np.where(np.arange(64) < 32, -0.5, 0.5).astype(np.float32)[None].repeat(8, 0),
                                      (0, 0), 2.0)[None, ..., None], 3, axis=3)  # a soft edge, 8 rows
    crisp = network.flat_fills(edge, 4)
    width = lambda t: int((np.abs(t[0, 4, :, 0]) < 0.4).sum())  # noqa: E731  (pixels between 10% and 90%)
    assert width(crisp) < width(edge) and np.abs(crisp[0, 4, [0, -1], 0] - edge[0, 4, [0, -1], 0]).max() < 0.01

    w = random_weights()
    import onnxruntime as ort

    img = np.stack([cv2.GaussianBlur(i, (0, 0), 1.5) for i in rng.integers(0, 256, (2, 40, 36, 3)).astype(np.float32)])
    sess = ort.InferenceSession(network.build_onnx(w, fill_radius=4).SerializeToString(), providers=["CPUExecutionProvider"])
    d = np.abs(sess.run(None, {"input_image": img})[0].astype(int) - network.reference_forward(w, img, fill_radius=4).astype(int))
    assert d.max() <= 1 and d.mean() < 0.01
    assert np.abs(network.reference_forward(w, img, fill_radius=4).astype(int) - network.reference_forward(w, img).astype(int)).mean() > 0.5

    path = tmp_path / "flat.onnx"
    path.write_bytes(network.build_onnx(w, fill_radius=3).SerializeToString())
    assert read_any(path).fill_radius == 3


def test_runner_handles_any_size(tmp_path):
    path = tmp_path / "m.onnx"
    rng = np.random.default_rng(2)
    for fills in (0, 4):  # the fills' blurs are wider than a tiny image
        path.write_bytes(network.build_onnx(random_weights(), fill_radius=fills).SerializeToString())
        model = TTN(path)
        for h, wd in [(1, 1), (5, 3), (375, 500), (123, 77)]:
            img = rng.integers(0, 256, (h, wd, 3), dtype=np.uint8)
            out = model(img)
            assert out.shape == (h, wd, 3) and out.dtype == np.uint8


def test_tiling_is_seamless_and_matches_whole_image(fp16_model):
    """Tiles blend with ramps: the tiled output stays close to the whole-image output everywhere."""
    img = cv2.imread(str(need(REFERENCE.parent.parent / "media/images/portrait-color.jpg")))
    whole = TTN(fp16_model, tile=4096)(img).astype(int)
    tiled = TTN(fp16_model, tile=512, overlap=96)(img).astype(int)
    d = np.abs(whole - tiled)
    assert d.mean() < 0.25
    assert np.percentile(d, 99.9) <= 6


@pytest.mark.parametrize("name", ["whitebox_cartoon_gan_fp16.tflite", "whitebox_cartoon_gan_dr.tflite",
                                  "whitebox_cartoon_gan_int8.tflite"])
def test_tflite_import_reads_all_weight_encodings(name):
    imp = read_tflite(need(REFERENCE / name))
    assert network.config_of(imp.weights) == (32, 4)
    assert sum(v.size for v in imp.weights.values()) == 1_467_075
    assert imp.radius == 1 and imp.eps == pytest.approx(5e-3, rel=1e-3)


def test_quantized_imports_agree_with_fp16():
    fp16 = read_tflite(need(REFERENCE / "whitebox_cartoon_gan_fp16.tflite")).weights
    for name in ("whitebox_cartoon_gan_dr.tflite", "whitebox_cartoon_gan_int8.tflite"):
        q = read_tflite(need(REFERENCE / name)).weights
        k = "block0.conv1.weight"
        rel = np.abs(q[k] - fp16[k]).mean() / np.abs(fp16[k]).mean()
        assert rel < 0.05, (name, rel)


def test_fp16_parity_with_tflite_interpreter_on_every_shared_image(fp16_model, shared_images):
    """The acceptance numbers: max abs difference <= 2 and mean <= 0.5 (uint8)."""
    model = TTN(fp16_model)
    for path in shared_images:
        img = cv2.resize(cv2.imread(str(path)), (224, 224), interpolation=cv2.INTER_AREA)
        ours = model.run_batch(img[None])[0].astype(int)
        ref = tflite_reference(fp16_model, img).astype(int)
        d = np.abs(ours - ref)
        print(f"{path.name}: max {d.max()} mean {d.mean():.4f}")
        assert d.max() <= 2 and d.mean() <= 0.5, path.name


OFFICIAL_STYLES = ["anime", "3d", "handdrawn", "sketch", "artstyle", "sd-design", "sd-illustration"]


@pytest.mark.parametrize("style", OFFICIAL_STYLES)
def test_official_dctnet_parity_with_tflite_interpreter(style, shared_images):
    """Every official DCT-Net style through our importer and ONNX graph vs the LiteRT interpreter
    at its native 288x288: max abs difference <= 2 and mean <= 0.5 (uint8)."""
    path = need(OFFICIAL / f"dctnet_{style}.tflite")
    imported = read_tflite(path)
    assert network.config_of(imported.weights) == (32, 4)
    assert imported.radius == 1 and imported.eps == pytest.approx(1e-2, rel=1e-3)
    model = TTN(path)
    for img_path in shared_images:
        img = cv2.resize(cv2.imread(str(img_path)), (288, 288), interpolation=cv2.INTER_AREA)
        d = np.abs(model.run_batch(img[None])[0].astype(int) - tflite_reference(path, img).astype(int))
        print(f"{style} {img_path.name}: max {d.max()} mean {d.mean():.4f}")
        assert d.max() <= 2 and d.mean() <= 0.5, img_path.name


@pytest.mark.parametrize("channel,blocks", [(32, 4), (24, 4), (16, 4), (16, 2)])
def test_every_student_width_runs_in_onnx_and_numpy_alike(tmp_path, channel, blocks):
    """The runtime reads the width from the weights: a saved student of each size runs in ONNX Runtime
    (through the style loader) and agrees with the numpy reference."""
    from dctoon import styles

    w = random_weights(3, channel, blocks)
    folder = styles.save_style(tmp_path / "s", "s", w, description="", license="", source="test", eps=1e-2,
                               single_file=True)
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "style.json"]
    model = TTN(styles.resolve(folder).head)
    x = np.random.default_rng(4).integers(0, 256, (1, 40, 44, 3)).astype(np.uint8)
    ours = model.run_batch(x).astype(int)
    ref = network.reference_forward(w, x.astype(np.float32), eps=1e-2).astype(int)
    assert network.config_of(read_any(folder / "model.onnx").weights) == (channel, blocks)
    assert np.abs(ours - ref).max() <= 1 and network.mac_per_pixel(channel, blocks) == \
        {(32, 4): 124_608, (24, 4): 71_856, (16, 4): 33_504, (16, 2): 24_288}[(channel, blocks)]


@pytest.mark.parametrize("scope", [None, "model_head"])
def test_frozen_graphdef_import_parity(tmp_path, fp16_model, scope):
    """A real TF frozen graph in the official layout, carrying the reference weights."""
    pytest.importorskip("tensorflow")
    from tf_graphs import run_pb, write_official_pb

    weights = read_tflite(fp16_model).weights
    pb = write_official_pb(weights, tmp_path / "cartoon_h.pb", scope=scope)
    imp = read_graphdef(pb)
    assert imp.radius == 1 and imp.eps == pytest.approx(5e-3)
    for k, v in weights.items():
        np.testing.assert_array_equal(imp.weights[k], v)
    img = cv2.resize(cv2.imread(str(need(REFERENCE.parent.parent / "media/images/portrait-512.jpg"))), (224, 224))
    ours = TTN(pb).run_batch(img[None])[0].astype(int)
    for ref in (run_pb(pb, img, scope), tflite_reference(fp16_model, img)):
        d = np.abs(ours - ref.astype(int))
        assert d.max() <= 2 and d.mean() <= 0.5


def test_graphdef_reads_radius_and_eps(tmp_path):
    pytest.importorskip("tensorflow")
    from tf_graphs import write_official_pb

    pb = write_official_pb(random_weights(), tmp_path / "x_cartoon_bg.pb", radius=2, eps=0.01)
    imp = read_any(pb)
    assert (imp.radius, imp.eps) == (2, pytest.approx(0.01))


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"\x08\x96\x01" * 10, b"\x00" * 64])
def test_foreign_model_files_give_clear_errors(tmp_path, content):
    for suffix in (".pb", ".tflite", ".onnx"):
        p = tmp_path / f"bad{suffix}"
        p.write_bytes(content)
        with pytest.raises(ModelError):
            TTN(p)


def test_model_of_the_wrong_kind(tmp_path):
    """A valid ONNX file that is not a dctoon generator (e.g. the MTCNN P-Net)."""
    from dctoon.face import mtcnn_weights_dir

    pnet = mtcnn_weights_dir() / "pnet.onnx"
    p = tmp_path / "pnet.onnx"
    p.write_bytes(pnet.read_bytes())
    with pytest.raises(ModelError, match="no dctoon generator"):
        TTN(p)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        TTN(tmp_path / "nope.onnx")
