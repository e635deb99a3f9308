"""Texture translation network (TTN) trainer: DCT-Net's recipe in PyTorch, one file.

The whole model lives here: the generator (White-box Cartoonization's ``unet_generator`` with the
exact TensorFlow semantics of :mod:`dctoon.ttn`, so trained weights export unchanged), the two
spectral-norm patch discriminators, the losses, the online geometry calibration, the training loop
with resumable checkpoints and sample grids, and ``export`` to the project's style format.

Recipe (DCT-Net, SIGGRAPH 2022, section 3.2, built on White-box Cartoonization):

- geometry calibration: every batch of both domains is randomly flipped, scaled and rotated (online);
- the generator output is refined by a guided filter (r=1, eps=5e-3) with the photo as guide, as at
  inference, and every loss sees the refined output;
- surface discriminator: real cartoons vs outputs, both smoothed by an edge-preserving guided
  filter (r=5, eps=0.2): judges flat colour regions;
- texture discriminator: real cartoons vs outputs, both turned grey with random channel weights
  (White-box's colour shift): judges lines and texture without colour;
- content loss keeping the photo's structure (see ``ContentLoss``), total variation, an optional
  expression term (the structure loss re-weighted around the 5 facial landmarks);
- LSGAN losses, Adam (lr 2e-4, betas 0.5/0.99).

Additions, each optional (weight 0 by default): White-box's superpixel structure term (SLIC cells or
Felzenszwalb regions), a colour-edge part of the content loss, shift equivariance (``shift_loss``),
CartoonGAN's edge-promoting negatives (``soften_edges``), an outline term (``outline_mask``) that
inks where XDoG finds lines, and a paired target: a cartoon abstraction of each photo (``abstraction``).

Content loss without downloadable VGG weights: by default ``ContentLoss`` compares a low-pass
(blur + 4x downsample) version of photo and output with L1 and the gradients of the blurred grey
images at half resolution. The low-pass term keeps identity, colour layout and shading; the
gradient term keeps the shape of eyes, mouth and outlines; neither constrains fine texture, which
is left to the discriminators. ``--vgg-weights`` switches to White-box's pretrained-VGG19 conv4_4
L1 loss (torchvision's ``vgg19`` state dict file).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dctoon.errors import InputError, ModelError
from dctoon.ttn import DEFAULT_SHARPNESS, LEAKY_SLOPE, LUMA_BGR, config_of, conv_specs

from ._util import LANDMARKS_FILE, dataset_files, read_bgr
from .settings import TTNSettings

# --------------------------------------------------------------------------------------------
# generator: unet_generator with TensorFlow semantics


def _same_pad(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """TF "SAME" padding (extra row/column at the bottom/right)."""
    h, w = x.shape[-2:]
    ph = max((-(-h // stride) - 1) * stride + k - h, 0)
    pw = max((-(-w // stride) - 1) * stride + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def upsample2x_legacy(x: torch.Tensor) -> torch.Tensor:
    """TF1 ``resize_bilinear`` to twice the size without half-pixel centres: output 2i is input i,
    output 2i+1 is the mean of inputs i and i+1 (the last one repeated at the border)."""
    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        nxt = torch.cat([t.narrow(dim, 1, t.shape[dim] - 1), t.narrow(dim, t.shape[dim] - 1, 1)], dim)
        both = torch.stack([t, 0.5 * (t + nxt)], dim + 1)
        shape = list(t.shape)
        shape[dim] *= 2
        return both.reshape(shape)

    return along(along(x, 2), 3)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3)
        self.conv2 = nn.Conv2d(c, c, 3)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(_same_pad(x, 3, 1)), LEAKY_SLOPE)
        return x + self.conv2(_same_pad(h, 3, 1))


class Generator(nn.Module):
    """unet_generator; parameter names equal :func:`dctoon.ttn.conv_specs` names, so
    ``state_dict()`` is the project's weights dict. BGR in [-1, 1], NCHW."""

    def __init__(self, channel: int = 32, num_blocks: int = 4):
        super().__init__()
        self.channel, self.num_blocks = channel, num_blocks
        for spec in conv_specs(channel, num_blocks):
            if spec.name.startswith("block"):
                continue
            setattr(self, spec.name, nn.Conv2d(spec.cin, spec.cout, spec.k, spec.stride))
        for i in range(num_blocks):
            setattr(self, f"block{i}", ResBlock(4 * channel))
        self._strides = {s.name: (s.k, s.stride) for s in conv_specs(channel, num_blocks)}

    def _c(self, name: str, x, act: bool = True):
        k, s = self._strides[name]
        y = getattr(self, name)(_same_pad(x, k, s))
        return F.leaky_relu(y, LEAKY_SLOPE) if act else y

    def forward(self, x):
        x0 = self._c("enc0", x)
        x1 = self._c("enc1", self._c("down1", x0))
        x2 = self._c("enc2", self._c("down2", x1))
        for i in range(self.num_blocks):
            x2 = getattr(self, f"block{i}")(x2)
        x2 = self._c("dec2", x2)
        x3 = self._c("dec1", self._c("up1", upsample2x_legacy(x2) + x1))
        x4 = self._c("up0", upsample2x_legacy(x3) + x0)
        return self._c("out", x4, act=False)

    def numpy_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}

    def load_numpy_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in weights.items()})  # a copy: may be read-only


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    c = x.shape[1]
    k = 2 * r + 1
    return F.conv2d(x, x.new_ones(c, 1, k, k), padding=r, groups=c)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int = 1, eps: float = 5e-3) -> torch.Tensor:
    """Guided filter with zero-padded box sums normalised by the in-bounds count (as dctoon.ttn)."""
    n = box_filter(guide.new_ones(1, 1, *guide.shape[-2:]), r)
    mean_x, mean_y = box_filter(guide, r) / n, box_filter(src, r) / n
    cov = box_filter(guide * src, r) / n - mean_x * mean_y
    var = box_filter(guide * guide, r) / n - mean_x * mean_x
    a = cov / (var + eps)
    b = mean_y - a * mean_x
    return box_filter(a, r) / n * guide + box_filter(b, r) / n


