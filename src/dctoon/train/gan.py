"""Texture translation network (TTN) trainer: DCT-Net's recipe in PyTorch.

The generator is :mod:`.model` (White-box Cartoonization's ``unet_generator`` with the exact
TensorFlow semantics of :mod:`dctoon.network`, so trained weights export unchanged), the critics and
losses are :mod:`.losses`; this module holds the online geometry calibration and the training loop
with resumable checkpoints and sample grids (:mod:`.export` writes the style).

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
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dctoon.errors import InputError
from dctoon.network import config_of, flat_fills

from ._util import (LANDMARKS_FILE, dataset_files, holdout_split, load_checkpoint, log_step, read_bgr, relative,
                    save_checkpoint, square)
from .settings import TTNSettings

from .losses import (ContentLoss, PatchDiscriminator, abstraction, outline_mask, paired_losses, shift_loss,
                     soften_edges, superpixel_rep, surface_rep, texture_rep, tone_bands, tv_loss)
from .faces import FaceTerm
from .model import Generator, flat_fills as torch_fills, guided_filter

# --------------------------------------------------------------------------------------------
# data and geometry calibration


def load_folder(files: list[Path], size: int = 256) -> torch.Tensor:
    """All images as one uint8 BGR tensor [N, 3, size, size] (small data sets fit in memory)."""
    arr = np.stack([read_bgr(p, size) for p in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def pair_split(photos: Path, holdout: float) -> tuple[list[Path], list[Path]]:
    """(fit, validation) photos of a pair set. The hash hold-out (``holdout``, as ``evaluate`` and
    ``bench/artist.py`` take it) is never read; validation is the next ``holdout`` of what is left,
    by the same hash order, so early stopping never sees the test pairs."""
    train = dataset_files(photos, "train", holdout)
    fit, val = holdout_split([str(p.relative_to(photos)) for p in train], holdout)
    return [photos / n for n in fit], [photos / n for n in val]


def drawn_region(drawing: np.ndarray, blank: int = 240) -> np.ndarray:
    """uint8 mask, 255 where the artist drew: everything but the blank paper, the near-white pixels
    (every channel >= ``blank``) connected to the picture's border. Inside the figure a white shirt
    or a highlight stays drawn."""
    import cv2

    paper = (drawing.min(2) >= blank).astype(np.uint8)
    _, labels = cv2.connectedComponents(paper, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, edge[edge > 0])
    return np.where(outside, 0, 255).astype(np.uint8)


def load_pairs(files: list[Path], photos: Path, drawings: Path, size: int = 256) -> torch.Tensor:
    """Photos and their drawings as one uint8 tensor [N, 8, size, size]: photo BGR, drawing BGR, the
    drawn region (:func:`drawn_region`) and the face (:func:`face_region`; empty where no face was
    found). All are cut by the alignment the photo's face gives (as the head crop at inference), so
    they stay pixel-aligned, and ride through the geometry calibration as one image."""
    import cv2

    from dctoon.face import FaceDetector, alignment_matrix

    missing = [p.name for p in files if not (drawings / p.relative_to(photos)).is_file()]
    if missing:
        raise InputError(f"--pairs: {len(missing)} photos have no drawing of the same name in {drawings}"
                         f" (first: {missing[0]})")
    detector = FaceDetector(threads=1)
    face, no_face = face_region(size), np.zeros((size, size), np.uint8)
    out = []
    for p in files:
        photo, drawing = cv2.imread(str(p)), cv2.imread(str(drawings / p.relative_to(photos)))
        if photo is None or drawing is None or photo.shape != drawing.shape:
            raise InputError(f"--pairs: {p.name}: unreadable, or the photo and its drawing differ in size")
        # at the size the photo is judged at (the artist metric reads 256 px pairs), then aligned from there
        photo, drawing = square(photo, size), square(drawing, size)
        faces = detector.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
        if faces:
            m = alignment_matrix(faces[0].landmarks, size=size)
            photo, drawing = (cv2.warpAffine(im, m, (size, size), flags=cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_REFLECT_101) for im in (photo, drawing))
        # no face found: the whole picture, and no face region
        out.append(np.dstack([photo, drawing, drawn_region(drawing), face if faces else no_face]))
    if not out:
        return torch.zeros(0, 8, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def face_region(size: int) -> np.ndarray:
    """uint8 mask of the face in a crop aligned by :func:`dctoon.face.alignment_matrix`: an ellipse
    from brows to chin and jaw to jaw around the reference landmarks, feathered across its edge (a
    fifth of its radii). Where an artist's outlines (eyes, nose, lips, jaw) keep a flat face a face."""
    from dctoon.face import reference_points

    pts = reference_points(size) / size
    cx, cy = pts[:, 0].mean(), (pts[:2, 1].mean() + pts[3:, 1].mean()) / 2 + 0.02
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size
    d = np.hypot((xx - cx) / 0.26, (yy - cy) / 0.34)  # 1 on the ellipse
    t = np.clip((1.1 - d) / 0.2, 0, 1)
    return (255 * t * t * (3 - 2 * t)).round().astype(np.uint8)


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



