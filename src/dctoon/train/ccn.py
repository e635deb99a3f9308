"""Content calibration network (CCN) of DCT-Net: few-shot StyleGAN2 fine-tuning, layer swapping
and sampling of extra style faces for the TTN. One file: a compact StyleGAN2 whose parameter and
buffer names follow rosinality's ``stylegan2-pytorch`` (``{"g_ema": ..., "d": ...}`` checkpoints,
e.g. ``stylegan2-ffhq-config-f.pt``), its discriminator, the fine-tuning loop, layer swapping and
the sampler.

DCT-Net's content calibration: a StyleGAN2 pre-trained on real faces (the source, G_s) is
fine-tuned on the ~100 style exemplars into G_t; swapping G_s's low-resolution layers (pose,
face shape: content) into G_t (colours and texture: style) gives a generator whose samples are
stylized faces with the real-face content distribution; thousands of its samples enlarge the
exemplar set the TTN learns from. DCT-Net also keeps G_t close to G_s with a face-identity loss;
no face-recognition weights can be had here, so ``id_weight`` uses a stand-in: L1 between
low-pass (8x8) images of G_s and G_t for the same latent (pass 0 to turn it off).

The real run (a GPU and the FFHQ checkpoint, not available in this session)::

    dctoon train ccn --ckpt stylegan2-ffhq-config-f.pt --size 1024 --styles DATA/styles \\
        --out runs/ccn-STYLE --steps 1000 --batch 4 --swap-res 32 --samples 5000 --sample-size 256

then train the TTN with ``--styles`` pointing at the exemplars plus ``runs/ccn-STYLE/samples``.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._util import dataset_files, load_checkpoint, read_bgr, save_checkpoint
from .settings import CCNSettings

SQRT2 = math.sqrt(2.0)

# --------------------------------------------------------------------------------------------
# building blocks (rosinality's names)


def make_kernel(k) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative crops), FIR filter, downsample. NCHW."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if min(p0, p1) < 0:
        x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, k, groups=c)
    return x[:, :, ::down, ::down]


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor: int = 1):
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * upsample_factor ** 2
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


def fused_leaky_relu(x, bias, scale: float = SQRT2):
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int, bias: bool = True):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None

    def forward(self, x):
        return fused_leaky_relu(x, self.bias) if self.bias is not None else F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    def __init__(self, cin, cout, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init))) if bias else None
        self.scale, self.lr_mul, self.activation = 1 / math.sqrt(cin) * lr_mul, lr_mul, activation

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale)
        if self.activation:
            return fused_leaky_relu(out, self.bias * self.lr_mul)
        return out + self.bias * self.lr_mul if self.bias is not None else out


class EqualConv2d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(cin * k * k), stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    def __init__(self, cin, cout, k, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.cin, self.cout, self.k = cin, cout, k
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            p = (len(blur_kernel) - 2) - (k - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(cin * k * k)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)

    def forward(self, x, style):
        b, c, h, w = x.shape
        s = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, self.cout, 1, 1, 1)
        x = x.reshape(1, b * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * c, self.cout, self.k, self.k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=b)
            out = out.view(b, self.cout, out.shape[-2], out.shape[-1])
            return self.blur(out)
        out = F.conv2d(x, weight.reshape(b * self.cout, c, self.k, self.k), padding=self.k // 2, groups=b)
        return out.view(b, self.cout, h, w)


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise=None):
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int):
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, cin, cout, k, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, k, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(cout)

    def forward(self, x, style, noise=None):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, cin, style_dim, upsample=True):
        super().__init__()
        if upsample:
            self.upsample = Upsample((1, 3, 3, 1))
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        return out + self.upsample(skip) if skip is not None else out


def channels_for(channel_multiplier: int = 2, channel_max: int = 512) -> dict[int, int]:
    cm = channel_multiplier
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
            512: 32 * cm, 1024: 16 * cm}
    return {k: min(v, channel_max) for k, v in base.items()}


# --------------------------------------------------------------------------------------------
# generator and discriminator


class Generator(nn.Module):
    def __init__(self, size=1024, style_dim=512, n_mlp=8, channel_multiplier=2, channel_max=512, lr_mlp=0.01):
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                                              activation="fused_lrelu") for _ in range(n_mlp)])
        ch = self.channels = channels_for(channel_multiplier, channel_max)
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = (i + 5) // 2
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, 2 ** res, 2 ** res))
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2 ** i]
            self.convs.append(StyledConv(cin, cout, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(cout, cout, 3, style_dim))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout

    def mean_latent(self, n: int = 4096) -> torch.Tensor:
        z = torch.randn(n, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def forward(self, z, truncation: float = 1.0, truncation_latent=None, randomize_noise=True,
                input_is_latent=False, return_latents=False):
        w = z if input_is_latent else self.style(z)
        if truncation < 1 and truncation_latent is not None:
            w = truncation_latent + truncation * (w - truncation_latent)
        latent = w.unsqueeze(1).repeat(1, self.n_latent, 1) if w.ndim == 2 else w
        noise = [None] * self.num_layers if randomize_noise else \
            [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        out = self.input(latent.shape[0])
        out = self.conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for c1, c2, n1, n2, rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs):
            out = c1(out, latent[:, i], n1)
            out = c2(out, latent[:, i + 1], n2)
            skip = rgb(out, latent[:, i + 2], skip)
            i += 2
        return (skip, latent) if return_latents else skip


class ConvLayer(nn.Sequential):
    def __init__(self, cin, cout, k, downsample=False, blur_kernel=(1, 3, 3, 1), bias=True, activate=True):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (k - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, k // 2
        layers.append(EqualConv2d(cin, cout, k, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(cout, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, downsample=True)
        self.skip = ConvLayer(cin, cout, 1, downsample=True, activate=False, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    def __init__(self, size=1024, channel_multiplier=2, channel_max=512):
        super().__init__()
        ch = channels_for(channel_multiplier, channel_max)
        log_size = int(math.log2(size))
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        cin = ch[size]
        for i in range(log_size, 2, -1):
            convs.append(ResBlock(cin, ch[2 ** (i - 1)]))
            cin = ch[2 ** (i - 1)]
        self.convs = nn.Sequential(*convs)
        self.stddev_group, self.stddev_feat = 4, 1
        self.final_conv = ConvLayer(cin + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activation="fused_lrelu"),
                                          EqualLinear(ch[4], 1))

    def forward(self, x):
        out = self.convs(x)
        b, c, h, w = out.shape
        g = min(b, self.stddev_group)
        while b % g:
            g -= 1
        std = out.view(g, -1, self.stddev_feat, c // self.stddev_feat, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, std.repeat(g, 1, h, w)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.view(b, -1))


# --------------------------------------------------------------------------------------------
# checkpoints, layer swapping


def load_rosinality(path: str | Path, config: dict | None = None) -> tuple[Generator, Discriminator | None, dict]:
    """Load ``{"g_ema": state_dict, "d": state_dict (optional), ...}``. The architecture is read
    from the state dict (size from the number of layers, style_dim, n_mlp, channel counts)."""
    ckpt = load_checkpoint(path, needs=("g_ema",))
    g_state = ckpt["g_ema"]
    cfg = dict(config or ckpt.get("config") or infer_config(g_state))
    g = Generator(**cfg)
    g.load_state_dict(g_state)
    d = None
    if "d" in ckpt:
        d = Discriminator(cfg["size"], cfg.get("channel_multiplier", 2), cfg.get("channel_max", 512))
        d.load_state_dict(ckpt["d"])
    return g, d, cfg


def infer_config(g_state: dict) -> dict:
    n_mlp = sum(1 for k in g_state if k.startswith("style.") and k.endswith(".weight"))
    style_dim = g_state["style.1.weight"].shape[0]
    n_convs = sum(1 for k in g_state if k.startswith("convs.") and k.endswith(".conv.weight"))
    size = 2 ** (n_convs // 2 + 2)
    ch = {2 ** (i // 2 + 3): g_state[f"convs.{i}.conv.weight"].shape[1] for i in range(0, n_convs, 2)}
    ch[4] = g_state["input.input"].shape[1]
    cmax = max(ch.values())
    cm = 2
    if size >= 64:
        cm = max(1, ch[64] // 256) if ch[64] < cmax else 2
    return {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "channel_multiplier": cm, "channel_max": cmax}


def layer_resolution(name: str) -> int:
    """Output resolution of the generator layer a parameter belongs to (0 for the mapping net)."""
    if name.startswith("style."):
        return 0
    if name.startswith(("input.", "conv1.", "to_rgb1.")):
        return 4
    if name.startswith("convs."):
        return 2 ** (int(name.split(".")[1]) // 2 + 3)
    if name.startswith("to_rgbs."):
        return 2 ** (int(name.split(".")[1]) + 3)
    if name.startswith("noises.noise_"):
        return 2 ** ((int(name.split("_")[-1]) + 5) // 2)
    return 0


def layer_swap(low: Generator, high: Generator, swap_res: int) -> Generator:
    """A generator with ``low``'s layers up to ``swap_res`` px (and its mapping network) and
    ``high``'s layers above. DCT-Net: low = the source (content), high = the fine-tuned (style)."""
    out = copy.deepcopy(high)
    lo, hi = low.state_dict(), high.state_dict()
    out.load_state_dict({k: (lo[k] if layer_resolution(k) <= swap_res else hi[k]) for k in hi})
    return out


