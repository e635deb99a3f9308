"""The texture translation network (TTN) of DCT-Net, as an ONNX graph.

The generator is White-box Cartoonization's ``unet_generator`` (channel 32, 4 residual blocks,
LeakyReLU 0.2, no normalisation) followed by a guided filter that uses the photo as guide.
This module is the one place that knows the architecture: the layer list (``conv_specs``),
the ONNX inference graph (``build_onnx``) and a slow numpy forward pass (``reference_forward``)
that spells out TensorFlow's semantics for verification and benchmarks.

TensorFlow semantics kept exactly:
- "SAME" padding: a stride-2 convolution on an even size pads one row/column at the
  bottom/right only.
- TF1 ``resize_bilinear`` without half-pixel centres: source coordinate = destination / 2.
- Guided filter box sums use zero padding and are normalised by the in-bounds pixel count.

Optional tone bands (``bands`` > 0, dctoon's addition; ``dctoon.train`` can train through them):
the refined output's luminance is quantised into soft bands (``tone_bands``): flat shading.
Optional flat fills (``fill_radius`` > 0, dctoon's addition, after the bands' place): the output
smoothed by a guided filter with its own grey image as guide, its dark lines kept, faded out on
near-white output, edges made crisp by a shock filter (``flat_fills``).

I/O convention of the official DCT-Net graphs: BGR, 0-255 float in, uint8 out (truncated,
as ``tf.cast`` does). Height and width must be multiples of 4 (``model.TTN`` pads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEAKY_SLOPE = 0.2
DEFAULT_RADIUS = 1
DEFAULT_EPS = 5e-3
DEFAULT_SHARPNESS = 3.0
FLAT_EPS = 4e-3  # flat_fills: the self-guided filter's eps ([-1, 1] units; 1e-3 on a 0-1 scale)
LINE_SIGMAS = (0.8, 2.0)  # flat_fills: the difference of Gaussians that marks a dark line ...
LINE_DEPTH = 3 / 127.5  # ... where it falls below -3 grey levels
FADE_SIGMA = 8.0  # flat_fills fade out where the grey, blurred by this Gaussian, ...
FADE_GREY = (0.70, 0.85)  # ... rises from the first to the second brightness (0-1): off on near-white
SHOCK_SIGMA = 2.5  # flat_fills end in a shock filter: the Laplacian L of the grey blurred by this ...
SHOCK_SOFTNESS = 1e-3  # ... picks between each pixel's 3x3 max and min by tanh(-L / this) ...
SHOCK_GAIN = 0.5  # ... and the pixel moves this far toward the pick
LAPLACIAN = ((0, 1, 0), (1, -4, 1), (0, 1, 0))
LUMA_BGR = (0.114, 0.587, 0.299)
INPUT_NAME = "input_image"
OUTPUT_NAME = "output_image"
HALF = ".f16"  # the suffix of a weight stored in fp16 (build_onnx(half=True))
GENERATOR_OUTPUT = "out.y"  # the U-Net's last convolution, the guided filter's input: where a graph can be cut
OPSET = 17


@dataclass(frozen=True)
class ConvSpec:
    name: str
    cin: int
    cout: int
    k: int
    stride: int = 1


def conv_specs(channel: int = 32, num_blocks: int = 4) -> list[ConvSpec]:
    """The generator's convolutions in execution order (the order every importer relies on)."""
    c = channel
    specs = [
        ConvSpec("enc0", 3, c, 7),
        ConvSpec("down1", c, c, 3, 2),
        ConvSpec("enc1", c, 2 * c, 3),
        ConvSpec("down2", 2 * c, 2 * c, 3, 2),
        ConvSpec("enc2", 2 * c, 4 * c, 3),
    ]
    for i in range(num_blocks):
        specs += [ConvSpec(f"block{i}.conv1", 4 * c, 4 * c, 3), ConvSpec(f"block{i}.conv2", 4 * c, 4 * c, 3)]
    specs += [
        ConvSpec("dec2", 4 * c, 2 * c, 3),
        ConvSpec("up1", 2 * c, 2 * c, 3),
        ConvSpec("dec1", 2 * c, c, 3),
        ConvSpec("up0", c, c, 3),
        ConvSpec("out", c, 3, 7),
    ]
    return specs


