"""Distillation: a small TTN (the student) learns to reproduce a teacher style's output.

DCT-Net's official styles are each one full-width ``unet_generator`` (channel 32, 4 residual
blocks). A student of the same family with fewer channels or blocks runs 2-5x faster, and, trained
by this project, is ours to ship (the teacher's licence asks for attribution, which the model card
records). The student never sees the teacher's weights, only its outputs.

Data (the "pool"): the teacher is run once, in ONNX Runtime, on ``pool`` training inputs made from
the photo folders, and its outputs are kept beside them (``OUT/pool.npz``, reused on resume). Each
input is one of four kinds, so that the student learns every situation the compound pipeline puts
the network in:

- ``face``: a face photo with the geometry calibration (flip, scale, rotation);
- ``zoom``: a close-up window upsampled, as a small face is when aligned to the 288 px head crop;
- ``scene``: a 2x2 or 3x3 mosaic of smaller pictures, as whole frames with small faces are;
- ``degraded``: any of the above after video-like damage (blur, noise, JPEG) or turned grey.

Training: random ``res`` px crops of the pool (offsets on the network's 4 px grid) and their
teacher outputs, the student's output refined by the teacher's own guided filter, with an L1 pixel
term, an L1 term on image gradients (edges and lines, which carry the look), and an L2 term (the
PSNR the fidelity target is stated in). Crop borders that were inside the image are left out of the
loss: the teacher saw context there that the student's crop does not. Adam with a short warm-up and
cosine decay; the validation PSNR on held-out photos is logged with every sample grid.
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

from dctoon.errors import InputError

from ._util import dataset_files, log_step, psnr, read_bgr, relative, save_checkpoint
from .settings import POOL_KINDS as KINDS, DistillSettings
from .model import Generator, guided_filter, to_tensor
from .gan import save_grid, stop_deadline

POOL_FILE = "pool.npz"


# --------------------------------------------------------------------------------------------
# teacher and pool


def load_teacher(spec: str, threads: int):
    """The teacher as (ONNX Runtime TTN, imported weights, a line for the model card). ``spec`` is
    a style name or folder (its head model) or a model file (.onnx, .tflite, .pb)."""
    from dctoon import styles
    from dctoon.model import TTN

    path = Path(spec)
    if path.is_file():
        label = path.name
    else:
        style = styles.resolve(spec)
        path, label = style.head, f"style {style.name} ({style.card.get('source', '') or style.head.name})"
    teacher = TTN(path, threads=threads)
    return teacher, teacher.imported, label


def _augment(img: np.ndarray, size: int, rng: np.random.Generator, zoom: bool) -> np.ndarray:
    """A random window of ``img`` (flipped, rotated, scaled) resampled to size x size."""
    import cv2

    h, w = img.shape[:2]
    side = min(h, w) * (rng.uniform(0.35, 0.7) if zoom else rng.uniform(0.6, 1.0))
    angle = rng.uniform(-15, 15)
    cx = rng.uniform(side / 2, w - side / 2) if w > side else w / 2
    cy = rng.uniform(side / 2, h - side / 2) if h > side else h / 2
    m = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_CUBIC if zoom else cv2.INTER_AREA,
                         borderMode=cv2.BORDER_REFLECT_101)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def _mosaic(images: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    n = int(rng.choice([2, 3]))
    cell = -(-size // n)
    canvas = np.zeros((cell * n, cell * n, 3), np.uint8)
    for i in range(n * n):
        tile = _augment(images[int(rng.integers(len(images)))], cell, rng, zoom=False)
        canvas[(i // n) * cell:(i // n + 1) * cell, (i % n) * cell:(i % n + 1) * cell] = tile
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA) if canvas.shape[0] != size else canvas


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Video-like damage: blur, sensor noise, a JPEG round trip, or a black-and-white photo."""
    import cv2

    r = rng.random()
    if r < 0.25:
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if r < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.5:
        img = np.clip(img + rng.normal(0, rng.uniform(2, 8), img.shape), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)