# --------------------------------------------------------------------------------------------
# discriminators and representations


class PatchDiscriminator(nn.Module):
    """White-box's ``disc_sn``: three (stride-2, stride-1) pairs of 3x3 spectral-norm convolutions
    with LeakyReLU, then a 1x1 convolution giving one real/fake score per patch."""

    def __init__(self, cin: int, channel: int = 32, layers: int = 3):
        super().__init__()
        sn = nn.utils.spectral_norm
        mods: list[nn.Module] = []
        c_prev = cin
        for i in range(layers):
            c = channel * 2 ** i
            mods += [sn(nn.Conv2d(c_prev, c, 3, 2, 1)), nn.LeakyReLU(LEAKY_SLOPE),
                     sn(nn.Conv2d(c, c, 3, 1, 1)), nn.LeakyReLU(LEAKY_SLOPE)]
            c_prev = c
        mods.append(sn(nn.Conv2d(c_prev, 1, 1)))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


def surface_rep(x: torch.Tensor) -> torch.Tensor:
    """Surface representation: the image smoothed by itself (edge-preserving, r=5, eps=0.2)."""
    return guided_filter(x, x, 5, 0.2)


def texture_rep(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Texture representation: grey image with random channel weights (BGR input), per sample."""
    n = x.shape[0]
    lo = x.new_tensor([0.014, 0.487, 0.199])  # B, G, R weight ranges: [lo, lo + 0.2]
    w = lo + 0.2 * torch.rand(n, 3, generator=gen).to(x)
    grey = (x * w[:, :, None, None]).sum(1, keepdim=True) / w.sum(1)[:, None, None, None]
    return grey


def superpixel_rep(x: torch.Tensor, segments: int = 150, method: str = "slic") -> torch.Tensor:
    """Structure representation (White-box): the image cut into regions, each filled with its mean
    colour. Pulling the output toward it (detached) rewards flat regions bounded by the output's own
    edges, the flat-colour look that neither discriminator alone reaches quickly. ``slic``: about
    ``segments`` compact superpixels, which also cross soft edges (a smoothing target).
    ``felzenszwalb``: graph regions that follow the colour edges (the base of White-box's selective
    search), so shading splits into flat bands: a posterising target."""
    from skimage.segmentation import felzenszwalb, slic

    arr = x.detach().permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    out = np.empty_like(arr)
    for i, im in enumerate(arr):
        rgb = np.clip((im[..., ::-1] + 1) / 2, 0, 1)
        if method == "felzenszwalb":  # scale 50 on 0-255 colours; regions of at least 20 px
            labels = felzenszwalb(rgb * 255, scale=50, sigma=0.8, min_size=20).ravel()
        else:
            labels = slic(rgb, n_segments=segments, compactness=10, start_label=0, channel_axis=-1).ravel()
        count = np.maximum(np.bincount(labels), 1)
        flat = im.reshape(-1, 3)
        means = np.stack([np.bincount(labels, flat[:, c]) / count for c in range(3)], 1)
        out[i] = means[labels].reshape(im.shape)
    return torch.from_numpy(out).float().permute(0, 3, 1, 2).to(x.device)


def soften_edges(x: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """CartoonGAN's edge-promoting negatives: the image with its strongest edges (the top
    ``fraction`` of gradient magnitudes, widened by 1 px) replaced by a blurred copy. Shown to the
    texture critic as fakes, they teach it that soft outlines are not the style, so the generator is
    pushed toward the crisp lines the exemplars have and the content loss never asks for."""
    g = _gradients(_grey(_gauss_blur(x, 0.7))).abs().sum(1, keepdim=True)
    g = F.pad(g, (0, 1, 0, 1), mode="replicate")
    cut = torch.quantile(g.flatten(1), 1.0 - fraction, dim=1)[:, None, None, None]
    edges = F.max_pool2d((g >= cut).float(), 3, 1, 1)
    return torch.lerp(x, _gauss_blur(x, 1.5), edges)


def outline_mask(photo: torch.Tensor, threshold: float = 0.015, sigma: float = 1.0) -> torch.Tensor:
    """Where a cartoonist would ink (XDoG): pixels darker than their surroundings (a difference of two
    Gaussians) in the photo's grey, contrast-stretched per image (2nd-98th percentile, so dim photos
    get lines too) and flattened by an edge-preserving filter. Soft mask in [0, 1]; 3-4% of a face
    crop: eyes, brows, nostrils, lips, jaw and hair outlines, but not skin grain."""
    g = _grey(photo)
    q = torch.quantile(g.flatten(1), g.new_tensor([0.02, 0.98]), dim=1).T[:, :, None, None]
    g = (g - q[:, :1]) / (q[:, 1:] - q[:, :1]).clamp_min(0.1)
    g = guided_filter(g, g, 4, 0.01)
    dog = _gauss_blur(g, 1.6 * sigma) - _gauss_blur(g, sigma)
    return ((dog - threshold) / 0.03).clamp(0, 1).detach()


def abstraction(bgr: np.ndarray, levels: int = 8, phi: float = 3.0, ink: float = 0.7) -> np.ndarray:
    """A cartoon abstraction of a photo (Winnemoeller et al., "Real-time video abstraction", 2006):
    two bilateral passes flatten skin and hair texture, luminance is quantized into ``levels`` soft
    bands (a tanh of sharpness ``phi`` around each step: Winnemoeller's soft step, meant to keep band
    edges from jumping between video frames; not measured here) and dark difference-of-Gaussians
    lines are inked up to ``ink`` darker. Shading survives as flat
    bands, which is what keeps the eye sockets and nose a face detector looks for: of 113 held-out
    faces 107 stay detected, one fewer than in the shipped anime model's outputs. uint8 BGR."""
    import cv2

    x = cv2.bilateralFilter(cv2.bilateralFilter(bgr, 9, 30, 5), 9, 30, 5)
    lab = cv2.cvtColor(x, cv2.COLOR_BGR2LAB).astype(np.float32)
    step = 255.0 / levels
    nearest = np.round(lab[..., 0] / step) * step
    lab[..., 0] = np.clip(nearest + step / 2 * np.tanh(2 * phi * (lab[..., 0] - nearest) / step), 0, 255)
    out = cv2.cvtColor(lab.round().astype(np.uint8), cv2.COLOR_LAB2BGR).astype(np.float32)
    g = cv2.bilateralFilter(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255, 9, 0.1, 5)
    dog = cv2.GaussianBlur(g, (0, 0), 1.0) - 0.98 * cv2.GaussianBlur(g, (0, 0), 1.6)
    edge = np.where(dog > -0.005, 1.0, 1 + np.tanh(40 * (dog + 0.005)))  # 1 off the lines, toward 0 on them
    return np.clip(out * (1 - ink + ink * edge[..., None]), 0, 255).round().astype(np.uint8)


