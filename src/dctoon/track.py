"""Temporal stability for video: face tracks with smoothed landmarks, fades, and flow-guided blending.

Stylizing each frame on its own flickers in two ways. The head crop jitters, because MTCNN's
five landmarks wobble by a pixel or two from frame to frame and the head model sees a slightly
different crop each time; and the whole picture shimmers, because the network turns small
changes of sensor noise and compression into visibly different strokes. This module fixes
both, independently of the models:

* :class:`FaceTracker` detects faces every ``detect_every`` frames (and at once on a scene cut
  or when a track is lost), carries the five landmarks between detections with pyramidal
  Lucas-Kanade optical flow (forward-backward checked), gives every face an identity, smooths
  the landmarks with a :class:`OneEuro` filter (steady when still, no lag when moving) and fades
  faces in and out with a blend-weight ramp instead of popping.
* :class:`TemporalBlender` blends the stylized frame with the previous *output* warped onto it
  by DIS optical flow of the input frames. A per-pixel confidence (forward-backward flow
  agreement and photometric agreement of the warped input) confines the blend to pixels that
  really are the same surface, so moving or disoccluded regions take the new frame (no ghosts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .face import Face, greedy_match

__all__ = ["FaceTracker", "OneEuro", "TemporalBlender", "Track", "warp_error", "crop_corners"]


class OneEuro:
    """One-Euro filter (Casiez et al. 2012) on arrays: cutoff rises with speed.

    ``min_cutoff`` (Hz) sets the smoothing when still, ``beta`` how fast the cutoff opens with
    speed (in units of ``scale`` per second, so the same settings suit small and large faces).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        speed = np.linalg.norm(self.dx.reshape(-1, 2), axis=1).mean() / max(scale, 1e-6)
        a = self._alpha(self.min_cutoff + self.beta * speed, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.copy()

    def reset(self) -> None:
        self.x = self.dx = self.t = None


@dataclass
class Track:
    """One face followed through the video."""

    id: int
    landmarks: np.ndarray          # latest measured/propagated landmarks (5, 2)
    box: np.ndarray                # latest box (4,)
    score: float
    smoothed: np.ndarray           # One-Euro output (5, 2)
    filter: OneEuro = field(repr=False, default_factory=OneEuro)
    weight: float = 0.0            # blend weight, ramps 0 -> 1 -> 0
    detected_t: float = 0.0        # last time a detection confirmed this track
    hits: int = 1                  # detections matched to this track
    age: int = 0

    @property
    def size(self) -> float:
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(math.sqrt(max(w, 0) * max(h, 0)))

    def face(self) -> Face:
        # Move the box with the smoothed landmarks so size filters see a consistent face.
        shift = self.smoothed.mean(0) - self.landmarks.mean(0)
        return Face(self.box + np.tile(shift, 2), self.score, self.smoothed)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class SceneCuts:
    """Shot boundaries in a stream of frames: a frame whose small grey thumbnail (48x48, 0-255)
    differs from the previous one by more than ``threshold`` on average starts a new shot. The one
    detector the face tracker, auto-crop's analysis and the mask smoother share."""

    SIZE = (48, 48)

    def __init__(self, threshold: float = 40.0):
        self.threshold = float(threshold)
        self._prev: np.ndarray | None = None

    @classmethod
    def thumbnail(cls, grey: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(grey), cls.SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)

    def reset(self) -> None:
        """Forget the previous frame: the next one does not start a shot."""
        self._prev = None

    def __call__(self, thumb: np.ndarray) -> bool:
        """Whether the frame with this thumbnail starts a new shot (the first frame does not)."""
        cut = self._prev is not None and float(np.abs(thumb - self._prev).mean()) > self.threshold
        self._prev = thumb
        return cut


class FaceTracker:
    """Faces with identities, smoothed landmarks and fade weights, frame after frame.

    ``detect`` is a callable RGB image -> list[Face] (e.g. ``FaceDetector.detect``).
    ``update(bgr, t)`` returns ``(faces, weights, track_ids)`` for :meth:`Cartoonizer.stylize_bgr`.
    ``fade`` is the fade-in/out time in seconds; a face unseen for ``hold`` seconds is dropped
    (it fades out meanwhile, and fades back in if found again).
    """

    def __init__(self, detect, detect_every: int = 3, fade: float = 0.3, hold: float = 0.5,
                 min_cutoff: float = 1.0, beta: float = 4.0, cut_threshold: float = 40.0):
        self.detect = detect
        self.detect_every = max(1, int(detect_every))
        self.fade, self.hold = fade, hold
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []
        self._next_id = 0
        self._prev_gray: np.ndarray | None = None
        self.cuts = SceneCuts(cut_threshold)
        self._prev_t: float | None = None
        self._frame = 0
        self.detections = 0

    def _propagate(self, gray: np.ndarray) -> list[bool]:
        """Move every track's landmarks by LK flow; returns which tracks were followed reliably."""
        ok = [False] * len(self.tracks)
        if self._prev_gray is None or not self.tracks:
            return ok
        p0 = np.concatenate([t.landmarks for t in self.tracks]).astype(np.float32).reshape(-1, 1, 2)
        params = dict(winSize=(21, 21), maxLevel=3,
                      criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(self._prev_gray, gray, p0, None, **params)
        p0b, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self._prev_gray, p1, None, **params)
        fb = np.linalg.norm((p0b - p0).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1)
        p1 = p1.reshape(-1, 5, 2)
        for i, t in enumerate(self.tracks):
            sl = slice(5 * i, 5 * i + 5)
            tol = max(1.0, 0.02 * t.size)
            reliable = good[sl] & (fb[sl] < tol)
            if reliable.sum() >= 3:
                # Move all five points by a similarity fitted to the reliable ones (rigid, no drift apart).
                src, dst = t.landmarks[reliable], p1[i][reliable]
                m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32))
                if m is not None:
                    moved = t.landmarks @ m[:, :2].T + m[:, 2]
                    delta = moved.mean(0) - t.landmarks.mean(0)
                    s = math.sqrt(abs(np.linalg.det(m[:, :2])))
                    c = (t.box[:2] + t.box[2:]) / 2 + delta
                    half = (t.box[2:] - t.box[:2]) / 2 * s
                    t.box = np.concatenate([c - half, c + half]).astype(np.float32)
                    t.landmarks = moved.astype(np.float32)
                    ok[i] = True
        return ok

    def _match(self, faces: list[Face], now: float) -> list[bool]:
        """Assign detections to tracks greedily by IoU; unmatched detections start new tracks."""
        ious = ((_iou(t.box, f.box), i, j) for i, t in enumerate(self.tracks) for j, f in enumerate(faces))
        pairs = greedy_match((-iou, i, j) for iou, i, j in ious if iou >= 0.3)
        used_t, used_f = {i for i, _ in pairs}, {j for _, j in pairs}
        for i, j in pairs:
            t, f = self.tracks[i], faces[j]
            t.landmarks, t.box, t.score, t.detected_t = f.landmarks.copy(), f.box.copy(), f.score, now
            t.hits += 1
        matched = [i in used_t for i in range(len(self.tracks))]
        for j, f in enumerate(faces):
            if j not in used_f:
                self.tracks.append(Track(self._next_id, f.landmarks.copy(), f.box.copy(), f.score,
                                         f.landmarks.astype(np.float64),
                                         OneEuro(self.min_cutoff, self.beta), detected_t=now))
                self._next_id += 1
                matched.append(True)
        return matched

    def update(self, bgr: np.ndarray, t: float) -> tuple[list[Face], list[float], list[int]]:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        dt = 1.0 / 25 if self._prev_t is None or t <= self._prev_t else t - self._prev_t
        cut = self.cuts(SceneCuts.thumbnail(gray))
        new_shot = self._frame == 0 or cut
        if new_shot:
            self.tracks = []  # a cut: faces of the old shot vanish with it, no cross-fade
        ok = self._propagate(gray)
        # Detect on schedule, when nothing is tracked, when a track was lost, and right after a
        # new face appeared (a second detection confirms it before it may fade in).
        due = (self._frame % self.detect_every == 0 or not self.tracks or not all(ok)
               or any(tr.hits < 2 for tr in self.tracks))
        if due:
            self.detections += 1
            matched = self._match(self.detect(np.ascontiguousarray(bgr[..., ::-1])), t)
            ok = ok + [True] * (len(self.tracks) - len(ok))
            if new_shot:  # faces present when a shot starts are there from its first frame
                for track in self.tracks:
                    track.weight, track.hits = 1.0, max(track.hits, 2)
        else:
            matched = [False] * len(self.tracks)
        step = dt / max(self.fade, 1e-6)
        keep = []
        for track, followed, found in zip(self.tracks, ok, matched):
            track.age += 1
            # Seen: confirmed by the detector now, or followed by LK and detected recently.
            # LK alone cannot keep a face alive: it would follow a turned-away head forever;
            # nor can a single detection (a one-frame false positive only flickers in faintly).
            seen = found or (followed and track.hits >= 2 and t - track.detected_t <= self.hold)
            track.weight = min(1.0, track.weight + step) if seen else max(0.0, track.weight - step)
            if not seen and track.weight <= 0.0:
                continue
            track.smoothed = track.filter(track.landmarks, t, scale=max(track.size, 1.0))
            keep.append(track)
        self.tracks = keep
        self._prev_gray, self._prev_t = gray, t
        self._frame += 1
        live = [tr for tr in self.tracks if tr.weight > 0.0]
        return [tr.face() for tr in live], [tr.weight for tr in live], [tr.id for tr in live]