def _tone(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, contrast and white-balance jitter (cameras and lighting differ)."""
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, 3)
    contrast = rng.uniform(0.8, 1.2)
    x = img.astype(np.float32)
    mean = x.mean()
    return np.clip((x - mean) * contrast + mean * gain, 0, 255).astype(np.uint8)


def make_inputs(images: list[np.ndarray], n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training inputs (uint8 BGR [n, size, size, 3]) and the index of their kind in ``KINDS``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    kinds = rng.choice(len(KINDS), n, p=[0.4, 0.2, 0.2, 0.2])
    for i, kind in enumerate(kinds):
        base = KINDS[kind] if kind < 3 else KINDS[int(rng.integers(3))]
        if base == "scene":
            img = _mosaic(images, size, rng)
        else:
            img = _augment(images[int(rng.integers(len(images)))], size, rng, zoom=base == "zoom")
        img = _tone(img, rng)
        out[i] = _degrade(img, rng) if kind == 3 else img
    return out, kinds


def calibration_pick(kinds: np.ndarray, names: tuple[str, ...], n: int, seed: int) -> np.ndarray:
    """Sorted indices of up to ``n`` pool inputs of the kinds ``names``, drawn without repeats."""
    index = np.flatnonzero(np.isin(kinds, [KINDS.index(k) for k in names]))
    if not len(index):
        raise InputError(f"--calib-kinds: the pool of {len(kinds)} holds no {' or '.join(names)} inputs;"
                         " name more kinds or make a bigger --pool")
    return np.sort(np.random.default_rng(seed).choice(index, min(n, len(index)), replace=False))


def teacher_outputs(teacher, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([teacher.run_batch(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])


# --------------------------------------------------------------------------------------------
# losses and metrics


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def distill_loss(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, s: DistillSettings):
    """Masked L1 + L2 on pixels and L1 on gradients, in [-1, 1] units."""
    denom = mask.sum() * 3
    d = out - target
    l1 = (d.abs() * mask).sum() / denom
    l2 = (d.pow(2) * mask).sum() / denom
    gy_o, gx_o = _grad(out)
    gy_t, gx_t = _grad(target)
    my, mx = mask[..., 1:, :] * mask[..., :-1, :], mask[..., :, 1:] * mask[..., :, :-1]
    grad = ((gy_o - gy_t).abs() * my).sum() / (my.sum() * 3) + ((gx_o - gx_t).abs() * mx).sum() / (mx.sum() * 3)
    loss = s.w_pixel * l1 + s.w_l2 * l2 + s.w_grad * grad
    return loss, {"l1": l1.item(), "l2": l2.item(), "grad": grad.item()}


# --------------------------------------------------------------------------------------------
# training


class Distiller:
    def __init__(self, s: DistillSettings):
        if s.res % 4 or s.res > s.pool_size:
            raise InputError(f"--res must be a multiple of 4 and at most --pool-size {s.pool_size}")
        self.s = s
        self.deadline = stop_deadline(s.stop_at)
        self.started = time.time()  # the training clock (run() restarts it once the pool is ready)
        torch.set_num_threads(s.threads)
        torch.manual_seed(s.seed)
        self.out = Path(s.out)
        self.teacher, imported, self.teacher_label = load_teacher(s.teacher, s.threads)
        self.radius, self.eps = imported.radius, imported.eps

        train_files = [f for folder in s.photos for f in dataset_files(Path(folder), "train", s.holdout)]
        held_files = [f for folder in s.photos for f in dataset_files(Path(folder), "eval", s.holdout)]
        if not train_files:
            raise InputError(f"no training images in {', '.join(s.photos)}")
        self.n_images = len(train_files)
        self.pool_x, self.pool_y, self.kinds = self._pool(train_files)
        val = np.stack([read_bgr(p, s.pool_size) for p in held_files[: s.val_images]]) if held_files else \
            self.pool_x[: s.val_images]
        self.val_x, self.val_y = val, teacher_outputs(self.teacher, val)

        self.dev = torch.device(s.device)
        self.G = Generator(s.channel, s.blocks)
        self.opt = torch.optim.Adam(self.G.parameters(), s.lr, betas=(0.9, 0.99))
        self.gen = torch.Generator().manual_seed(s.seed)
        self.step, self.elapsed, self.init = 0, 0.0, "random (PyTorch default)"
        self.history: list[dict] = []
        self.rounds: list[dict] = []  # the rounds of training before this one (a built-in's card keeps them)
        if s.resume and (self.out / "checkpoint.pt").exists():
            self.load(self.out / "checkpoint.pt")
        elif s.init:
            self.G.load_numpy_weights(self._start(imported.weights))
        self.G.to(self.dev)

    def _start(self, teacher_weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ``--init`` weights, compressed (:mod:`.compress`) when wider than the student."""
        from dctoon.network import config_of

        s = self.s
        if s.init == "teacher":
            weights, self.init = teacher_weights, f"the teacher ({self.teacher_label})"
        else:
            from dctoon import styles

            from .gan import style_weights

            weights, self.init = style_weights(s.init)
            self.rounds = list(styles.resolve(s.init).card.get("training", {}).get("rounds", []))
        wide = config_of(weights)
        if wide == (s.channel, s.blocks):
            return weights
        from .compress import cut, refit

        calib = self.pool_x[calibration_pick(self.kinds, s.calib_kinds, s.calib, s.seed)]
        t = time.time()
        small, plan = cut(weights, calib, s.channel, s.blocks)
        if s.refit:
            small = refit(small, weights, plan, calib)
        self.init += (f", cut from c={wide[0]}/{wide[1]} blocks to c={s.channel}/{s.blocks} blocks (activation"
                      f" choice, mean compensation{', least-squares refit' if s.refit else ''}; {len(calib)} pool"
                      f" inputs: {', '.join(s.calib_kinds)})")
        print(f"distill: {self.init} in {time.time() - t:.0f} s", flush=True)
        return small

    def _pool(self, files: list[Path]):
        """Teacher-labelled inputs, made once and kept in OUT/pool.npz (same settings: reused)."""
        s = self.s
        path = self.out / POOL_FILE
        key = json.dumps([s.teacher, s.photos, s.pool, s.pool_size, s.seed, s.holdout])
        if path.exists():
            z = np.load(path)
            if str(z["key"]) == key:
                return z["x"], z["y"], z["kinds"]
        t = time.time()
        print(f"distill: reading {len(files)} images", flush=True)
        images = [read_bgr(p) for p in files]
        x, kinds = make_inputs(images, s.pool, s.pool_size, s.seed)
        print(f"distill: teacher on {s.pool} inputs of {s.pool_size} px", flush=True)
        y = teacher_outputs(self.teacher, x)
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "pool.tmp.npz"
        np.savez(tmp, x=x, y=y, kinds=kinds, key=np.array(key))
        os.replace(tmp, path)
        print(f"distill: pool ready in {time.time() - t:.0f} s", flush=True)
        return x, y, kinds

    # -- checkpoints
    def state(self) -> dict:
        return {"G": self.G.state_dict(), "opt": self.opt.state_dict(), "step": self.step, "elapsed": self.elapsed,
                "settings": dataclasses.asdict(self.s), "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                "init": self.init, "teacher": self.teacher_label, "gf": (self.radius, self.eps),
                "n_images": self.n_images, "history": self.history, "rounds": self.rounds, "kind": "distill"}

    def save(self) -> Path:
        return save_checkpoint(self.state(), self.out / "checkpoint.pt")

    def load(self, path: Path) -> None:
        from ._util import load_checkpoint  # tensors and plain data only: a shared .pt cannot run code

        st = load_checkpoint(path, self.dev, needs=("G", "opt", "step", "elapsed", "init", "rng", "torch_rng"))
        self.G.load_state_dict(st["G"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.elapsed, self.init = st["step"], st["elapsed"], st["init"]
        self.history = st.get("history", [])
        self.rounds = st.get("rounds", [])
        self.gen.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])

    # -- one step
    def lr_at(self, step: int) -> float:
        """Warm-up, then cosine decay to 2% by ``--steps``, or by ``--stop-at`` when that comes first
        (a run on a lent machine for a fixed time still ends on a low learning rate)."""
        s = self.s
        warm = min(1.0, (step + 1) / max(1, s.warmup))
        progress = step / s.steps
        if math.isfinite(self.deadline):
            progress = max(progress, (time.time() - self.started) / max(1.0, self.deadline - self.started))
        return s.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def batch(self):
        s, n = self.s, len(self.pool_x)
        idx = torch.randint(0, n, (s.batch,), generator=self.gen).numpy()
        grid = (s.pool_size - s.res) // 4
        oy = torch.randint(0, grid + 1, (s.batch,), generator=self.gen).numpy() * 4
        ox = torch.randint(0, grid + 1, (s.batch,), generator=self.gen).numpy() * 4
        x = np.stack([self.pool_x[i, y:y + s.res, xx:xx + s.res] for i, y, xx in zip(idx, oy, ox)])
        y = np.stack([self.pool_y[i, y:y + s.res, xx:xx + s.res] for i, y, xx in zip(idx, oy, ox)])
        mask = torch.ones(s.batch, 1, s.res, s.res)
        m = s.margin
        for b, (y0, x0) in enumerate(zip(oy, ox)):  # crop edges inside the image: context the student lacks
            if y0 > 0:
                mask[b, :, :m] = 0
            if x0 > 0:
                mask[b, :, :, :m] = 0
            if y0 + s.res < s.pool_size:
                mask[b, :, -m:] = 0
            if x0 + s.res < s.pool_size:
                mask[b, :, :, -m:] = 0
        return to_tensor(x).to(self.dev), to_tensor(y).to(self.dev), mask.to(self.dev)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return guided_filter(x, self.G(x), self.radius, self.eps)

    def train_step(self) -> dict[str, float]:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        x, y, mask = self.batch()
        loss, logs = distill_loss(self.forward(x), y, mask, self.s)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.G.parameters(), self.s.clip)  # no normalisation layers: keep steps sane
        self.opt.step()
        self.step += 1
        return logs

    @torch.no_grad()
    def validate(self) -> float:
        """Mean PSNR (dB) of the student's uint8 output against the teacher's on held-out photos."""
        self.G.eval()
        scores = []
        for i in range(0, len(self.val_x), 4):
            y = self.forward(to_tensor(self.val_x[i:i + 4]).to(self.dev))
            u8 = ((y.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
            scores += [psnr(a, b) for a, b in zip(u8, self.val_y[i:i + 4])]
        self.G.train()
        return float(np.mean(scores))

    def validated(self) -> dict[str, float]:
        """Validate and record; OUT/best.pt keeps the best state so far (training can lose what a
        compressed start had: that start is validated, and kept, before the first step)."""
        val = round(self.validate(), 3)
        best = max((h["val_psnr"] for h in self.history), default=-math.inf)
        self.history.append({"step": self.step, "elapsed_s": round(self.elapsed, 1), "val_psnr": val})
        if val > best:
            save_checkpoint(self.state(), self.out / "best.pt")
        return {"val_psnr": val}

    @torch.no_grad()
    def sample(self) -> Path:
        x = to_tensor(self.val_x[:6]).to(self.dev)
        self.G.eval()
        y = self.forward(x)
        self.G.train()
        path = self.out / "samples" / f"{self.step:06d}.jpg"
        save_grid(path, [x, to_tensor(self.val_y[:6]), y])
        return path

    def run(self) -> Path:
        s = self.s
        t_last = self.started = time.time()
        print(f"distill: {self.teacher_label} -> c{s.channel}/{s.blocks} blocks, {self.n_images} images,"
              f" pool {len(self.pool_x)}, from step {self.step} to {s.steps}", flush=True)
        if not self.history:  # where the start stands (a compressed or shipped student is far from random)
            log_step(self.out, self.step, self.elapsed, {}, **self.validated())
        while self.step < s.steps:
            logs = self.train_step()
            now = time.time()
            self.elapsed += now - t_last
            t_last = now
            stop = now >= self.deadline
            val = {}
            if self.step % s.sample_every == 0 or self.step == s.steps or stop:
                val = self.validated()
                self.sample()
                self.save()
                t_last = time.time()
            if self.step % 25 == 0 or val or not all(math.isfinite(v) for v in logs.values()):
                log_step(self.out, self.step, self.elapsed, logs, lr=round(self.lr_at(self.step), 6), **val)
            if stop:
                print(f"distill: stop time {s.stop_at} reached at step {self.step}", flush=True)
                break
        self.save()
        return self.out / "checkpoint.pt"


ATTRIBUTION = "DCT-Net (Men et al., SIGGRAPH 2022), Alibaba DAMO Academy, Apache-2.0"


def distill_card(st: dict, metrics: dict | None = None, command: str | None = None) -> dict:
    """The model card's training record of a distilled student."""
    from dctoon.network import mac_per_pixel

    s = st["settings"]
    card = {
        "trainer": "dctoon.train.distill (knowledge distillation, PyTorch)",
        "teacher": st["teacher"],
        "teacher_license": "Apache-2.0",
        "attribution": ATTRIBUTION,
        "license": f"Weights: dctoon project, a model distilled from {ATTRIBUTION} (attribution kept in this card)."
                   " Training inputs: selfie2anime photos (research use) and CelebA-HQ photos (AvatarHQ, CC BY-NC-SA"
                   " 4.0); check their terms before commercial use.",
        "student": {"channel": s["channel"], "num_blocks": s["blocks"],
                    "mac_per_px": mac_per_pixel(s["channel"], s["blocks"]),
                    "parameters": int(sum(v.numel() for v in st["G"].values()))},
        "data": {"photos": [relative(p) for p in s["photos"]], "n_images_train": st["n_images"],
                 "holdout": s["holdout"],
                 "pool": f"{s['pool']} teacher-labelled inputs of {s['pool_size']} px: " + ", ".join(KINDS)},
        "steps": st["step"], "batch": s["batch"], "resolution": f"{s['res']}px crops (fully convolutional)",
        "hardware": "2-core CPU" if s.get("device", "cpu") == "cpu" else s["device"],
        "wall_time_s": round(st["elapsed"], 1),
        "losses": {k: s[k] for k in ("w_pixel", "w_l2", "w_grad")},
        "lr": s["lr"], "init": st["init"],
        "validation_psnr_db": st["history"][-1]["val_psnr"] if st["history"] else None,
    }
    if metrics:
        card["metrics"] = metrics
    if command:
        card["command"] = command
    this_round = {k: card[k] for k in ("steps", "hardware", "wall_time_s", "init", "validation_psnr_db")}
    if metrics and "mean_psnr" in metrics:
        this_round["fidelity_psnr_db"] = metrics["mean_psnr"]
    card["rounds"] = [*st.get("rounds", []), this_round]  # every round of training, the start's first
    return card


def distill(settings: DistillSettings) -> Path:
    """Distil (or resume) a student; returns the checkpoint path."""
    return Distiller(settings).run()