def mac_per_pixel(channel: int = 32, num_blocks: int = 4) -> int:
    """Multiply-accumulates per input pixel: each layer's kernel volume over the pixels it runs on
    (full, 1/4 and 1/16 of the input after the two stride-2 stages)."""
    per_px = {"enc0": 1, "up0": 1, "out": 1, "down1": 4, "enc1": 4, "up1": 4, "dec1": 4}
    return sum(s.cin * s.cout * s.k * s.k // per_px.get(s.name, 16) for s in conv_specs(channel, num_blocks))


def infer_config(shapes: list[tuple[int, ...]]) -> tuple[int, int]:
    """(channel, num_blocks) from the OIHW kernel shapes of a generator's convolutions."""
    n = len(shapes)
    if n < 10 or (n - 10) % 2:
        raise ValueError(f"{n} convolutions do not form a unet_generator")
    channel = shapes[0][0]
    expected = conv_specs(channel, (n - 10) // 2)
    for spec, shape in zip(expected, shapes):
        if tuple(shape) != (spec.cout, spec.cin, spec.k, spec.k):
            raise ValueError(
                f"layer {spec.name}: kernel shape {tuple(shape)} does not match the unet_generator"
                f" ({spec.cout}, {spec.cin}, {spec.k}, {spec.k})"
            )
    return channel, (n - 10) // 2


def weights_from_list(kernels: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Name an ordered list of OIHW kernels and biases after ``conv_specs``; validates shapes."""
    channel, blocks = infer_config([k.shape for k in kernels])
    out: dict[str, np.ndarray] = {}
    for spec, k, b in zip(conv_specs(channel, blocks), kernels, biases):
        if b.shape != (spec.cout,):
            raise ValueError(f"layer {spec.name}: bias shape {b.shape}, expected ({spec.cout},)")
        out[f"{spec.name}.weight"] = np.ascontiguousarray(k, dtype=np.float32)
        out[f"{spec.name}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    return out


def config_of(weights: dict[str, np.ndarray]) -> tuple[int, int]:
    channel = weights["enc0.weight"].shape[0]
    blocks = sum(1 for k in weights if k.endswith(".conv1.weight"))
    return channel, blocks


# --------------------------------------------------------------------------------------------
# ONNX graph


def build_onnx(weights: dict[str, np.ndarray], radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS,
               metadata: dict[str, str] | None = None, bands: int = 0, sharpness: float = DEFAULT_SHARPNESS,
               half: bool = False, fill_radius: int = 0):
    """The full inference graph: BGR 0-255 float [N,H,W,3] -> generator -> guided filter
    (-> tone bands) (-> flat fills) -> uint8. ``half`` stores the weights in fp16 (``NAME.f16``, cast to fp32 in
    the graph): half the file, for the files a style ships; the arithmetic stays fp32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    channel, blocks = config_of(weights)
    nodes: list = []
    if half:
        inits = [numpy_helper.from_array(np.asarray(v, np.float16), k + HALF) for k, v in weights.items()]
        nodes += [helper.make_node("Cast", [k + HALF], [k], name=k, to=TensorProto.FLOAT) for k in weights]
    else:
        inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()]

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def op(kind: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def conv(x: str, spec: ConvSpec, act: bool = True) -> str:
        if spec.stride == 1:
            p = spec.k // 2
            pads = [p, p, p, p]
        else:  # TF SAME on even sizes: the extra row/column goes to the bottom/right
            pads = [(spec.k - 2) // 2, (spec.k - 2) // 2, spec.k - 2 - (spec.k - 2) // 2, spec.k - 2 - (spec.k - 2) // 2]
        y = op("Conv", [x, f"{spec.name}.weight", f"{spec.name}.bias"], f"{spec.name}.y",
               kernel_shape=[spec.k, spec.k], strides=[spec.stride] * 2, pads=pads)
        return op("LeakyRelu", [y], f"{spec.name}.act", alpha=LEAKY_SLOPE) if act else y

    up_scales = const("up_scales", [1.0, 1.0, 2.0, 2.0])

    def upsample(x: str, name: str) -> str:
        return op("Resize", [x, "", up_scales], name, mode="linear",
                  coordinate_transformation_mode="asymmetric")

    s = {spec.name: spec for spec in conv_specs(channel, blocks)}
    x = op("Transpose", [INPUT_NAME], "nchw", perm=[0, 3, 1, 2])
    x = op("Div", [x, const("c127_5", 127.5)], "scaled")
    guide = op("Sub", [x, const("c1", 1.0)], "guide")
    x0 = conv(guide, s["enc0"])
    x1 = conv(conv(x0, s["down1"]), s["enc1"])
    x2 = conv(conv(x1, s["down2"]), s["enc2"])
    for i in range(blocks):
        h = conv(conv(x2, s[f"block{i}.conv1"]), s[f"block{i}.conv2"], act=False)
        x2 = op("Add", [h, x2], f"block{i}.out")
    x2 = conv(x2, s["dec2"])
    x3 = op("Add", [upsample(x2, "up1.in"), x1], "skip1")
    x3 = conv(conv(x3, s["up1"]), s["dec1"])
    x4 = op("Add", [upsample(x3, "up0.in"), x0], "skip0")
    y = conv(conv(x4, s["up0"]), s["out"], act=False)
    assert y == GENERATOR_OUTPUT

    def const_i64(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    one_ch = op("Slice", [guide, const_i64("s0", [0]), const_i64("s1", [1]), const_i64("s_axis", [1])],
                "guide_ch0")
    ones = op("Add", [op("Mul", [one_ch, const("c0", 0.0)], "zeros"), "c1"], "ones")

    def guided(x: str, channels: int, t: str, r: int, e: float, p: str) -> str:
        """guided_filter: ``t`` (3 channels) refined with ``x`` (``channels``: 3, or 1 for all) as guide."""
        k = 2 * r + 1
        kernels = {c: const(f"{p}.box{c}", np.ones((c, 1, k, k))) for c in {1, channels, 3}}
        box = lambda v, n, c: op("Conv", [v, kernels[c]], n, kernel_shape=[k, k], pads=[r] * 4, group=c)  # noqa: E731
        count = box(ones, f"{p}.N", 1)
        mean = lambda v, n, c=3: op("Div", [box(v, n + ".sum", c), count], n)  # noqa: E731
        mean_x, mean_t = mean(x, f"{p}.mean_x", channels), mean(t, f"{p}.mean_y")
        cov = op("Sub", [mean(op("Mul", [x, t], f"{p}.xy"), f"{p}.mean_xy"),
                         op("Mul", [mean_x, mean_t], f"{p}.mx_my")], f"{p}.cov_xy")
        var = op("Sub", [mean(op("Mul", [x, x], f"{p}.xx"), f"{p}.mean_xx", channels),
                         op("Mul", [mean_x, mean_x], f"{p}.mx_mx")], f"{p}.var_x")
        a = op("Div", [cov, op("Add", [var, const(f"{p}.eps", e)], f"{p}.var_eps")], f"{p}.A")
        b = op("Sub", [mean_t, op("Mul", [a, mean_x], f"{p}.A_mx")], f"{p}.b")
        return op("Add", [op("Mul", [mean(a, f"{p}.mean_A"), x], f"{p}.Ax"), mean(b, f"{p}.mean_b")], f"{p}.filtered")

    out = guided(guide, 3, y, radius, eps, "gf")  # y refined with the photo as guide, per channel
    if bands:  # tone_bands in luminance units t = levels * (Y + 1) / 2; every channel moves by the same amount
        luma = op("Conv", [out, const("tb.luma", np.reshape(LUMA_BGR, (1, 3, 1, 1)))], "tb.Y", kernel_shape=[1, 1])
        t = op("Mul", [op("Add", [luma, "c1"], "tb.Y1"), const("tb.half_levels", bands / 2)], "tb.t")
        nearest = op("Round", [t], "tb.nearest")
        soft = op("Tanh", [op("Mul", [op("Sub", [t, nearest], "tb.frac"), const("tb.2phi", 2 * sharpness)],
                                  "tb.frac_phi")], "tb.tanh")
        q = op("Add", [nearest, op("Mul", [soft, const("tb.c0_5", 0.5)], "tb.half_tanh")], "tb.q")
        delta = op("Div", [op("Sub", [q, t], "tb.dt"), "tb.half_levels"], "tb.delta")
        out = op("Add", [out, delta], "tb.out")
    if fill_radius:  # flat_fills: a guided filter of radius `fill_radius` guided by the output's own grey image
        grey = op("Conv", [out, const("ff.luma", np.reshape(LUMA_BGR, (1, 3, 1, 1)))], "ff.grey", kernel_shape=[1, 1])
        flat = guided(grey, 1, out, fill_radius, FLAT_EPS, "ff")

        def blur(sigma: float, p: str, image: str = grey) -> str:  # _blur: a separable Gaussian of a grey image
            taps = gaussian_taps(sigma)
            r = len(taps) // 2
            padded = op("Pad", [image, const_i64(f"{p}.pads", [0, 0, r, r, 0, 0, r, r])], f"{p}.pad", mode="edge")
            rows = op("Conv", [padded, const(f"{p}.gy", taps.reshape(1, 1, -1, 1))], f"{p}.y",
                      kernel_shape=[len(taps), 1])
            return op("Conv", [rows, const(f"{p}.gx", taps.reshape(1, 1, 1, -1))], p, kernel_shape=[1, len(taps)])

        dog = op("Sub", [blur(s, f"ff.blur{i}") for i, s in enumerate(LINE_SIGMAS)], "ff.dog")
        line = op("Less", [dog, const("ff.depth", -LINE_DEPTH)], "ff.line")
        filled = op("Where", [line, op("Min", [out, flat], "ff.darker"), flat], "ff.filled")
        lo, hi = FADE_GREY  # w = clip((hi - (blurred grey + 1) / 2) / (hi - lo), 0, 1): one affine map of the blur
        w = op("Mul", [blur(FADE_SIGMA, "ff.fade_blur"), const("ff.fade_a", -0.5 / (hi - lo))], "ff.fade_ax")
        w = op("Add", [w, const("ff.fade_b", (hi - 0.5) / (hi - lo))], "ff.fade_lin")
        w = op("Clip", [w, "c0", "c1"], "ff.fade")
        out = op("Add", [out, op("Mul", [w, op("Sub", [filled, out], "ff.change")], "ff.w_change")], "ff.filled_out")
        # shock: toward mid + tanh(-Laplacian / softness) * half-range of the 3x3 max and min (MaxPool's padding
        # never wins, as numpy's -inf/+inf padding)
        smooth = blur(SHOCK_SIGMA, "sh.blur", op("Conv", [out, "ff.luma"], "sh.grey", kernel_shape=[1, 1]))
        smooth = op("Pad", [smooth, const_i64("sh.pads", [0, 0, 1, 1, 0, 0, 1, 1])], "sh.pad", mode="edge")
        lap = op("Conv", [smooth, const("sh.laplacian", np.reshape(LAPLACIAN, (1, 1, 3, 3)))], "sh.lap",
                 kernel_shape=[3, 3])
        pool = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
        hi3 = op("MaxPool", [out], "sh.max", **pool)
        lo3 = op("Neg", [op("MaxPool", [op("Neg", [out], "sh.neg")], "sh.neg_max", **pool)], "sh.min")
        pick = op("Tanh", [op("Mul", [lap, const("sh.soft", -1 / SHOCK_SOFTNESS)], "sh.lap_soft")], "sh.pick")
        half = op("Mul", [op("Sub", [hi3, lo3], "sh.range"), const("c0_5", 0.5)], "sh.half")
        snapped = op("Add", [op("Sub", [hi3, half], "sh.mid"), op("Mul", [pick, half], "sh.pick_half")], "sh.snapped")
        out = op("Add", [out, op("Mul", [const("sh.gain", SHOCK_GAIN), op("Sub", [snapped, out], "sh.change")],
                                 "sh.g_change")], "ff.out")

    out = op("Mul", [op("Add", [out, "c1"], "post.shift"), "c127_5"], "post.scale")
    out = op("Clip", [out, "c0", const("c255", 255.0)], "post.clip")
    out = op("Cast", [out], "post.u8", to=TensorProto.UINT8)
    op("Transpose", [out], OUTPUT_NAME, perm=[0, 2, 3, 1])

    graph = helper.make_graph(
        nodes, "ttn",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, ["N", "H", "W", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dctoon")
    model.ir_version = 8
    props = {"architecture": "unet_generator", "channel": str(channel), "num_blocks": str(blocks),
             "gf_radius": str(radius), "gf_eps": repr(float(eps)), "io": "BGR 0-255 float NHWC in, uint8 out"}
    if bands:
        props.update(bands=str(int(bands)), band_sharpness=repr(float(sharpness)))
    if fill_radius:
        props.update(fill_radius=str(int(fill_radius)))
    props.update(metadata or {})
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def weights_from_onnx(model) -> dict[str, np.ndarray]:
    """The named generator weights (fp32) stored in one of our ONNX graphs, in fp32 or in fp16."""
    from onnx import numpy_helper

    return {t.name.removesuffix(HALF): numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer
            if t.name.removesuffix(HALF).endswith((".weight", ".bias"))}


# --------------------------------------------------------------------------------------------
# numpy reference: slow, written for reading; the ONNX graph must agree with it


def _conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """TF "SAME" convolution, NHWC input, OIHW kernel."""
    k = w.shape[2]
    n, h, wd, c = x.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + k - h, 0)
    pw = max((ow - 1) * stride + k - wd, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,ocij->nhwo", win, w, optimize=True) + b


def _resize_legacy(x: np.ndarray) -> np.ndarray:
    """TF1 resize_bilinear to twice the size, align_corners=False, half_pixel_centers=False."""
    def axis_weights(size: int):
        src = np.arange(2 * size) / 2.0
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, size - 1), (src - i0).astype(np.float32)

    y0, y1, fy = axis_weights(x.shape[1])
    x0, x1, fx = axis_weights(x.shape[2])
    rows = x[:, y0] * (1 - fy)[None, :, None, None] + x[:, y1] * fy[None, :, None, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :, None] + rows[:, :, x1] * fx[None, None, :, None]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    k = 2 * r + 1
    xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    return np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2)).sum(axis=(-1, -2))


def guided_filter(x: np.ndarray, y: np.ndarray, r: int, eps: float) -> np.ndarray:
    n = _box(np.ones_like(x[..., :1]), r)
    mean_x, mean_y = _box(x, r) / n, _box(y, r) / n
    a = (_box(x * y, r) / n - mean_x * mean_y) / (_box(x * x, r) / n - mean_x * mean_x + eps)
    b = mean_y - a * mean_x
    return _box(a, r) / n * x + _box(b, r) / n


def tone_bands(x: np.ndarray, levels: int, sharpness: float = DEFAULT_SHARPNESS) -> np.ndarray:
    """Luminance of a [-1, 1] BGR image in ``levels`` soft bands, the colour kept: Winnemoeller's
    soft quantisation ("Real-time video abstraction", 2006), q = nearest level + step/2 *
    tanh(sharpness * 2 (Y - nearest) / step). Shading gathers on the plateaus halfway between two
    levels (at sharpness 3, 63% of a smooth ramp ends within a tenth of a band of one, against 20%
    before) and crosses each level in a soft step: flat tones, no hard contour to jump between video
    frames. A smaller sharpness keeps more of the shading."""
    t = levels * (x @ np.asarray(LUMA_BGR, np.float32) + 1) / 2
    nearest = np.round(t)
    q = nearest + 0.5 * np.tanh(2 * sharpness * (t - nearest))
    return x + (2 * (q - t) / levels)[..., None]


def gaussian_taps(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of radius ceil(3 sigma)."""
    r = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    """[N,H,W] grey images blurred by a separable Gaussian, the border pixels repeated (any size works)."""
    taps = gaussian_taps(sigma)
    r = len(taps) // 2
    g = np.pad(grey, ((0, 0), (r, r), (r, r)), mode="edge")
    g = np.lib.stride_tricks.sliding_window_view(g, len(taps), axis=1) @ taps
    return np.lib.stride_tricks.sliding_window_view(g, len(taps), axis=2) @ taps


def flat_fills(x: np.ndarray, radius: int) -> np.ndarray:
    """A [-1, 1] BGR image's fills made flat and its dark lines kept: a guided filter with the
    image's own grey as guide (He et al.; edge-preserving, so shading and texture inside a region
    flatten while the edges between regions stay), except where a difference of Gaussians of the
    grey marks a dark line, which keeps the darker of the two. An artist's fills are flat and their
    strokes stay: on the AvatarHQ validation pairs, radius 4 raised the avatar's flat share from
    0.233 to 0.297 with its strokes, colour and structure kept, but a face detector then found fewer
    faces in its selfies, most of them pale or washed out. So the fills fade out where the output,
    blurred, is near white (``FADE_GREY``): there the shading is all that is left of a face. Then a
    shock filter (Osher and Rudin, 1990) makes every edge crisp, as an artist's are: each pixel moves
    halfway to the max or the min of its 3x3 neighbours, by the side of the edge it is on (the sign of
    a Laplacian, softened by a tanh, so that where there is no edge it moves to the middle of the two). A
    crisp edge leaves more pixels flat and keeps the features a face detector reads a face by
    (src/dctoon/train/README.md)."""
    grey = x @ np.asarray(LUMA_BGR, np.float32)
    flat = guided_filter(grey[..., None], x, radius, FLAT_EPS)
    line = (_blur(grey, LINE_SIGMAS[0]) - _blur(grey, LINE_SIGMAS[1]) < -LINE_DEPTH)[..., None]
    filled = np.where(line, np.minimum(x, flat), flat)
    lo, hi = FADE_GREY
    w = np.clip((hi - (_blur(grey, FADE_SIGMA) + 1) / 2) / (hi - lo), 0, 1)[..., None]
    return _shock(x + w * (filled - x))


def _shock(x: np.ndarray) -> np.ndarray:
    """One step of a shock filter on [N,H,W,3]: see ``flat_fills``."""
    smooth = np.pad(_blur(x @ np.asarray(LUMA_BGR, np.float32), SHOCK_SIGMA), ((0, 0), (1, 1), (1, 1)), mode="edge")
    lap = np.einsum("nhwij,ij->nhw", np.lib.stride_tricks.sliding_window_view(smooth, (3, 3), axis=(1, 2)),
                    np.asarray(LAPLACIAN, np.float32))
    window = lambda fill: np.lib.stride_tricks.sliding_window_view(  # noqa: E731
        np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill), (3, 3), axis=(1, 2))
    hi, lo = window(-np.inf).max(axis=(-2, -1)), window(np.inf).min(axis=(-2, -1))
    snapped = (hi + lo) / 2 + np.tanh(-lap / SHOCK_SOFTNESS)[..., None] * (hi - lo) / 2
    return x + SHOCK_GAIN * (snapped - x)


def generator_forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """unet_generator on NHWC input in [-1, 1]; returns the raw network output."""
    channel, blocks = config_of(weights)
    s = {spec.name: spec for spec in conv_specs(channel, blocks)}

    def conv(t, name, act=True):
        y = _conv_same(t, weights[f"{name}.weight"], weights[f"{name}.bias"], s[name].stride)
        return np.where(y > 0, y, LEAKY_SLOPE * y) if act else y

    x0 = conv(x, "enc0")
    x1 = conv(conv(x0, "down1"), "enc1")
    x2 = conv(conv(x1, "down2"), "enc2")
    for i in range(blocks):
        x2 = x2 + conv(conv(x2, f"block{i}.conv1"), f"block{i}.conv2", act=False)
    x2 = conv(x2, "dec2")
    x3 = conv(conv(_resize_legacy(x2) + x1, "up1"), "dec1")
    x4 = conv(_resize_legacy(x3) + x0, "up0")
    return conv(x4, "out", act=False)


def reference_forward(weights: dict[str, np.ndarray], bgr: np.ndarray, radius: int = DEFAULT_RADIUS,
                      eps: float = DEFAULT_EPS, bands: int = 0, sharpness: float = DEFAULT_SHARPNESS,
                      fill_radius: int = 0) -> np.ndarray:
    """The whole inference graph in numpy: BGR 0-255 [N,H,W,3] -> uint8."""
    x = bgr.astype(np.float32) / 127.5 - 1.0
    y = guided_filter(x, generator_forward(weights, x), radius, eps)
    if bands:
        y = tone_bands(y, bands, sharpness)
    if fill_radius:
        y = flat_fills(y, fill_radius)
    return np.clip((y + 1.0) * 127.5, 0, 255).astype(np.uint8)