def tone_bands(x: torch.Tensor, levels: int, sharpness: float = DEFAULT_SHARPNESS) -> torch.Tensor:
    """The generator's optional last layer, :func:`dctoon.ttn.tone_bands` in torch: luminance in
    ``levels`` soft bands (flat shading), the colour kept. The backward pass is the identity (a
    straight-through estimator, as in quantisation-aware training): the bands' plateaus have almost
    no slope, so the exact gradient would leave most pixels untrained. The losses see the bands."""
    t = levels * (_grey(x) + 1) / 2
    nearest = torch.round(t)
    q = nearest + 0.5 * torch.tanh(2 * sharpness * (t - nearest))
    return x + (2 * (q - t) / levels).detach()


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def shift_loss(g, photo: torch.Tensor, out: torch.Tensor, gen: torch.Generator, margin: int = 8) -> torch.Tensor:
    """Shift equivariance: the output of the photo moved by 1-3 px (a crop) against the same crop
    of ``out = g(photo)``. The generator's two stride-2 levels give it a 4 px grid; patterns locked
    to that grid (the dashed streaks along edges a strong texture critic provokes) do not move with
    the picture, while real lines do. The same term keeps a moving head's texture steady in video.
    ``margin`` px at the borders are left out (zero padding differs there)."""
    k = int(torch.randint(1, 16, (1,), generator=gen))  # (dy, dx) in 0..3 each, never both 0
    dy, dx = divmod(k, 4)
    h, w = photo.shape[-2] - 4, photo.shape[-1] - 4
    h, w = h - h % 4, w - w % 4
    moved = g(photo[..., dy:dy + h, dx:dx + w])
    same = out[..., dy:dy + h, dx:dx + w]
    inner = (..., slice(margin, -margin), slice(margin, -margin))
    return F.l1_loss(moved[inner], same[inner])


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _grey(x: torch.Tensor) -> torch.Tensor:
    b, g, r = LUMA_BGR
    return b * x[:, 0:1] + g * x[:, 1:2] + r * x[:, 2:3]