def save_grid(path: Path, rows: list[torch.Tensor]) -> None:
    import cv2

    cols = []
    for t in rows:
        t = ((t.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        cols.append(np.concatenate(list(t), 0))
    path.parent.mkdir(parents=True, exist_ok=True)  # made at the first sample: a run refused at its start leaves none
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


def warmup_steps(s: dict) -> int:
    """Reconstruction warm-up steps a run takes: only from random weights without drawings (a start
    or a paired target is already more than a photo copier)."""
    return 0 if s.get("init") or s.get("pairs") else s["warmup"]


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
        self.gen = torch.Generator().manual_seed(s.seed)

        self.pairs = self.val = self.photos = None
        if s.pairs:
            photo_dir, drawing_dir = map(Path, s.pairs)
            fit, val = pair_split(photo_dir, s.holdout)
            self.pairs = load_pairs(fit, photo_dir, drawing_dir)
            self.val = load_pairs(val, photo_dir, drawing_dir)  # early stopping's judge
            if not len(self.pairs):
                raise InputError(f"--pairs: no training pairs in {photo_dir}")
        elif not (s.photos and s.styles):
            raise InputError("train ttn needs --photos and --styles, or --pairs PHOTOS DRAWINGS")
        photo_files = dataset_files(Path(s.photos), "train", s.holdout) if s.photos else []
        if photo_files:
            self.photos = load_folder(photo_files)
        if s.w_abstract > 0 and self.photos is not None:  # each photo's abstraction rides along: warped with it
            hwc = self.photos.permute(0, 2, 3, 1).numpy()
            targets = torch.from_numpy(np.stack([abstraction(im) for im in hwc])).permute(0, 3, 1, 2)
            self.photos = torch.cat([self.photos, targets], 1)
        style_files = dataset_files(Path(s.styles), "train", 0.0) if s.styles else []
        self.styles = load_folder(style_files) if style_files else (self.pairs[:, 3:6] if self.pairs is not None
                                                                    else None)
        if (self.photos is None and self.pairs is None) or self.styles is None:
            raise InputError(f"no training images: {len(photo_files)} photos, {len(style_files)} exemplars")
        self.n_photos, self.n_styles = len(photo_files), len(self.styles)
        self.masks = None
        if s.w_expression > 0 and self.photos is not None:
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
        self.Dp = PatchDiscriminator(6).to(self.dev) if self.pairs is not None and s.w_pair > 0 else None
        critics = [self.Ds, self.Dt] + ([self.Dp] if self.Dp is not None else [])
        self.opt_d = torch.optim.Adam([p for d in critics for p in d.parameters()], s.lr, betas=(0.5, 0.99))
        self.step = 0
        self.warmup = warmup_steps(dataclasses.asdict(s))
        self.elapsed = 0.0
        self.init = RANDOM_INIT
        self.best = (math.inf, 0)  # held-out score and its step
        self.waited = 0  # validations since the best
        self.shown = self.pairs if self.pairs is not None else self.photos
        self.fixed = torch.arange(0, len(self.shown), max(1, len(self.shown) // 6))[:6]
        self.face_term = FaceTerm(s.threads, self.dev) if s.w_face > 0 else None
        self.anchor = None  # the start, frozen: fine-tuning keeps content close to what it already made
        if start is not None:
            self.anchor = Generator(*config_of(start[0])).to(self.dev)
            self.anchor.load_numpy_weights(start[0])
            self.anchor.requires_grad_(False).eval()
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
                "n_pairs": 0 if self.pairs is None else len(self.pairs), "init": self.init, "best": self.best,
                "waited": self.waited} | ({"Dp": self.Dp.state_dict()} if self.Dp is not None else {})

    def save(self, path: Path | None = None) -> Path:
        return save_checkpoint(self.state(), path or self.out / "checkpoint.pt")

    def load(self, path: Path) -> None:
        st = load_checkpoint(path, self.dev, needs=("G", "Ds", "Dt", "opt_g", "opt_d", "step", "settings"))
        self.G.load_state_dict(st["G"])
        self.Ds.load_state_dict(st["Ds"])
        self.Dt.load_state_dict(st["Dt"])
        if self.Dp is not None and "Dp" in st:
            self.Dp.load_state_dict(st["Dp"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = self.s.lr  # the optimizer state carries the old run's rate: --lr of this run wins
        self.step, self.elapsed = st["step"], st["elapsed"]
        self.init = st.get("init", RANDOM_INIT)
        self.best, self.waited = tuple(st.get("best", (math.inf, 0))), st.get("waited", 0)
        before = st["settings"]["styles"]
        if before and self.s.styles and Path(before).resolve() != Path(self.s.styles).resolve():
            # fine-tuning another style's weights: the model card must say where they came from
            run = relative(st["settings"]["styles"])
            self.init = f"the weights of a run on {run} at step {self.step} ({self.init})"
        self.gen.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])

    # -- one step
    def batch(self, images, masks=None, n: int | None = None):
        idx = torch.randint(0, images.shape[0], (n or self.s.batch,), generator=self.gen)
        x, m = geometry_batch(images, idx, self.s.res, self.s.crop, self.s.rotate, self.gen, masks)
        return x.to(self.dev), (m.to(self.dev) if m is not None else None)

    def forward_g(self, photo):
        out = guided_filter(photo, self.G(photo), 1, 5e-3)
        return tone_bands(out, self.s.bands, self.s.band_sharpness) if self.s.bands else out

    def inputs(self):
        """One step's photos; in paired mode the drawings of the first ``len(drawing)`` of them and the
        weight of their pixels in the supervised terms; the expression mask and the abstraction target
        (unpaired terms)."""
        drawing = drawn = inked = mask = target = None
        if self.pairs is not None:
            x, _ = self.batch(self.pairs)
            photo, drawing, drawn = x[:, :3], x[:, 3:6], self.supervised(x)
            inked = self.inked(x, drawn)
            if self.photos is not None:  # unpaired photos ride along: faces unlike the pairs' own
                extra, _ = self.batch(self.photos[:, :3], n=max(1, self.s.batch // 2))
                photo = torch.cat([photo, extra])
        else:
            x, mask = self.batch(self.photos, self.masks)
            photo, target = x[:, :3], x[:, 3:]  # target: the abstraction, when the term is on
        return photo, drawing, drawn, inked, mask, target

    def supervised(self, pairs: torch.Tensor) -> torch.Tensor | None:
        """Per-pixel weight [N, 1, H, W] of the supervised terms for warped pairs: the drawn region with
        ``--paper skip`` (blank paper is no target: a photo's background has no right answer there)."""
        return (pairs[:, 6:7] + 1) / 2 if self.s.paper == "skip" else None

    def inked(self, pairs: torch.Tensor, drawn: torch.Tensor | None) -> torch.Tensor | None:
        """The strokes term's per-pixel weight: the supervised weight ``drawn`` (of :meth:`supervised`),
        1 + ``--ink-face`` times it in the face."""
        if not self.s.ink_face:
            return drawn
        face = 1 + self.s.ink_face * (pairs[:, 7:8] + 1) / 2
        return face if drawn is None else drawn * face

    def train_step(self) -> dict[str, float]:
        s = self.s
        photo, drawing, drawn, inked, mask, target = self.inputs()
        logs: dict[str, float] = {}
        if self.step < self.warmup:
            # from random weights: content-only warm-up, reconstruct the photo
            out = self.G(photo)
            loss = F.l1_loss(out, photo)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
            self.step += 1
            return {"recon": loss.item()}

        cartoon, _ = self.batch(self.styles)
        out = self.forward_g(photo)
        n_paired = 0 if drawing is None else len(drawing)

        # discriminators (LSGAN)
        tgen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=self.gen)))
        fake_s, real_s = surface_rep(out.detach()), surface_rep(cartoon)
        tex_in = torch.cat([out.detach(), cartoon])
        tex = texture_rep(tex_in, tgen)
        fake_t, real_t = tex[: len(out)], tex[len(out):]
        d_s = (self.Ds(real_s) - 1).pow(2).mean() + self.Ds(fake_s).pow(2).mean()
        d_t = (self.Dt(real_t) - 1).pow(2).mean() + self.Dt(fake_t).pow(2).mean()
        if s.w_edge > 0:
            d_t = d_t + s.w_edge * self.Dt(texture_rep(soften_edges(cartoon), tgen)).pow(2).mean()
        d_p = torch.zeros(())
        if self.Dp is not None:  # the fake side keeps its graph: the generator's term below reuses it
            real_p, fake_p = self.pair_reps(photo[:n_paired], drawing, drawn, out[:n_paired])
            d_p = (self.Dp(real_p) - 1).pow(2).mean() + self.Dp(fake_p.detach()).pow(2).mean()
            logs["d_p"] = d_p.item()
        self.opt_d.zero_grad(set_to_none=True)
        (d_s + d_t + d_p).backward()
        self.opt_d.step()

        # generator
        g_s = (self.Ds(surface_rep(out)) - 1).pow(2).mean()
        g_t = (self.Dt(texture_rep(out, tgen)) - 1).pow(2).mean()
        tv = tv_loss(out)
        loss = s.w_surface * g_s + s.w_texture * g_t + s.w_tv * tv
        if self.Dp is not None:
            g_p = (self.Dp(fake_p) - 1).pow(2).mean()
            loss = loss + s.w_pair * g_p
            logs["g_p"] = g_p.item()
        if n_paired:  # the artist's drawing is the target
            for key, term in paired_losses(out[:n_paired], drawing, drawn, inked).items():
                loss = loss + getattr(s, f"w_{key}") * term
                logs[key] = term.item()
        if n_paired < len(out):
            # the content loss keeps the photo's structure; fine-tuning keeps the start's output instead, and
            # the abstraction term its own target (the photo's smooth shading would pin the output against the bands)
            free = photo[n_paired:]
            anchored = self.anchor is not None and s.anchor == "start"
            ref = target if s.w_abstract > 0 else self.anchored(free) if anchored else free
            c, e = self.content(ref, out[n_paired:], mask)  # mask: with the expression term
            loss = loss + s.w_content * c
            logs["content"] = c.item()
        if self.face_term is not None:  # judged on what the exported model shows: the output after its fills
            f = self.face_term(photo, torch_fills(out, s.fill_radius) if s.fill_radius else out)
            if f is not None:
                loss = loss + s.w_face * f
                logs["face"] = f.item()
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
        logs.update(d_s=d_s.item(), d_t=d_t.item(), g_s=g_s.item(), g_t=g_t.item(), tv=tv.item(), g=loss.item())
        return logs

    @staticmethod
    def pair_reps(photo, drawing, drawn, out) -> tuple[torch.Tensor, torch.Tensor]:
        """What the pair critic sees: (photo, drawing) as real, (photo, output) as fake. Where the paper is
        skipped the real side shows the output too, so blank paper is no sign of a drawing (learnt, it
        whitens backgrounds)."""
        if drawn is not None:
            drawing = drawn * drawing + (1 - drawn) * out.detach()
        return torch.cat([photo, drawing], 1), torch.cat([photo, out], 1)

    @torch.no_grad()
    def anchored(self, photo: torch.Tensor) -> torch.Tensor:
        return guided_filter(photo, self.anchor(photo), 1, 5e-3)

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """The validation pairs' score (the paired losses at their weights, whole 256 px crops: lower is
        better), with the artist metrics of :mod:`.evaluate` on the same crops (comparable across weights)."""
        from .evaluate import artist_metrics

        if self.val is None or not len(self.val):
            return None
        self.G.eval()
        total, outputs = 0.0, []
        for i in range(0, len(self.val), 8):
            x = self.val[i:i + 8].float().to(self.dev) / 127.5 - 1.0
            y = self.forward_g(x[:, :3])
            drawn = self.supervised(x)
            terms = paired_losses(y, x[:, 3:6], drawn, self.inked(x, drawn))
            total += len(x) * sum(getattr(self.s, f"w_{k}") * t.item() for k, t in terms.items())
            y = y.permute(0, 2, 3, 1).cpu().numpy()
            if self.s.fill_radius:  # what export writes after the network
                y = flat_fills(y, self.s.fill_radius)
            outputs += list(((np.clip(y, -1, 1) + 1) * 127.5).round().astype(np.uint8))
        self.G.train()
        drawings = list(self.val[:, 3:6].permute(0, 2, 3, 1).numpy())
        return {"held_out": total / len(self.val)} | artist_metrics(outputs, drawings)

    @torch.no_grad()
    def sample(self) -> Path:
        x = self.shown[self.fixed].float() / 127.5 - 1.0  # full 256 px, as at inference
        self.G.eval()
        y = self.forward_g(x[:, :3].to(self.dev))
        self.G.train()
        path = self.out / "samples" / f"{self.step:06d}.jpg"
        save_grid(path, [x[:, :3], y] + ([x[:, 3:6]] if self.pairs is not None else []))
        return path

    def check_held_out(self) -> bool:
        """Score the validation pairs, keep OUT/best.pt at the best score; False once ``patience``
        validations in a row did no better."""
        scores = self.validate()
        if scores is None:
            return True
        score = scores["held_out"]
        if score < self.best[0]:
            self.best, self.waited = (score, self.step), 0
            self.save(self.out / "best.pt")
        else:
            self.waited += 1
        log_step(self.out, self.step, self.elapsed, scores, best_step=self.best[1])
        return not (self.s.patience and self.waited >= self.s.patience)

    def run(self) -> Path:
        s = self.s
        t_last = time.time()
        pairs = f"{len(self.pairs)} pairs (+{len(self.val)} for validation), " if self.pairs is not None else ""
        print(f"ttn: {pairs}{self.n_photos} photos, {self.n_styles} exemplars, from step {self.step} to {s.steps}",
              flush=True)
        if self.step == 0:
            self.check_held_out()  # the start's own score: fine-tuning must beat it
        while self.step < s.steps:
            logs = self.train_step()
            now = time.time()
            self.elapsed += now - t_last
            t_last = now
            if self.step % 25 == 0 or self.step == 1 or not all(math.isfinite(v) for v in logs.values()):
                log_step(self.out, self.step, self.elapsed, logs)
            stop = now >= self.deadline
            if self.step % s.sample_every == 0:
                self.sample()
                if not self.check_held_out():
                    stop = True
            if self.step % s.ckpt_every == 0 or self.step == s.steps or stop:
                self.save()
            if stop:
                why = f"stop time {s.stop_at} reached" if now >= self.deadline else \
                    f"no better validation score in {self.waited} validations (best: step {self.best[1]})"
                print(f"ttn: {why} at step {self.step}", flush=True)
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
    st = load_checkpoint(checkpoint, needs=("G", "settings", "step"))
    g = Generator(*config_of(st["G"]))  # any width: a distilled student is narrower
    g.load_state_dict(st["G"])
    return g.eval(), st


def training_card(st: dict, metrics: dict | None = None, command: str | None = None) -> dict:
    s = st["settings"]
    card = {
        "trainer": "dctoon.train.gan (DCT-Net TTN recipe, PyTorch)",
        "data": {"photos": relative(s["photos"]), "styles": relative(s["styles"]), "n_photos_train": st.get("n_photos"),
                 "n_exemplars": st.get("n_styles"), "holdout": s["holdout"]},
        "steps": st["step"], "warmup_steps": warmup_steps(s), "batch": s["batch"],
        "resolution": f"{s['res']}px crops covering {s['crop'][0]:g}-{s['crop'][1]:g} of 256px images"
                      " (fully convolutional: runs at any size)",
        "hardware": "2-core CPU" if s["device"] == "cpu" else s["device"],
        "wall_time_s": round(st["elapsed"], 1),
        "losses": {k: s[k] for k in ("w_surface", "w_texture", "w_content", "w_tv", "w_expression", "w_superpixel",
                                     "w_shift", "w_edge", "w_lines", "w_abstract", "w_pixel", "w_gradient", "w_ink",
                                     "ink_face", "w_face", "w_pair", "lowpass_weight", "grad_weight", "chroma_weight",
                                     "structure_floor")
                   if k in s},
        "content_loss": ("vgg19-conv4_4" if s.get("vgg_weights") else "lowpass-L1 + gradient structure")
                        + (" + colour-edge (chroma gradients)" if s.get("chroma_weight") else ""),
        "init": st.get("init", RANDOM_INIT),
    }
    if s.get("pairs"):
        card["data"]["pairs"] = {"photos": relative(s["pairs"][0]), "drawings": relative(s["pairs"][1]),
                                 "n_train": st.get("n_pairs"), "holdout": s["holdout"],
                                 "paper": s.get("paper", "learn")}
        card["losses"] = {k: v for k, v in card["losses"].items() if k != "w_content" or s.get("photos")}
    if st.get("best") and math.isfinite(st["best"][0]):
        card["held_out"] = {"score": round(st["best"][0], 5), "step": st["best"][1],
                            "what": "paired losses on the validation pairs (not the test hold-out), lower is better:"
                                    " the early-stopping choice"}
    if s.get("bands"):
        card["tone_bands"] = {"levels": s["bands"], "sharpness": s["band_sharpness"]}
    if s.get("fill_radius"):
        card["flat_fills"] = {"radius": s["fill_radius"]}
    if s.get("w_superpixel") or s.get("w_lines"):
        card["structure_regions"] = s.get("segmenter", "slic")
    if metrics:
        card["metrics"] = metrics
    if command:
        card["command"] = command
    return card