# --------------------------------------------------------------------------------------------
# fine-tuning



def _images_tensor(files: list[Path], size: int) -> torch.Tensor:
    arr = np.stack([read_bgr(p, 256)[..., ::-1] for p in files]).astype(np.float32) / 127.5 - 1.0
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    return F.interpolate(x, size=(size, size), mode="area" if size < 256 else "bilinear",
                         align_corners=None if size < 256 else False) if size != 256 else x


def _save_rgb(path: Path, img: torch.Tensor, size: int) -> None:
    import cv2

    if img.shape[-1] != size:
        img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    arr = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    cv2.imwrite(str(path), arr[..., ::-1])


def run_ccn(settings: CCNSettings) -> Path:
    """Fine-tune, layer-swap and sample; returns the samples folder."""
    s = settings
    torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    dev = torch.device(s.device)
    out = Path(s.out)

    if s.ckpt:
        g_src, d, cfg = load_rosinality(s.ckpt)
    else:
        cfg = {"size": s.size, "style_dim": s.style_dim, "n_mlp": s.n_mlp,
               "channel_multiplier": s.channel_multiplier, "channel_max": s.channel_max}
        g_src, d = Generator(**cfg), None
    if d is None:
        d = Discriminator(cfg["size"], cfg["channel_multiplier"], cfg["channel_max"])
    g_src = g_src.to(dev).eval().requires_grad_(False)
    g = copy.deepcopy(g_src).train().requires_grad_(True)
    g_ema = copy.deepcopy(g_src)
    d = d.to(dev)
    step = 0
    if s.resume and (out / "checkpoint.pt").exists():
        ck = load_checkpoint(out / "checkpoint.pt", dev, needs=("g", "g_ema", "d", "g_optim", "d_optim", "step"))
        g.load_state_dict(ck["g"])
        g_ema.load_state_dict(ck["g_ema"])
        d.load_state_dict(ck["d"])
        step = ck["step"]
    for blk in list(d.convs)[: s.freeze_d]:
        blk.requires_grad_(False)
    g.style.requires_grad_(False)  # the mapping network stays the source's (latent space shared)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], s.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam([p for p in d.parameters() if p.requires_grad], s.lr, betas=(0.0, 0.99))
    if s.resume and (out / "checkpoint.pt").exists():
        opt_g.load_state_dict(ck["g_optim"])
        opt_d.load_state_dict(ck["d_optim"])

    real_all = _images_tensor(dataset_files(Path(s.styles), "train"), cfg["size"]).to(dev)
    t0 = time.time()
    log_lines: list[str] = []
    while step < s.steps:
        idx = torch.randint(0, real_all.shape[0], (s.batch,))
        real = real_all[idx]
        real = torch.where(torch.rand(s.batch, 1, 1, 1, device=dev) < 0.5, real, real.flip(3))
        z = torch.randn(s.batch, cfg["style_dim"], device=dev)

        fake = g(z)
        d_loss = F.softplus(d(fake.detach())).mean() + F.softplus(-d(real)).mean()
        if s.r1 > 0 and step % 4 == 0:
            real.requires_grad_(True)
            (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
            d_loss = d_loss + s.r1 / 2 * grad.pow(2).sum([1, 2, 3]).mean() * 4
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        fake = g(z)
        g_loss = F.softplus(-d(fake)).mean()
        if s.id_weight > 0:
            with torch.no_grad():
                src = g_src(z)
            g_loss = g_loss + s.id_weight * F.l1_loss(F.adaptive_avg_pool2d(fake, 8), F.adaptive_avg_pool2d(src, 8))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        with torch.no_grad():  # EMA of the fine-tuned weights
            for pe, p in zip(g_ema.parameters(), g.parameters()):
                pe.lerp_(p, 1 - 0.5 ** (32 / (10 * 1000)))  # rosinality's rate
        step += 1
        if not (math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())):
            raise FloatingPointError(f"non-finite loss at step {step}")
        log_lines.append(f"step {step} d {d_loss.item():.4f} g {g_loss.item():.4f} t {time.time() - t0:.1f}\n")
    out.mkdir(parents=True, exist_ok=True)  # made at the first write: a run refused at its start leaves none
    with open(out / "log.txt", "a") as log:
        log.writelines(log_lines)
    state = {"g": g.state_dict(), "g_ema": g_ema.state_dict(), "d": d.state_dict(), "g_optim": opt_g.state_dict(),
             "d_optim": opt_d.state_dict(), "step": step, "config": cfg, "settings": asdict(s)}
    save_checkpoint(state, out / "checkpoint.pt")

    swapped = layer_swap(g_src, g_ema, s.swap_res).eval()
    torch.save({"g_ema": swapped.state_dict(), "config": cfg, "swap_res": s.swap_res}, out / "swapped.pt")
    sample(swapped, out / "samples", s.samples, s.sample_size, s.truncation, s.seed, s.batch)
    return out / "samples"


@torch.no_grad()
def sample(g: Generator, folder: Path, n: int, size: int, truncation: float = 0.7, seed: int = 0,
           batch: int = 8) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    mean = g.mean_latent(1024) if truncation < 1 else None
    paths = []
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), g.style_dim, device=g.input.input.device)
        imgs = g(z, truncation=truncation, truncation_latent=mean, randomize_noise=False)
        for j, img in enumerate(imgs.cpu()):
            p = folder / f"ccn_{start + j:06d}.jpg"
            _save_rgb(p, img, size)
            paths.append(p)
    return paths