def _chroma(x: torch.Tensor) -> torch.Tensor:
    """Colour without brightness (B-Y, R-Y): what the grey texture critic cannot see."""
    y = _grey(x)
    return torch.cat([x[:, 0:1] - y, x[:, 2:3] - y], 1)


def _gradients(x: torch.Tensor) -> torch.Tensor:
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return torch.cat([dx[..., :-1, :], dy[..., :, :-1]], 1)


VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512]  # up to conv4_4


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` up to relu4_4 (same indices, so its state dict loads)."""

    def __init__(self):
        super().__init__()
        mods: list[nn.Module] = []
        c = 3
        for v in VGG19_CFG:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*mods)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, bgr):  # [-1, 1] BGR -> relu4_4 features
        rgb = (bgr.flip(1) + 1) / 2
        return self.features((rgb - self.mean) / self.std)


class ContentLoss(nn.Module):
    """Structure-keeping content loss (see module docstring); pretrained VGG19 when given weights."""

    def __init__(self, vgg_weights: str | None = None, lowpass_weight: float = 1.0, grad_weight: float = 1.0,
                 flatten: bool = True, chroma_weight: float = 0.0, structure_floor: float = 0.0):
        super().__init__()
        self.vgg = None
        self.flatten, self.structure_floor = flatten, structure_floor
        self.lowpass_weight, self.grad_weight, self.chroma_weight = lowpass_weight, grad_weight, chroma_weight
        if vgg_weights:
            vgg = VGG19Features()
            state = torch.load(vgg_weights, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if k.startswith("features.")}
            missing = vgg.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                                    if int(k.split(".")[1]) < len(vgg.features)}, strict=False)
            if missing.missing_keys:
                raise ModelError(f"VGG19 weights file lacks {missing.missing_keys[:4]}")
            self.vgg = vgg.eval().requires_grad_(False)

    def lowpass(self, x):
        return F.avg_pool2d(_gauss_blur(x, 1.5), 4)

    def flat(self, photo):
        """Structure target: the photo flattened by an edge-preserving filter (the surface
        representation), so outlines and facial features count but skin and hair texture do not
        (the role superpixels play in White-box's structure loss)."""
        return guided_filter(photo, photo, 4, 0.04).detach() if self.flatten else photo

    def structure(self, x):
        return _gradients(_grey(F.avg_pool2d(_gauss_blur(x, 1.0), 2)))

    def floored(self, gp):
        """Structure maps with gradients weaker than ``structure_floor`` (gentle shading) set to zero:
        L1 on gradients is indifferent between a ramp and a step of the same rise, so outlines and
        features stay pinned while shading is free to settle into flat tones."""
        return gp * (gp.abs() > self.structure_floor) if self.structure_floor > 0 else gp

    def forward(self, photo, out, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The content loss, and the expression term: the structure error weighted by ``mask``
        (Gaussian spots at the 5 landmarks: eyes, nose, mouth corners) so expressions survive
        stylisation; zero without a mask. Both share one set of structure maps; the expression term
        keeps the shading the floor lets go (eye sockets, the nose: what a face detector looks for)."""
        need_maps = self.vgg is None or mask is not None
        flat = self.flat(photo) if need_maps or self.chroma_weight else None
        if self.vgg is not None:
            loss = F.l1_loss(self.vgg(out), self.vgg(photo))
        else:
            loss = self.lowpass_weight * F.l1_loss(self.lowpass(out), self.lowpass(photo))
        expr = out.new_zeros(())
        if need_maps:
            gp, go = self.structure(flat), self.structure(out)
            if self.vgg is None:
                loss = loss + self.grad_weight * (go - self.floored(gp)).abs().mean() * 4.0
            if mask is not None:
                m = F.avg_pool2d(mask, 2)[..., : gp.shape[-2], : gp.shape[-1]]
                expr = ((go - gp).abs() * m).sum() / (m.sum() * gp.shape[1] + 1e-6) * 4.0
        if self.chroma_weight:
            # colour edges at full resolution follow the photo's: the texture critic judges grey lines
            # drawn with any channel mix, and without this the cheapest line is a green/magenta fringe
            cp, co = _gradients(_chroma(flat)), _gradients(_chroma(out))
            loss = loss + self.chroma_weight * (co - cp).abs().mean() * 4.0
        return loss, expr


# --------------------------------------------------------------------------------------------
# data and geometry calibration


def load_folder(files: list[Path], size: int = 256) -> torch.Tensor:
    """All images as one uint8 BGR tensor [N, 3, size, size] (small data sets fit in memory)."""
    arr = np.stack([read_bgr(p, size) for p in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _landmark_mask(landmarks: np.ndarray | None, size: int, n: int) -> torch.Tensor:
    """Gaussian spots (sigma ~ size/20) at the landmarks, [n, 1, size, size]."""
    out = torch.zeros(n, 1, size, size)
    if landmarks is None:
        return out
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    sigma = size / 20
    for i in range(n):
        for x, y in landmarks[i]:
            out[i, 0] += torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return out.clamp_(0, 1)


def geometry_batch(images: torch.Tensor, idx: torch.Tensor, res: int, crop: tuple[float, float],
                   rotate: float, gen: torch.Generator, extra: torch.Tensor | None = None):
    """Geometry calibration: random flip, scale (a window covering ``crop`` of the side) and rotation
    (+-``rotate`` degrees), resampled to ``res`` px. Returns float BGR in [-1, 1] (and ``extra``
    warped the same way)."""
    x = images[idx].float() / 127.5 - 1.0
    n = x.shape[0]
    c = crop[0] + (crop[1] - crop[0]) * torch.rand(n, generator=gen)
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rotate)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - c)
    ty = (torch.rand(n, generator=gen) * 2 - 1) * (1 - c)
    cos, sin = torch.cos(ang) * c, torch.sin(ang) * c
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 3, res, res), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if extra is None:
        return out, None
    return out, F.grid_sample(extra[idx], grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------------------------
# settings and training loop



def _save_grid(path: Path, rows: list[torch.Tensor]) -> None:
    import cv2

    cols = []
    for t in rows:
        t = ((t.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        cols.append(np.concatenate(list(t), 0))
    cv2.imwrite(str(path), np.concatenate(cols, 1))


def stop_deadline(stop_at: str | None, now: float | None = None) -> float:
    """Epoch seconds of the next HH:MM UTC after ``now`` (tomorrow's when today's has passed, so a
    run started at 23:00 with ``--stop-at 01:00`` trains two hours); infinity without a stop time."""
    if not stop_at:
        return math.inf
    now = time.time() if now is None else now
    hh, _, mm = stop_at.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise InputError(f"--stop-at wants a UTC time HH:MM, got {stop_at!r}")
    hh, mm = int(hh), int(mm)
    day = now - now % 86400
    deadline = day + hh * 3600 + mm * 60
    return deadline if deadline > now else deadline + 86400


RANDOM_INIT = "random (He/PyTorch default) + content-only warm-up"


def style_weights(name: str) -> tuple[dict[str, np.ndarray], str]:
    """A style's head-model weights, to fine-tune (run folders and their checkpoints are not kept,
    styles are), and the lineage line the model card records for them."""
    from dctoon import styles
    from dctoon.importers import read_any

    style = styles.resolve(name)
    training = style.card.get("training", {})
    before = f", {training['steps']} steps from {training.get('init', RANDOM_INIT)}" if "steps" in training else ""
    return read_any(style.head).weights, f"the head model of style {style.name}{before}"


class Trainer:
    def __init__(self, s: TTNSettings):
        self.s = s
        self.deadline = stop_deadline(s.stop_at)  # first: a bad --stop-at or --init fails before the data loads
        start = style_weights(s.init) if s.init else None
        torch.set_num_threads(s.threads)
        torch.manual_seed(s.seed)
        self.dev = torch.device(s.device)
        self.out = Path(s.out)
        (self.out / "samples").mkdir(parents=True, exist_ok=True)
        self.gen = torch.Generator().manual_seed(s.seed)

        photo_files = dataset_files(Path(s.photos), "train", s.holdout)
        style_files = dataset_files(Path(s.styles), "train", 0.0)
        if not photo_files or not style_files:
            raise InputError(f"no training images: {len(photo_files)} photos, {len(style_files)} exemplars")
        self.photos = load_folder(photo_files)
        if s.w_abstract > 0:  # each photo's abstraction rides along as 3 more channels: warped with it
            hwc = self.photos.permute(0, 2, 3, 1).numpy()
            targets = torch.from_numpy(np.stack([abstraction(im) for im in hwc])).permute(0, 3, 1, 2)
            self.photos = torch.cat([self.photos, targets], 1)
        self.styles = load_folder(style_files)
        self.n_photos, self.n_styles = len(photo_files), len(style_files)
        self.masks = None
        if s.w_expression > 0:
            lm_path = Path(s.photos) / LANDMARKS_FILE
            lms = json.loads(lm_path.read_text()) if lm_path.exists() else {}
            arr = np.array([lms.get(p.name, [[89.6, 110.0], [166.4, 110.0], [128, 148], [96, 182], [160, 182]])
                            for p in photo_files], np.float32)  # fallback: template of an aligned 256 face
            self.masks = _landmark_mask(arr, 256, len(photo_files))

        self.G = Generator(*(config_of(start[0]) if start else (32, 4))).to(self.dev)  # a student keeps its width
        self.Ds = PatchDiscriminator(3).to(self.dev)
        self.Dt = PatchDiscriminator(1).to(self.dev)
        self.content = ContentLoss(s.vgg_weights, s.lowpass_weight, s.grad_weight, s.flatten,
                                   s.chroma_weight, s.structure_floor).to(self.dev)
        self.opt_g = torch.optim.Adam(self.G.parameters(), s.lr, betas=(0.5, 0.99))
        self.opt_d = torch.optim.Adam(list(self.Ds.parameters()) + list(self.Dt.parameters()), s.lr,
                                      betas=(0.5, 0.99))
        self.step = 0
        self.elapsed = 0.0
        self.init = RANDOM_INIT
        self.fixed = torch.arange(0, self.n_photos, max(1, self.n_photos // 6))[:6]
        if s.resume and (self.out / "checkpoint.pt").exists():
            self.load(self.out / "checkpoint.pt")
        elif start is not None:
            self.G.load_numpy_weights(start[0])
            self.init = start[1]

    # -- checkpoints
    def state(self) -> dict:
        return {"G": self.G.state_dict(), "Ds": self.Ds.state_dict(), "Dt": self.Dt.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step,
                "elapsed": self.elapsed, "settings": dataclasses.asdict(self.s), "rng": self.gen.get_state(),
                "torch_rng": torch.get_rng_state(), "n_photos": self.n_photos, "n_styles": self.n_styles,
                "init": self.init}

    def save(self, path: Path | None = None) -> Path:
        path = path or self.out / "checkpoint.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location=self.dev, weights_only=False)
        self.G.load_state_dict(st["G"])
        self.Ds.load_state_dict(st["Ds"])
        self.Dt.load_state_dict(st["Dt"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = self.s.lr  # the optimizer state carries the old run's rate: --lr of this run wins
        self.step, self.elapsed = st["step"], st["elapsed"]
        self.init = st.get("init", RANDOM_INIT)
        if Path(st["settings"]["styles"]).resolve() != Path(self.s.styles).resolve():
            # fine-tuning another style's weights: the model card must say where they came from
            self.init = f"the weights of a run on {_rel(st['settings']['styles'])} at step {self.step} ({self.init})"
        self.gen.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])

    # -- one step
    def batch(self, images, n, masks=None):
        idx = torch.randint(0, images.shape[0], (self.s.batch,), generator=self.gen)
        x, m = geometry_batch(images, idx, self.s.res, self.s.crop, self.s.rotate, self.gen, masks)
        return x.to(self.dev), (m.to(self.dev) if m is not None else None)

    def forward_g(self, photo):
        out = guided_filter(photo, self.G(photo), 1, 5e-3)
        return tone_bands(out, self.s.bands, self.s.band_sharpness) if self.s.bands else out

    def train_step(self) -> dict[str, float]:
        s = self.s
        photo, mask = self.batch(self.photos, self.n_photos, self.masks)
        photo, target = photo[:, :3], photo[:, 3:]  # target: the abstraction, when the term is on
        logs: dict[str, float] = {}
        if self.step < s.warmup:  # content-only warm-up: reconstruct the photo
            out = self.G(photo)
            loss = F.l1_loss(out, photo)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
            self.step += 1
            return {"recon": loss.item()}

        cartoon, _ = self.batch(self.styles, self.n_styles)
        out = self.forward_g(photo)

        # discriminators (LSGAN)
        tgen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=self.gen)))
        fake_s, real_s = surface_rep(out.detach()), surface_rep(cartoon)
        tex_in = torch.cat([out.detach(), cartoon])
        tex = texture_rep(tex_in, tgen)
        fake_t, real_t = tex[: photo.shape[0]], tex[photo.shape[0]:]
        d_s = (self.Ds(real_s) - 1).pow(2).mean() + self.Ds(fake_s).pow(2).mean()
        d_t = (self.Dt(real_t) - 1).pow(2).mean() + self.Dt(fake_t).pow(2).mean()
        if s.w_edge > 0:
            d_t = d_t + s.w_edge * self.Dt(texture_rep(soften_edges(cartoon), tgen)).pow(2).mean()
        self.opt_d.zero_grad(set_to_none=True)
        (d_s + d_t).backward()
        self.opt_d.step()

        # generator
        g_s = (self.Ds(surface_rep(out)) - 1).pow(2).mean()
        g_t = (self.Dt(texture_rep(out, tgen)) - 1).pow(2).mean()
        # with the abstraction term the content loss keeps the abstraction's structure, not the photo's:
        # the photo's smooth shading would pin the output against the bands
        c, e = self.content(photo if s.w_abstract == 0 else target, out, mask)  # mask: with the expression term
        tv = tv_loss(out)
        loss = s.w_surface * g_s + s.w_texture * g_t + s.w_content * c + s.w_tv * tv
        if s.w_superpixel > 0 or s.w_lines > 0:  # one segmentation serves both terms
            segments = superpixel_rep(out, s.superpixels, s.segmenter)
        if s.w_superpixel > 0:
            sp = F.l1_loss(out, segments)
            loss = loss + s.w_superpixel * sp
            logs["superpixel"] = sp.item()
        if s.w_lines > 0:  # ink: the outlines in a dark shade (30%) of the output's own superpixel colour
            m = outline_mask(photo)
            ink = (m * (out - ((segments + 1) * 0.3 - 1)).abs()).sum() / (3 * m.sum()).clamp_min(16.0)
            loss = loss + s.w_lines * ink
            logs["lines"] = ink.item()
        if s.w_shift > 0:
            sh = shift_loss(self.forward_g, photo, out, self.gen)
            loss = loss + s.w_shift * sh
            logs["shift"] = sh.item()
        if s.w_abstract > 0:
            ab = F.l1_loss(out, target)
            loss = loss + s.w_abstract * ab
            logs["abstract"] = ab.item()
        if mask is not None:
            loss = loss + s.w_expression * e
            logs["expr"] = e.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.step += 1
        logs.update(d_s=d_s.item(), d_t=d_t.item(), g_s=g_s.item(), g_t=g_t.item(), content=c.item(),
                    tv=tv.item(), g=loss.item())
        return logs

    @torch.no_grad()
    def sample(self) -> Path:
        x = self.photos[self.fixed, :3].float() / 127.5 - 1.0  # full 256 px, as at inference
        self.G.eval()
        y = self.forward_g(x.to(self.dev))
        self.G.train()
        path = self.out / "samples" / f"{self.step:06d}.jpg"
        _save_grid(path, [x, y])
        return path

    def run(self) -> Path:
        s = self.s
        t_last = time.time()
        print(f"ttn: {self.n_photos} photos, {self.n_styles} exemplars, from step {self.step} to {s.steps}",
              flush=True)
        while self.step < s.steps:
            logs = self.train_step()
            now = time.time()
            self.elapsed += now - t_last
            t_last = now
            if not all(math.isfinite(v) for v in logs.values()):
                raise FloatingPointError(f"non-finite loss at step {self.step}: {logs}")
            if self.step % 25 == 0 or self.step == 1:
                rec = {"step": self.step, "elapsed_s": round(self.elapsed, 1),
                       **{k: round(v, 5) for k, v in logs.items()}}
                with open(self.out / "log.jsonl", "a") as log:
                    log.write(json.dumps(rec) + "\n")
                print(json.dumps(rec), flush=True)
            stop = now >= self.deadline
            if self.step % s.sample_every == 0:
                self.sample()
            if self.step % s.ckpt_every == 0 or self.step == s.steps or stop:
                self.save()
            if stop:
                print(f"ttn: stop time {s.stop_at} reached at step {self.step}", flush=True)
                break
        self.save()
        self.sample()
        return self.out / "checkpoint.pt"


def train_ttn(settings: TTNSettings) -> Path:
    """Train (or resume) a TTN; returns the checkpoint path."""
    return Trainer(settings).run()


# --------------------------------------------------------------------------------------------
# checkpoints to style cards (export itself: dctoon.train.export)


def load_generator(checkpoint: str | Path) -> tuple[Generator, dict]:
    if not Path(checkpoint).is_file():
        raise InputError(f"{checkpoint}: no such checkpoint")
    st = torch.load(checkpoint, map_location="cpu", weights_only=False)
    g = Generator(*config_of(st["G"]))  # any width: a distilled student is narrower
    g.load_state_dict(st["G"])
    return g.eval(), st


def _rel(p: str | None) -> str | None:
    return os.path.relpath(p) if p and os.path.isabs(p) else p


def training_card(st: dict, metrics: dict | None = None, command: str | None = None) -> dict:
    s = st["settings"]
    card = {
        "trainer": "dctoon.train.ttn (DCT-Net TTN recipe, PyTorch)",
        "data": {"photos": _rel(s["photos"]), "styles": _rel(s["styles"]), "n_photos_train": st.get("n_photos"),
                 "n_exemplars": st.get("n_styles"), "holdout": s["holdout"]},
        "steps": st["step"], "warmup_steps": s["warmup"], "batch": s["batch"],
        "resolution": f"{s['res']}px crops covering {s['crop'][0]:g}-{s['crop'][1]:g} of 256px images"
                      " (fully convolutional: runs at any size)",
        "hardware": "2-core CPU" if s["device"] == "cpu" else s["device"],
        "wall_time_s": round(st["elapsed"], 1),
        "losses": {k: s[k] for k in ("w_surface", "w_texture", "w_content", "w_tv", "w_expression", "w_superpixel",
                                     "w_shift", "w_edge", "w_lines", "w_abstract", "lowpass_weight", "grad_weight",
                                     "chroma_weight", "structure_floor") if k in s},
        "content_loss": ("vgg19-conv4_4" if s.get("vgg_weights") else "lowpass-L1 + gradient structure")
                        + (" + colour-edge (chroma gradients)" if s.get("chroma_weight") else ""),
        "init": st.get("init", RANDOM_INIT),
    }
    if s.get("bands"):
        card["tone_bands"] = {"levels": s["bands"], "sharpness": s["band_sharpness"]}
    if s.get("w_superpixel") or s.get("w_lines"):
        card["structure_regions"] = s.get("segmenter", "slic")
    if metrics:
        card["metrics"] = metrics
    if command:
        card["command"] = command
    return card