class TemporalBlender:
    """Blend each stylized frame with the previous output warped along the input's optical flow.

    ``strength`` is the weight of the warped history where the flow is trusted (0 disables).
    Confidence falls to 0 where forward and backward flow disagree (occlusion) or where the
    warped previous input differs from the current input (appearance change), so new content
    always comes from the current frame.
    """

    def __init__(self, strength: float = 0.8, photo_sigma: float = 20.0, fb_sigma: float = 2.0,
                 work_side: int = 640, erode: int = 3):
        self.strength, self.erode = strength, erode
        self.photo_sigma, self.fb_sigma = photo_sigma, fb_sigma
        self.work_side = work_side
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._prev_in: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None
        self._coords: dict[tuple[int, int], np.ndarray] = {}  # pixel grids by size: the flows' and the frame's

    def reset(self) -> None:
        self._prev_in = self._prev_gray = self._prev_out = None

    def _grid(self, h: int, w: int) -> np.ndarray:
        """Pixel coordinates (h, w, 2), kept between frames: a flow plus this is a remap map."""
        if (h, w) not in self._coords:
            if len(self._coords) > 1:  # a new frame size: the old grids are of no more use
                self._coords.clear()
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._coords[h, w] = np.dstack([gx, gy])
        return self._coords[h, w]

    def _flows(self, gray_prev, gray):
        """Backward flow (current -> previous) and a forward-backward mismatch, at full size."""
        h, w = gray.shape
        s = min(1.0, self.work_side / max(h, w))
        if s < 1.0:
            size = (max(8, round(w * s)), max(8, round(h * s)))
            a = cv2.resize(gray_prev, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        else:
            a, b = gray_prev, gray
        back = self._dis.calc(b, a, None)   # for each current pixel, where it was before
        fwd = self._dis.calc(a, b, None)
        loop = cv2.remap(fwd, self._grid(*b.shape) + back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        loop += back
        mismatch = cv2.magnitude(loop[..., 0], loop[..., 1])
        if s < 1.0:
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(1 / s)
            mismatch = cv2.resize(mismatch, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(1 / s)
        return back, mismatch

    def __call__(self, frame_in: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        # OpenCV calls throughout: the same arithmetic in numpy took 74 ms a 720p frame, this 20 ms.
        gray = cv2.cvtColor(frame_in, cv2.COLOR_BGR2GRAY)
        if (self.strength <= 0 or self._prev_out is None or self._prev_out.shape != stylized.shape):
            out = stylized
        else:
            back, mismatch = self._flows(self._prev_gray, gray)
            h, w = gray.shape
            where = back + self._grid(h, w)
            warped_out = cv2.remap(self._prev_out, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            warped_in = cv2.remap(self._prev_in, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            diff = cv2.split(cv2.absdiff(warped_in, frame_in))
            photo = cv2.GaussianBlur(cv2.max(cv2.max(diff[0], diff[1]), diff[2]).astype(np.float32), (0, 0), 1.5)
            exponent = cv2.multiply(photo, photo, scale=1 / self.photo_sigma ** 2)
            exponent += cv2.multiply(mismatch, mismatch, scale=1 / self.fb_sigma ** 2)
            conf = cv2.exp(-exponent)
            mx, my = where[..., 0], where[..., 1]
            conf[(mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)] = 0
            if self.erode > 1:  # keep off motion edges
                conf = cv2.erode(conf, np.ones((self.erode, self.erode), np.uint8))
            a = conf * np.float32(self.strength)
            out = cv2.blendLinear(warped_out, stylized, a, 1 - a)
        self._prev_in, self._prev_gray, self._prev_out = frame_in, gray, out
        return out


# --- measurements (bench/temporal.py and tests) -------------------------------------------------

def warp_error(prev_in: np.ndarray, cur_in: np.ndarray, prev_out: np.ndarray, cur_out: np.ndarray) -> float:
    """Temporal warping error: mean |out_t - warp(out_{t-1})| over non-occluded pixels.

    The flow is Farneback on the *input* frames (a different estimator from the DIS flow the
    blender uses, so the metric does not simply reward agreeing with our own flow); occlusions
    are pixels whose forward-backward flow disagree by more than 1 px or that leave the frame.
    """
    a = cv2.cvtColor(prev_in, cv2.COLOR_BGR2GRAY)
    b = cv2.cvtColor(cur_in, cv2.COLOR_BGR2GRAY)
    args = (None, 0.5, 4, 15, 3, 5, 1.2, 0)
    back = cv2.calcOpticalFlowFarneback(b, a, *args)
    fwd = cv2.calcOpticalFlowFarneback(a, b, *args)
    h, w = b.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + back[..., 0], gy + back[..., 1]
    fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = (np.linalg.norm(back + fwd_at, axis=2) < 1.0) & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    warped = cv2.remap(prev_out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = np.abs(warped.astype(np.float32) - cur_out.astype(np.float32)).mean(axis=2)
    return float(diff[valid].mean()) if valid.any() else 0.0


def crop_corners(landmarks: np.ndarray, size: int = 288) -> np.ndarray:
    """The aligned crop's four corners in image pixels (4, 2): one picture of translation, scale, rotation."""
    from .face import alignment_matrix

    inv = cv2.invertAffineTransform(alignment_matrix(landmarks, size))
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    return corners @ inv.T
