"""Compression: a teacher TTN cut to a narrower (or shallower) student that keeps its look.

A ``unet_generator`` has no normalisation layers, so every layer leans on the mean level of the
channels it reads. Cutting channels by kernel norm alone (the old ``prune``) leaves those means
missing downstream, and the cut network draws nothing like its teacher (about 12 dB whatever the
width). A cut here takes three steps, all measured on a calibration batch of the training pool:

1. **Choose** the channels to keep by what they carry: per channel, the mean absolute deviation of
   its activation times the L2 norm of the consumer weights that read it, summed over every
   consumer of the channel space. Channels that are added together (the trunk, the two skips)
   form one space and are cut together; so are the residual blocks' outputs.
2. **Compensate**: a dropped channel's mean activation is folded into its consumers' biases
   (``bias += sum over the kernel of W[:, j] * mean_j``); a dropped residual block's mean
   contribution is folded the same way into every consumer of the trunk after it.
3. **Refit** (optional, ``refit=True``): each convolution in execution order is refitted by ridge
   least squares, from the cut network's own input to that layer to the teacher's output there
   (for a block's second convolution: to what the teacher's trunk needs from it). Errors of the
   layers before are corrected instead of compounded.

No training step is involved; ``dctoon train distill`` then repairs what the cut lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dctoon.errors import InputError
from dctoon.network import config_of, conv_specs

from .model import Generator, _same_pad, to_tensor


@dataclass(frozen=True)
class Space:
    """A channel space: the convolutions that write it (their outputs are added together, or there
    is one) and those that read it. ``mult`` x channel is its width."""

    mult: int
    writers: tuple[str, ...]
    readers: tuple[str, ...]


def spaces(blocks: int) -> dict[str, Space]:
    """The generator's channel spaces (see :class:`dctoon.train.model.Generator`)."""
    b = range(blocks)
    out = {
        "full": Space(1, ("enc0", "dec1"), ("down1", "up0")),
        "down1": Space(1, ("down1",), ("enc1",)),
        "half": Space(2, ("enc1", "dec2"), ("down2", "up1")),
        "down2": Space(2, ("down2",), ("enc2",)),
        "trunk": Space(4, ("enc2", *(f"block{i}.conv2" for i in b)), (*(f"block{i}.conv1" for i in b), "dec2")),
        "up1": Space(2, ("up1",), ("dec1",)),
        "up0": Space(1, ("up0",), ("out",)),
    }
    for i in b:
        out[f"block{i}"] = Space(4, (f"block{i}.conv1",), (f"block{i}.conv2",))
    return out


def _generator(weights: dict[str, np.ndarray]) -> Generator:
    g = Generator(*config_of(weights))
    g.load_numpy_weights(weights)
    return g.eval()


def _batches(calib: np.ndarray, size: int = 4):
    for i in range(0, len(calib), size):
        yield to_tensor(calib[i:i + size])


Stats = dict[str, tuple[np.ndarray, np.ndarray]]


@torch.no_grad()
def activation_stats(weights: dict[str, np.ndarray], calib: np.ndarray) -> Stats:
    """Per convolution, of its input (``NAME``) and of its output before the activation
    (``NAME:out``): each channel's mean and mean absolute deviation from that mean."""
    g = _generator(weights)

    def each():
        for x in _batches(calib):
            taps: dict = {}
            g(x, taps)
            for name, (inp, y) in taps.items():
                yield name, inp.double()
                yield f"{name}:out", y.double()

    def per_channel(t: torch.Tensor) -> torch.Tensor:
        return t.sum((0, 2, 3)) / t[0, 0].numel()

    sums: dict[str, torch.Tensor] = {}
    for name, t in each():
        sums[name] = sums.get(name, 0) + per_channel(t)
    means = {k: v / len(calib) for k, v in sums.items()}
    dev: dict[str, torch.Tensor] = {}
    for name, t in each():
        dev[name] = dev.get(name, 0) + per_channel((t - means[name].view(1, -1, 1, 1)).abs())
    return {k: (means[k].numpy(), (dev[k] / len(calib)).numpy()) for k in means}


def _kernel_sums(w: np.ndarray) -> np.ndarray:
    """[cout, cin]: each kernel's sum over its taps (what a constant input channel contributes)."""
    return w.astype(np.float64).sum(axis=(2, 3))


