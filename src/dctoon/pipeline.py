"""The compound pipeline: background model on the frame, head model on each aligned face.

decode -> detect/align -> stylize -> compose. Unlike the official code this keeps the input's
resolution (no silent 720p cap), blends overlapping faces independently of their order, skips
faces too small to gain from the head model, and warps back only the region a face covers.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from .face import Face, FaceDetector, align, alignment_matrix, blend_mask
from .matte import Backdrop, blend, check_part, needs_mask, parse_backdrop
from .errors import check_range
from .model import TTN, Mix
from .runtime import cap_threads
from .styles import Style, resolve

MAX_SIDE = 65_500  # --max-side and --min-face: more than any picture a decoder here would open


@dataclass(frozen=True)
class Settings:
    """How a picture is stylized: the per-job options. ``max_side`` None keeps the input's
    resolution. Frozen: a different setting is a new ``Settings`` (``Cartoonizer.configure``), never
    a change under a running job. What shapes the loaded models (threads, tile) is given to
    :func:`load` instead."""

    max_side: int | None = None
    faces: bool = True          # False: the background model on the whole frame only
    min_face: int = 40          # faces smaller than this (box side, px) are left to the background model
    head_size: int = 288        # the head model's aligned crop, as DCT-Net was trained
    max_head_size: int = 768    # big faces get a larger crop (up to this) so face detail matches the frame
    part: str = "all"           # what is stylized: all, person (over the original) or background
    backdrop: "str | Backdrop | None" = None  # behind a stylized person: blur, a colour, an image path, transparent
    crop: str | None = None     # auto-crop to this aspect ratio (W:H, e.g. 9:16) around the faces
    strength: float = 1.0       # how much cartoon: 0 is the photo, 1 the style as trained
    face_strength: float | None = None        # for faces (None: strength)
    background_strength: float | None = None  # for the rest of the frame (None: strength)

    @property
    def strengths(self) -> tuple[float, float]:
        """(faces, background)."""
        pick = (lambda v: self.strength if v is None else v)
        return pick(self.face_strength), pick(self.background_strength)

    def __post_init__(self):
        """Numbers out of range fail here, in one line, before any model loads."""
        if self.max_side is not None:
            check_range("--max-side", self.max_side, 8, MAX_SIDE)
        check_range("--min-face", self.min_face, 1, MAX_SIDE)
        for name in ("strength", "face_strength", "background_strength"):
            v = getattr(self, name)
            if v is not None:
                check_range(name.replace("_", "-"), v, 0.0, 1.0)


@dataclass
class Cartoonizer:
    """A loaded style: ``stylize(image)`` for pictures, ``stylize_video(...)`` for videos.

    ``threads`` (onnxruntime intra-op threads, 0 = all cores), ``tile`` (the background model
    runs in tiles above this side: bounded memory) and ``device`` (``runtime.DEVICES``: where the
    style models run) are fixed when the models load; ``settings`` are per job (:meth:`configure`)."""

    style: Style
    settings: Settings = field(default_factory=Settings)
    threads: int = 0
    tile: int = 1536
    device: str = "auto"

    def __post_init__(self):
        self.threads = cap_threads(self.threads)

        def ttns(style: Style) -> tuple[TTN, TTN]:
            head = TTN(style.head, self.threads, self.tile, device=self.device)
            same = style.background.resolve() == style.head.resolve()
            return head, head if same else TTN(style.background, self.threads, self.tile, device=self.device)

        if self.style.mix:  # several styles, their outputs mixed by weight
            parts = [(ttns(st), w) for st, w in self.style.mix]
            self.head = Mix([(h, w) for (h, _), w in parts])
            self.background = Mix([(b, w) for (_, b), w in parts])
        else:
            self.head, self.background = ttns(self.style)
        self._lazy: dict = {}  # detector and segmenter, built on first use, shared with configure() copies
        self._masks: dict[int, np.ndarray] = {}
        self._derive()

    def _derive(self) -> None:
        """Parse the settings that need it once (bad values fail here, before any work)."""
        s = self.settings
        self.backdrop = parse_backdrop(s.backdrop) if s.backdrop else None
        check_part(s.part, self.backdrop)
        self.aspect = None
        if s.crop:
            from .framing import parse_aspect

            self.aspect = parse_aspect(s.crop)

    def configure(self, **changes) -> "Cartoonizer":
        """A copy with some settings changed that shares the loaded models (one per web job, say).

        Model-shaping options (tile, threads, device) are fixed at load time and cannot change here.
        """
        fixed = {"tile", "threads", "device"} & set(changes)
        if fixed:
            raise TypeError(f"{', '.join(sorted(fixed))} can only be set when loading")
        _check_fields(changes, "setting")
        job = copy.copy(self)
        job.settings = dataclasses.replace(self.settings, **changes)
        job._derive()
        return job

    def fork(self) -> "Cartoonizer":
        """A copy for a job that runs beside others: the models and the segmenter are shared
        (onnxruntime sessions are thread-safe), the face detector and the mask cache are its own
        (MTCNN keeps per-call state)."""
        job = copy.copy(self)
        job._lazy = {k: v for k, v in self._lazy.items() if k == "segmenter"}
        job._masks = {}
        return job

    @property
    def detector(self) -> FaceDetector:
        key = ("detector", self.settings.min_face)
        if key not in self._lazy:
            self._lazy[key] = FaceDetector(min_face=self.settings.min_face, threads=self.threads)
        return self._lazy[key]

    @property
    def segmenter(self):
        """The person segmentation model, loaded (and fetched once from its registry package) on first use."""
        if "segmenter" not in self._lazy:
            from .segment import Segmenter

            self._lazy["segmenter"] = Segmenter(threads=self.threads)
        return self._lazy["segmenter"]

    @property
    def heads(self) -> bool:
        """Whether faces go through the head model (in background mode the person keeps its face)."""
        return self.settings.faces and self.settings.part != "background"

    @property
    def segmented(self) -> bool:
        return needs_mask(self.settings.part, self.backdrop)

    def stylize(self, image: np.ndarray) -> np.ndarray:
        """RGB, RGBA or grey uint8 in; the same layout out (alpha passed through).

        With ``Settings.crop`` the result is the auto-cropped picture; with a ``transparent``
        background it is RGBA (alpha = the person mask).
        """
        return self._render(*self._frame(image))

    def before_after(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The photo as the result frames it (capped by ``max_side``, cut by ``crop``; RGB or RGBA)
        and the result, from one face detection: the two sides of a comparison slider."""
        rgb, alpha, faces = self._frame(image)
        before = rgb if alpha is None else np.concatenate([rgb, alpha], axis=2)
        return before, self._render(rgb, alpha, faces)

    def side_by_side(self, image: np.ndarray) -> np.ndarray:
        """Input | output in one picture, as ``video --side-by-side`` writes frames (the input as the
        result frames it; opaque beside a transparent result)."""
        before, after = self.before_after(image)
        if before.shape[2] < after.shape[2]:
            before = np.dstack([before, np.full(before.shape[:2], 255, np.uint8)])
        return np.hstack([before, after])

    def _frame(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, list[Face]]:
        """Checked, capped, face-detected and auto-cropped RGB, its alpha (if any) and its faces."""
        from .images import to_rgb8
        from PIL import Image

        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"expected a uint8 HxW, HxWx3 or HxWx4 array, got {image.dtype} {image.shape}")
        grey = image.ndim == 2 or image.shape[2] == 1
        rgb = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, 2) if grey else image
        if self.settings.max_side and max(rgb.shape[:2]) > self.settings.max_side:
            rgb = to_rgb8(Image.fromarray(rgb), self.settings.max_side)
        alpha = rgb[..., 3:] if rgb.shape[2] == 4 else None
        rgb = np.ascontiguousarray(rgb[..., :3])
        faces = self.detector.detect(rgb) if self.heads or self.aspect else []
        if self.aspect:
            from .framing import photo_crop

            win = photo_crop(rgb.shape[:2], faces, self.aspect)
            rgb = np.ascontiguousarray(win.apply(rgb))
            alpha = win.apply(alpha) if alpha is not None else None
            faces = [f.shifted(win.x, win.y) for f in faces]
        return rgb, alpha, faces

    def _render(self, rgb: np.ndarray, alpha: np.ndarray | None, faces: list[Face]) -> np.ndarray:
        bgr = rgb[..., ::-1]
        out = self.stylize_bgr(bgr, faces if self.heads else [])
        if self.segmented:
            out = blend(bgr, out, self.segmenter(rgb), self.settings.part, self.backdrop)
        out = cv2.cvtColor(out, cv2.COLOR_BGRA2RGBA if out.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        if alpha is not None:
            if out.shape[2] == 4:
                out[..., 3:] = np.minimum(out[..., 3:], alpha)
            else:
                out = np.concatenate([out, alpha], axis=2)
        return out

    def stylize_video(self, src, dst, *, start: float | None = None, end: float | None = None, crf: int = 20,
                      preset: str = "veryfast", keep_partial: bool = False, progress=None, bar: bool | None = None,
                      temporal: bool = True, detect_every: int = 3, blend: float = 0.8, warmup: float = 0.0,
                      audio: bool = True, side_by_side: bool = False):
        """Stylize a video file into ``dst`` (streaming, audio kept, temporally stable): trim with
        ``start``/``end`` (seconds), H.264 ``crf``/``preset``, ``keep_partial`` on Ctrl-C,
        ``progress(done, total)``, a tqdm ``bar``, ``temporal`` tracking and blending (``detect_every``
        frames, ``blend`` strength), ``warmup`` seconds before ``start`` that settle them unwritten,
        ``audio=False`` for the picture only, ``side_by_side`` for input | output; a ``.gif``/``.webp``
        ``dst`` is a short animation. See :func:`dctoon.video.stylize_video`; returns a
        :class:`dctoon.video.VideoResult`."""
        from .video import stylize_video

        return stylize_video(self, src, dst, start=start, end=end, crf=crf, preset=preset,
                             keep_partial=keep_partial, progress=progress, bar=bar, temporal=temporal,
                             detect_every=detect_every, blend=blend, warmup=warmup, audio=audio,
                             side_by_side=side_by_side)

    def stylize_bgr(self, bgr: np.ndarray, faces: list[Face], weights: list[float] | None = None) -> np.ndarray:
        """The core step on one BGR frame, with faces found by the caller (video tracks them).

        ``weights`` scale each face's blend mask (video fades faces in and out).
        """
        bgr = np.ascontiguousarray(bgr)
        face_s, back_s = self.settings.strengths
        result = soften(bgr, self.background(bgr) if back_s else bgr, back_s, self.background)
        weights = [1.0] * len(faces) if weights is None else weights
        kept = [(f, w) for f, w in zip(faces, weights) if f.size >= self.settings.min_face]
        if not kept or face_s == back_s == 0:
            return result
        faces, weights = [f for f, _ in kept], [w for _, w in kept]
        by_size: dict[int, list[int]] = {}
        for i, f in enumerate(faces):
            by_size.setdefault(self.crop_size(f), []).append(i)
        for size, idx in sorted(by_size.items()):  # one batched run per crop size
            crops, mats = zip(*(align(bgr, faces[i].landmarks, size) for i in idx))
            crops = np.stack(crops)
            heads = np.stack([soften(c, h, face_s, self.head) for c, h in
                              zip(crops, self.head.run_batch(crops) if face_s else crops)])
            result = compose(result, heads, mats, self.mask(size), [weights[i] for i in idx])
        return result

    def crop_size(self, face: Face) -> int:
        """The aligned crop side: 288 (DCT-Net's) unless the face is bigger in the frame than
        in a 288 crop; then as large as the face (multiple of 4, capped) so no detail is lost."""
        s = self.settings
        native = s.head_size / np.hypot(*alignment_matrix(face.landmarks, s.head_size)[:, 0])
        return int(min(max(s.head_size, np.ceil(native / 4) * 4), max(s.max_head_size, s.head_size)))

    def mask(self, size: int) -> np.ndarray:
        if size not in self._masks:
            self._masks[size] = blend_mask(size)
        return self._masks[size]


def soften(photo: np.ndarray, cartoon: np.ndarray, strength: float, ttn) -> np.ndarray:
    """Less cartoon: the network's output mixed with the photo *before* its guided filter (the
    photo as guide, the style's radius and eps). The filter is linear in what it filters, so that
    is ``s * cartoon + (1 - s) * filter(photo)``: every edge comes from the photo at any strength,
    nothing is ghosted. 1 is the cartoon exactly, 0 the photo exactly."""
    if strength >= 1.0:
        return cartoon
    if strength <= 0.0:
        return photo
    imp = ttn.imported
    x = photo.astype(np.float32) / 127.5 - 1.0
    k = (2 * imp.radius + 1,) * 2
    box = (lambda t: cv2.boxFilter(t, -1, k, normalize=True, borderType=cv2.BORDER_CONSTANT))
    n = box(np.ones(x.shape[:2], np.float32))[..., None]
    mean = box(x) / n
    var = box(x * x) / n - mean * mean
    a = var / (var + imp.eps)
    smooth = (box(a) / n * x + box(mean * (1 - a)) / n + 1.0) * 127.5
    out = strength * cartoon.astype(np.float32) + (1.0 - strength) * smooth
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def compose(background: np.ndarray, heads: np.ndarray, matrices, mask: np.ndarray, weights) -> np.ndarray:
    """Paste stylized head crops back with their feathered masks.

    Overlapping faces are averaged by mask weight and the union is laid over the background
    with alpha = 1 - prod(1 - m_i), so the result does not depend on face order.
    """
    h, w = background.shape[:2]
    size = heads.shape[1]
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    inverses = [cv2.invertAffineTransform(m) for m in matrices]
    pts = np.concatenate([corners @ inv.T for inv in inverses])
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + 1, 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return background
    roi = (slice(y0, y1), slice(x0, x1))
    acc = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    total = np.zeros((y1 - y0, x1 - x0, 1), np.float32)
    keep = np.ones((y1 - y0, x1 - x0, 1), np.float32)
    for head, inv, wgt in zip(heads, inverses, weights):
        shift = inv.copy()
        shift[:, 2] -= (x0, y0)
        dsize = (x1 - x0, y1 - y0)
        m = cv2.warpAffine(mask, shift, dsize, flags=cv2.INTER_LINEAR, borderValue=0)[..., None] * wgt
        face = cv2.warpAffine(head, shift, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        acc += m * face
        total += m
        keep *= 1.0 - m
    alpha = 1.0 - keep
    faces = acc / np.maximum(total, 1e-6)
    out = background.copy()
    out[roi] = np.clip(alpha * faces + keep * background[roi] + 0.5, 0, 255).astype(np.uint8)
    return out


def _check_fields(names, what: str) -> None:
    """Keyword arguments that are not ``Settings`` fields: a TypeError naming the first."""
    unknown = set(names) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"unknown {what} {sorted(unknown)[0]!r}")


def load(style: str | None = None, settings: Settings | None = None, *, threads: int = 0, tile: int = 1536,
         device: str = "auto", **options) -> Cartoonizer:
    """A ``Cartoonizer`` for a style name or a model path (default: the first built-in style).

    ``threads``, ``tile`` and ``device`` (auto, cpu, openvino, cuda or tensorrt) shape the loaded models;
    keyword options override ``Settings`` fields, e.g. ``load("anime", max_side=1080)``.
    """
    from .styles import default_style

    _check_fields(options, "option")
    return Cartoonizer(resolve(style or default_style()), dataclasses.replace(settings or Settings(), **options),
                       threads=threads, tile=tile, device=device)
