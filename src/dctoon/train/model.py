"""The texture translation network in PyTorch, readable in one file: White-box Cartoonization's
``unet_generator`` with the exact TensorFlow semantics of :mod:`dctoon.network` (so trained weights
export unchanged, at any width) and the guided filter every trainer puts after it."""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dctoon.network import (FADE_GREY, FADE_SIGMA, FLAT_EPS, LAPLACIAN, LEAKY_SLOPE, LINE_DEPTH, LINE_SIGMAS,
                            LUMA_BGR, SHOCK_GAIN, SHOCK_SIGMA, SHOCK_SOFTNESS, conv_specs, gaussian_taps)




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


def to_tensor(u8: np.ndarray) -> torch.Tensor:
    """uint8 BGR [N, H, W, 3] as the generator's input: NCHW in [-1, 1]."""
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class ResBlock(nn.Module):
    """The two convolutions of a residual block (``Generator.forward`` runs them, so that every
    convolution can be tapped the same way)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3)
        self.conv2 = nn.Conv2d(c, c, 3)


class Generator(nn.Module):
    """unet_generator; parameter names equal :func:`dctoon.network.conv_specs` names, so
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

    def _c(self, name: str, x, taps: dict | None, act: bool = True):
        k, s = self._strides[name]
        y = self.get_submodule(name)(_same_pad(x, k, s))
        if taps is not None:
            taps[name] = (x, y)
        return F.leaky_relu(y, LEAKY_SLOPE) if act else y

    def forward(self, x, taps: dict | None = None):
        """``taps``, when given, receives each convolution's (input, output before the activation)
        under its name: what the compression (``dctoon.train.compress``) measures and refits."""
        x0 = self._c("enc0", x, taps)
        x1 = self._c("enc1", self._c("down1", x0, taps), taps)
        x2 = self._c("enc2", self._c("down2", x1, taps), taps)
        for i in range(self.num_blocks):
            h = self._c(f"block{i}.conv1", x2, taps)
            x2 = x2 + self._c(f"block{i}.conv2", h, taps, act=False)
        x2 = self._c("dec2", x2, taps)
        x3 = self._c("dec1", self._c("up1", upsample2x_legacy(x2) + x1, taps), taps)
        x4 = self._c("up0", upsample2x_legacy(x3) + x0, taps)
        return self._c("out", x4, taps, act=False)

    def numpy_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}

    def load_numpy_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in weights.items()})  # a copy: may be read-only


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    c = x.shape[1]
    k = 2 * r + 1
    return F.conv2d(x, x.new_ones(c, 1, k, k), padding=r, groups=c)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int = 1, eps: float = 5e-3) -> torch.Tensor:
    """Guided filter with zero-padded box sums normalised by the in-bounds count (as dctoon.network)."""
    n = box_filter(guide.new_ones(1, 1, *guide.shape[-2:]), r)
    mean_x, mean_y = box_filter(guide, r) / n, box_filter(src, r) / n
    cov = box_filter(guide * src, r) / n - mean_x * mean_y
    var = box_filter(guide * guide, r) / n - mean_x * mean_x
    a = cov / (var + eps)
    b = mean_y - a * mean_x
    return box_filter(a, r) / n * guide + box_filter(b, r) / n


def grey(x: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] BGR -> its luma [N,1,H,W]."""
    b, g, r = LUMA_BGR
    return b * x[:, 0:1] + g * x[:, 1:2] + r * x[:, 2:3]


def _blur(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """[N,1,H,W] blurred by a separable Gaussian, the border pixels repeated (as dctoon.network)."""
    taps = torch.tensor(gaussian_taps(sigma), dtype=y.dtype, device=y.device)
    r = len(taps) // 2
    g = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), taps.view(1, 1, -1, 1))
    return F.conv2d(F.pad(g, (r, r, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1))


def flat_fills(x: torch.Tensor, radius: int) -> torch.Tensor:
    """:func:`dctoon.network.flat_fills` on [N,3,H,W] BGR in [-1, 1], differentiable: what a style
    exported with ``--fill-radius`` does after the network, for terms that judge the exported look."""
    y = grey(x)
    flat = guided_filter(y, x, radius, FLAT_EPS)
    line = _blur(y, LINE_SIGMAS[0]) - _blur(y, LINE_SIGMAS[1]) < -LINE_DEPTH
    filled = torch.where(line, torch.minimum(x, flat), flat)
    lo, hi = FADE_GREY
    w = ((hi - (_blur(y, FADE_SIGMA) + 1) / 2) / (hi - lo)).clamp(0, 1)
    x = x + w * (filled - x)
    smooth = F.pad(_blur(grey(x), SHOCK_SIGMA), (1, 1, 1, 1), mode="replicate")  # the shock filter, as exported
    lap = F.conv2d(smooth, torch.tensor(LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3))
    top, bottom = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    snapped = (top + bottom) / 2 + torch.tanh(-lap / SHOCK_SOFTNESS) * (top - bottom) / 2
    return x + SHOCK_GAIN * (snapped - x)