@dataclass(frozen=True)
class Plan:
    """What a cut keeps: the channels of every space of the wide network (sorted indices) and its
    residual blocks (the student's block j is the teacher's ``blocks[j]``)."""

    keep: dict[str, np.ndarray]
    blocks: tuple[int, ...]
    wide_blocks: int

    def source(self, name: str) -> str:
        """The wide network's convolution that the student's ``name`` is cut from."""
        if name.startswith("block"):
            j, rest = name[5:].split(".")
            return f"block{self.blocks[int(j)]}.{rest}"
        return name

    def channels(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """(kept output channels, kept input channels) of a wide convolution."""
        sp = spaces(self.wide_blocks)
        outs = next((self.keep[k] for k, s in sp.items() if source in s.writers), np.arange(3))
        ins = next((self.keep[k] for k, s in sp.items() if source in s.readers), np.arange(3))
        return outs, ins

    def kept(self, source: str) -> bool:
        """Whether the wide network's convolution ``source`` is in the cut (not in a dropped block)."""
        return not source.startswith("block") or int(source[5:].split(".")[0]) in self.blocks

    def trunk_readers(self) -> list[str]:
        return [f"block{i}.conv1" for i in range(self.wide_blocks)] + ["dec2"]


def choose(weights: dict[str, np.ndarray], stats: Stats, channel: int, blocks: int) -> Plan:
    """Step 1: the residual blocks whose residual varies most, and in each space the channels with
    the largest spread times consumer weight (the consumers of dropped blocks do not count)."""
    _, n_blocks = config_of(weights)
    residual = [float(stats[f"block{i}.conv2:out"][1].sum()) for i in range(n_blocks)]
    kept_blocks = tuple(sorted(int(i) for i in np.argsort(residual)[::-1][:blocks]))
    dropped = {f"block{i}" for i in range(n_blocks)} - {f"block{i}" for i in kept_blocks}
    keep = {}
    for name, space in spaces(n_blocks).items():
        readers = [r for r in space.readers if r.split(".")[0] not in dropped]
        if name in dropped or not readers:
            continue
        score = sum(stats[r][1] * np.sqrt((weights[f"{r}.weight"].astype(np.float64) ** 2).sum(axis=(0, 2, 3)))
                    for r in readers)
        keep[name] = np.sort(np.argsort(score)[::-1][: space.mult * channel])
    return Plan(keep, kept_blocks, n_blocks)


def cut(weights: dict[str, np.ndarray], calib: np.ndarray, channel: int, blocks: int | None = None,
        stats: Stats | None = None, compensate: bool = True) -> tuple[dict[str, np.ndarray], Plan]:
    """Steps 1 and 2: the teacher's weights cut to ``channel`` (and ``blocks``), each dropped channel
    and block folded into its consumers' biases (``compensate=False``: not, to measure what that is
    worth). ``calib``: uint8 BGR [N, H, W, 3] (H, W multiples of 4)."""
    wide, n_blocks = config_of(weights)
    blocks = n_blocks if blocks is None else blocks
    if not (0 < channel <= wide and 0 < blocks <= n_blocks):
        raise InputError(f"cannot cut a c={wide}/{n_blocks}-block model to c={channel}/{blocks} blocks")
    stats = stats or activation_stats(weights, calib)
    plan = choose(weights, stats, channel, blocks)
    out: dict[str, np.ndarray] = {}
    for spec in conv_specs(channel, blocks):
        src = plan.source(spec.name)
        w, b = weights[f"{src}.weight"], weights[f"{src}.bias"].astype(np.float64)
        outs, ins = plan.channels(src)
        mean = stats[src][0] * compensate  # what the dropped input channels carried on average
        mean[ins] = 0.0
        out[f"{spec.name}.weight"] = np.ascontiguousarray(w[outs][:, ins], np.float32)
        out[f"{spec.name}.bias"] = (b + _kernel_sums(w) @ mean)[outs].astype(np.float32)
    readers = plan.trunk_readers()
    trunk = plan.keep["trunk"]
    for i in sorted(set(range(n_blocks)) - set(plan.blocks)) if compensate else ():  # a dropped block's mean
        delta = (stats[readers[i + 1]][0] - stats[readers[i]][0])[trunk]
        for j in range(i + 1, n_blocks + 1):
            if j in plan.blocks or j == n_blocks:
                new = "dec2" if j == n_blocks else f"block{plan.blocks.index(j)}.conv1"
                outs, _ = plan.channels(readers[j])
                sums = _kernel_sums(weights[f"{readers[j]}.weight"])[outs][:, trunk]
                out[f"{new}.bias"] = (out[f"{new}.bias"] + sums @ delta).astype(np.float32)
    return out, plan


def _patches(x: torch.Tensor, k: int, stride: int, where: torch.Tensor) -> torch.Tensor:
    """[N * len(where), C*k*k + 1]: the convolution's input patches at the output positions
    ``where`` (flat indices), in the kernels' (C, ky, kx) order, and a 1 for the bias."""
    xp = _same_pad(x, k, stride)
    w_out = -(-x.shape[3] // stride)
    y0, x0 = (where // w_out) * stride, (where % w_out) * stride
    taps = [xp[:, :, y0 + dy, x0 + dx] for dy in range(k) for dx in range(k)]  # each [N, C, R]
    p = torch.stack(taps, 2).flatten(1, 2).permute(0, 2, 1).reshape(-1, x.shape[1] * k * k)
    return torch.cat([p, p.new_ones(len(p), 1)], 1)


class _Reached(Exception):
    """Raised by :class:`_TapsUntil` once the layer a refit needs has its input."""


class _TapsUntil(dict):
    """Taps that end the forward pass at convolution ``name``: a refit needs only what comes before."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if key == self.name:
            raise _Reached


@torch.no_grad()
def _teacher_targets(teacher: dict[str, np.ndarray], plan: Plan, calib: np.ndarray) -> list[dict[str, torch.Tensor]]:
    """Per calibration batch, what the cut network should compute: each kept convolution's output
    (kept channels, before the activation) and the trunk (kept channels) after each kept block."""
    g, readers, out = _generator(teacher), plan.trunk_readers(), []
    for x in _batches(calib):
        taps: dict = {}
        g(x, taps)
        want = {name: y[:, plan.channels(name)[0]] for name, (_, y) in taps.items() if plan.kept(name)}
        want.update({f"trunk:{i}": taps[readers[i + 1]][0][:, plan.keep["trunk"]] for i in plan.blocks})
        out.append(want)
    return out


@torch.no_grad()
def refit(student: dict[str, np.ndarray], teacher: dict[str, np.ndarray], plan: Plan, calib: np.ndarray,
          rows: int = 4096, ridge: float = 1e-3, seed: int = 0) -> dict[str, np.ndarray]:
    """Step 3: every convolution of the cut network, in execution order, refitted by ridge least
    squares from its input in the cut network to the teacher's output (channels kept) there;
    ``rows`` sampled output positions per picture."""
    channel, blocks = config_of(student)
    targets, out = _teacher_targets(teacher, plan, calib), dict(student)
    gen = torch.Generator().manual_seed(seed)
    for spec in conv_specs(channel, blocks):
        net, src = _generator(out), plan.source(spec.name)
        xtx = xty = 0
        for x, want in zip(_batches(calib), targets):
            taps = _TapsUntil(spec.name)
            try:
                net(x, taps)
            except _Reached:
                pass
            inp = taps[spec.name][0]
            if spec.name.endswith(".conv2"):  # the residual that brings the trunk to the teacher's
                target = want[f"trunk:{plan.blocks[int(spec.name[5:].split('.')[0])]}"] - \
                    taps[spec.name.replace("conv2", "conv1")][0]
            else:
                target = want[src]
            n_pos = target.shape[2] * target.shape[3]
            where = torch.randperm(n_pos, generator=gen)[:rows]
            a = _patches(inp, spec.k, spec.stride, where)
            y = target.flatten(2)[:, :, where].permute(0, 2, 1).reshape(-1, target.shape[1])
            xtx = xtx + (a.T @ a).double()
            xty = xty + (a.T @ y).double()
        reg = ridge * float(torch.diagonal(xtx).mean())
        sol = torch.linalg.solve(xtx + reg * torch.eye(len(xtx), dtype=xtx.dtype), xty)  # [C*k*k + 1, cout]
        out[f"{spec.name}.weight"] = sol[:-1].T.reshape(spec.cout, spec.cin, spec.k, spec.k).float().numpy()
        out[f"{spec.name}.bias"] = sol[-1].float().numpy()
    return out
