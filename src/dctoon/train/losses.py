"""What the TTN trainer judges an output by: the two patch critics and the image representations they
see (surface, texture), the content loss, and the optional terms (superpixel structure, outlines,
edge-promoting negatives, abstraction target, tone bands, total variation, shift equivariance)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dctoon.errors import ModelError
from dctoon.network import DEFAULT_SHARPNESS, LEAKY_SLOPE


from .model import grey, guided_filter



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
    g = _gradients(grey(_gauss_blur(x, 0.7))).abs().sum(1, keepdim=True)
    g = F.pad(g, (0, 1, 0, 1), mode="replicate")
    cut = torch.quantile(g.flatten(1), 1.0 - fraction, dim=1)[:, None, None, None]
    edges = F.max_pool2d((g >= cut).float(), 3, 1, 1)
    return torch.lerp(x, _gauss_blur(x, 1.5), edges)


def outline_mask(photo: torch.Tensor, threshold: float = 0.015, sigma: float = 1.0) -> torch.Tensor:
    """Where a cartoonist would ink (XDoG): pixels darker than their surroundings (a difference of two
    Gaussians) in the photo's grey, contrast-stretched per image (2nd-98th percentile, so dim photos
    get lines too) and flattened by an edge-preserving filter. Soft mask in [0, 1]; 3-4% of a face
    crop: eyes, brows, nostrils, lips, jaw and hair outlines, but not skin grain."""
    g = grey(photo)
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
    """The generator's optional last layer, :func:`dctoon.network.tone_bands` in torch: luminance in
    ``levels`` soft bands (flat shading), the colour kept. The backward pass is the identity (a
    straight-through estimator, as in quantisation-aware training): the bands' plateaus have almost
    no slope, so the exact gradient would leave most pixels untrained. The losses see the bands."""
    t = levels * (grey(x) + 1) / 2
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


def _chroma(x: torch.Tensor) -> torch.Tensor:
    """Colour without brightness (B-Y, R-Y): what the grey texture critic cannot see."""
    y = grey(x)
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
        return _gradients(grey(F.avg_pool2d(_gauss_blur(x, 1.0), 2)))

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


def dark_lines(x: torch.Tensor) -> torch.Tensor:
    """How far the grey image dips below its surroundings (difference of Gaussians, sigma 1.0 minus
    1.6, negative part, in grey levels / 3): thin dark strokes, as the artist-comparison metric finds them."""
    g = grey(x) * 127.5
    return F.relu(-(_gauss_blur(g, 1.0) - _gauss_blur(g, 1.6))) / 3.0


def _mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` [N, C, H, W], each pixel counted by ``weight`` [N, 1, H', W'] (cut to x's size)."""
    if weight is None:
        return x.mean()
    w = weight[..., : x.shape[-2], : x.shape[-1]]
    return (x * w).sum() / (w.sum() * x.shape[1]).clamp_min(1.0)


def ink_loss(out: torch.Tensor, drawing: torch.Tensor, saturate: float = 2.0,
             weight: torch.Tensor | None = None) -> torch.Tensor:
    """Strokes where the drawing has them, give or take a pixel: our dark lines with none of the
    drawing's within 1 px, plus the drawing's with none of ours within 1 px. The tolerance matters: an
    artist's line is rarely on the photo's edge to the pixel, and a plain L1 is cheapest with no line."""
    ours, theirs = dark_lines(out).clamp_max(saturate), dark_lines(drawing).clamp_max(saturate)
    near = lambda x: F.max_pool2d(x, 3, 1, 1)  # noqa: E731
    return _mean(F.relu(ours - near(theirs)) + F.relu(theirs - near(ours)), weight)


def paired_losses(out: torch.Tensor, drawing: torch.Tensor, weight: torch.Tensor | None = None,
                  ink_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Supervised terms against the drawing an artist made over the same photo: pixel L1, image-gradient
    L1 (shapes and edges) and the strokes (``ink_loss``), each in [-1, 1] units, over the pixels as
    ``weight`` [N, 1, H, W] counts them (None: all; the strokes by ``ink_weight`` where given)."""
    return {"pixel": _mean((out - drawing).abs(), weight),
            "gradient": _mean((_gradients(out) - _gradients(drawing)).abs(), weight),
            "ink": ink_loss(out, drawing, weight=weight if ink_weight is None else ink_weight)}
