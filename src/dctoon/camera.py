"""The virtual camera of auto-crop for videos: face detections over a span in, one window per frame
out. No I/O: :mod:`dctoon.video.analyze` decodes the video and runs the detector.

Two passes, like the auto-reframe tools that work well (an online follower must either lag or
jitter; offline, the camera can anticipate). The first (:func:`dctoon.video.analyze.analyze`)
gives the :class:`Sightings` of a span: faces every few frames, on scene cuts, and densely where a face moved
fast. :func:`plan` turns it into windows. The window size is fixed (no zoom pumping).
Detections are linked into per-person tracklets, one subject is chosen per shot (the most
prominent person over time, joined by faces close enough to share the frame) and kept until it
disappears, so the camera never hops between people. The composition target is cut into
"holds" (the camera stays still while the subject moves less than a dead zone), smoothed by a
quadratic path optimisation (penalising velocity and acceleration), and a constrained re-solve
pins the path wherever a subject face box would leave the window, so every face box lies inside
on every frame while the path stays smooth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .face import Face, greedy_match
from .framing import EYE_LINE, PROMINENT, SURE, axis_range, clip_box, eye_y, union, window_size

__all__ = ["Sightings", "motion_stats", "plan", "plan_path", "refine_needed"]

@dataclass
class Sightings:
    """What :func:`dctoon.video.analyze.analyze` saw: faces on the detection frames, in full-resolution pixels.

    ``frame_hw`` is the upright (rotation applied) size of the decoded frames; ``times`` has one
    timestamp per decoded frame (seconds, the stream's pts); ``detected`` the indices of the
    frames the detector ran on and ``faces`` what it found there (largest first); ``cuts`` the
    first frame of every shot (0 included).
    """

    frame_hw: tuple[int, int]
    fps: float
    times: np.ndarray
    detected: np.ndarray
    faces: list[list[Face]]
    cuts: np.ndarray
    every: int
    seconds: float = 0.0
    refine: float | None = 0.1

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def thinned(self, every: int) -> "Sightings":
        """The track :func:`analyze` would have returned with ``every`` (and this ``refine``),
        from a track analysed with ``every=1``.

        Detection is deterministic, so this equals a second analysis without decoding twice
        (used to measure a detection rate against every-frame ground truth).
        """
        if self.every != 1 or len(self.detected) != self.n_frames:
            raise ValueError("thinned() needs a track analysed with every=1")
        cuts = set(int(c) for c in self.cuts)
        keep: list[int] = []
        prev = None
        for i in range(self.n_frames):
            if i % every and i not in cuts:
                continue
            if prev is not None and i not in cuts and refine_needed(self.faces[prev], self.faces[i], self.refine):
                keep.extend(range(prev + 1, i))
            keep.append(i)
            prev = i
        return Sightings(self.frame_hw, self.fps, self.times, self.detected[keep],
                     [self.faces[k] for k in keep], self.cuts, every, self.seconds, self.refine)


def refine_needed(before: list[Face], after: list[Face], threshold: float | None) -> bool:
    """Whether the frames between two scheduled detections need detecting too: a (sure) face
    came or went, or one moved by more than ``threshold`` of its size (a box corner's displacement).
    Interpolating such a gap would guess; detecting it costs only where the motion is."""
    if threshold is None:
        return False
    before = [f for f in before if f.score >= SURE] or before
    after = [f for f in after if f.score >= SURE] or after
    if len(before) != len(after):
        return True
    for f in after:
        centre = (f.box[:2] + f.box[2:]) / 2
        g = min(before, key=lambda g: float(np.linalg.norm((g.box[:2] + g.box[2:]) / 2 - centre)))
        if float(np.abs(f.box - g.box).max()) > threshold * max(f.size, 1.0):
            return True
    return False


# 8-bit pixel formats whose first plane is the luma at full size.


@dataclass
class _Tracklet:
    """One person's face across detection frames (linked by position and size)."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    eyes: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    _suffix: np.ndarray | None = field(default=None, repr=False)

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def remaining(self, frame: int) -> float:
        """Prominence still ahead: face size summed over the detections from ``frame`` on."""
        if self._suffix is None or len(self._suffix) != len(self.sizes) + 1:
            self._suffix = np.concatenate([np.cumsum(np.asarray(self.sizes)[::-1])[::-1], [0.0]])
        return float(self._suffix[np.searchsorted(np.asarray(self.frames), frame, side="left")])


def _link(detected: np.ndarray, faces: list[list[Face]], frame_hw, gap: int) -> list[_Tracklet]:
    """Greedy frame-to-frame linking: a face continues the nearest live tracklet of similar size."""
    tracks: list[_Tracklet] = []
    for i, found in zip(detected, faces):
        i = int(i)
        live = [t for t in tracks if i - t.last <= gap]
        pairs = []
        for a, t in enumerate(live):
            b0 = t.boxes[-1]
            c0, s0 = (b0[:2] + b0[2:]) / 2, t.sizes[-1]
            for b, f in enumerate(found):
                ratio = f.size / max(s0, 1e-6)
                dist = float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - c0)) / max(s0, f.size, 1.0)
                if 0.6 <= ratio <= 1.67 and dist < 0.75:
                    pairs.append((dist, a, b))
        matched = greedy_match(pairs)
        used_f = {b for _, b in matched}
        for a, b in matched:
            t, f = live[a], found[b]
            t.frames.append(i), t.boxes.append(clip_box(f.box, frame_hw))
            t.eyes.append(eye_y(f)), t.sizes.append(f.size), t.scores.append(f.score)
        for b, f in enumerate(found):
            if b not in used_f:
                tracks.append(_Tracklet([i], [clip_box(f.box, frame_hw)], [eye_y(f)], [f.size], [f.score]))
    return tracks


def _interpolate(t: _Tracklet, n: int, ext: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame geometry of a tracklet over its detections, extended ``ext`` frames beyond its
    ends (the frames before the next detection could have seen it); NaN elsewhere.

    Returns the linearly interpolated box (n, 4) and eye height (n,), for composition, and an
    envelope box (n, 4): the union of the detections around each frame (the one before and the
    one after, and both neighbours on a detection frame). A face between two detections is
    almost always inside their union, whatever it did in between; the face-inside constraint
    uses the envelope, so it holds on the frames the detector did not see as well.
    """
    boxes = np.full((n, 4), np.nan)
    envelope = np.full((n, 4), np.nan)
    eyes = np.full(n, np.nan)
    lo, hi = max(0, t.first - ext), min(n - 1, t.last + ext)
    frames = np.arange(lo, hi + 1)
    src = np.asarray(t.frames, np.int64)
    b = np.asarray(t.boxes)
    for k in range(4):
        boxes[lo:hi + 1, k] = np.interp(frames, src, b[:, k])
    eyes[lo:hi + 1] = np.interp(frames, src, np.asarray(t.eyes))
    last = len(src) - 1
    before = np.searchsorted(src, frames, side="right") - 1          # last detection <= frame
    after = np.searchsorted(src, frames, side="left")                 # first detection >= frame
    on = (before >= 0) & (src[np.clip(before, 0, last)] == frames)
    a = np.clip(before - on, 0, last)
    c = np.clip(after + on, 0, last)
    mid = (a + c) // 2
    stack = np.stack([b[a], b[mid], b[c]])
    envelope[lo:hi + 1] = np.concatenate([stack[..., :2].min(0), stack[..., 2:].max(0)], axis=1)
    return boxes, eyes, envelope


def _fits(box: np.ndarray, w: int, h: int, slack: float = 1.0) -> bool:
    return box[2] - box[0] <= w * slack and box[3] - box[1] <= h * slack


def _subject(detected: np.ndarray, faces: list[list[Face]], lo: int, hi: int, frame_hw: tuple[int, int],
             win: tuple[int, int], fps: float, every: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame subject of the shot ``[lo, hi)``: face-inside box, centring box, eye line, size.

    Rows are NaN where there is no subject. The main person is the most prominent tracklet
    (face size summed over its remaining life) among those present; it is kept until it
    disappears, or until another has become far more prominent and the current one has been
    followed for at least two seconds, so the camera does not hop between people. Tracklets
    seen once, and unsure ones (score < 0.95) when sure ones exist, are ignored. Other faces
    join the subject as a group when they are prominent (half the main face's size or more),
    last a second or more, and fit the window together with it most of the time.
    """
    n = hi - lo
    w, h = win
    sel = [(int(i) - lo, f) for i, f in zip(detected, faces) if lo <= i < hi]
    gap = max(round(1.0 * fps), 2 * every)  # a face missed for up to a second is the same person
    tracks = _link(np.array([i for i, _ in sel], np.int64), [f for _, f in sel], frame_hw, gap)
    # Candidates: seen at least twice (a one-off detection is noise), and sure faces if any.
    candidates = [t for t in tracks if len(t.frames) >= 2] or tracks
    candidates = [t for t in candidates if float(np.median(t.scores)) >= SURE] or candidates
    keep_box = np.full((n, 4), np.nan)
    core_box = np.full((n, 4), np.nan)
    eye = np.full(n, np.nan)
    size = np.full(n, np.nan)
    if not candidates:
        return keep_box, core_box, eye, size

    # Who leads, frame by frame (decided on detection frames, held in between).
    main_of = np.full(n, -1)
    current, since = None, 0
    det_frames = sorted({f for t in candidates for f in t.frames})
    for k, f in enumerate(det_frames):
        alive = [c for c in range(len(candidates)) if candidates[c].first <= f <= candidates[c].last]
        if current is not None and f > candidates[current].last:
            current = None
        if alive and current is None:
            current, since = max(alive, key=lambda c: candidates[c].remaining(f)), f
        elif alive and f - since >= 2.0 * fps:
            best = max(alive, key=lambda c: candidates[c].remaining(f))
            if candidates[best].remaining(f) > 2.0 * candidates[current].remaining(f):
                current, since = best, f
        end = det_frames[k + 1] if k + 1 < len(det_frames) else n
        if current is not None:
            main_of[f:end] = current

    ext = max(every - 1, 1)
    per = [_interpolate(t, n, ext) for t in candidates]
    sizes = [np.sqrt(np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)) for b, _, _ in per]
    for c in sorted(set(main_of[main_of >= 0].tolist())):
        frames = np.nonzero(main_of == c)[0]
        mb = per[c][0]
        frames = frames[~np.isnan(mb[frames, 0])]
        if not len(frames):
            continue
        # Group members: prominent faces that share the window with the main one most of the time.
        members = []
        for o in range(len(candidates)):
            if o == c:
                continue
            ob = per[o][0]
            both = frames[~np.isnan(ob[frames, 0])]
            if not len(both):
                continue
            ratio = float(np.median(sizes[o][both] / np.maximum(sizes[c][both], 1e-6)))
            fit = np.mean([_fits(union(np.stack([mb[i], ob[i]])), w, h, 0.9) for i in both])
            lasting = candidates[o].last - candidates[o].first >= fps  # a passer-by does not pull the camera
            if ratio >= PROMINENT and fit >= 0.8 and lasting:
                members.append(o)
        members.sort(key=lambda o: -float(np.nanmedian(sizes[o])))
        for i in frames:
            group = [c]
            for o in members:
                if not np.isnan(per[o][0][i, 0]) and _fits(union(np.stack([per[g][0][i] for g in group + [o]])), w, h):
                    group.append(o)
            core_box[i] = union(np.stack([per[g][0][i] for g in group]))
            keep_box[i] = union(np.stack([per[g][2][i] for g in group]))
            weights = np.array([sizes[g][i] for g in group])
            eye[i] = float(np.dot(weights, [per[g][1][i] for g in group]) / weights.sum())
            size[i] = sizes[c][i]
    return keep_box, core_box, eye, size


def _fill(values: np.ndarray, valid: np.ndarray, centre: float, hold: int) -> np.ndarray:
    """Fill a target where there is no subject: hold the last value; before the first one, take
    it if it comes within ``hold`` frames (the face was probably there, just not detected yet),
    else the centre."""
    out = values.copy()
    idx = np.nonzero(valid)[0]
    if not len(idx):
        return np.full(len(values), centre)
    first = idx[0]
    out[:first] = values[first] if first <= hold else centre
    last = values[first]
    for i in range(first, len(values)):
        if valid[i]:
            last = values[i]
        else:
            out[i] = last
    return out


def _running_median(values: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1 or len(values) < 3:
        return values
    padded = np.pad(values, radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return np.median(windows, axis=1)


def _holds(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, dead: float) -> np.ndarray:
    """Cut the target into maximal stretches where it varies by at most ``2 * dead`` and one
    position satisfies every frame's bounds; each stretch is held still at its mid-range
    (moved into the bounds). A camera operator's dead zone: no motion for small movements."""
    out = np.empty_like(target)
    start = 0
    tlo = thi = target[0]
    blo, bhi = lo[0], hi[0]

    def close(end: int) -> None:
        out[start:end] = min(max((tlo + thi) / 2, blo), bhi)

    for i in range(1, len(target)):
        v = target[i]
        ntlo, nthi, nblo, nbhi = min(tlo, v), max(thi, v), max(blo, lo[i]), min(bhi, hi[i])
        if nthi - ntlo > 2 * dead or nblo > nbhi:
            close(i)
            start, tlo, thi, blo, bhi = i, v, v, lo[i], hi[i]
        else:
            tlo, thi, blo, bhi = ntlo, nthi, nblo, nbhi
    close(len(target))
    return out


def _solve_penta(a0: np.ndarray, a1: np.ndarray, a2: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a symmetric positive-definite pentadiagonal system (banded Cholesky, O(n)).

    ``a0`` is the diagonal, ``a1``/``a2`` the first/second super-diagonals.
    """
    from scipy.linalg import solveh_banded  # scipy comes with scikit-image

    ab = np.zeros((3, len(a0)))
    ab[2], ab[1, 1:], ab[0, 2:] = a0, a1, a2
    return solveh_banded(ab, b)


def _smooth_path(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, lam1: float, lam2: float) -> np.ndarray:
    """Minimise sum (p - target)^2 + lam1 sum (dp)^2 + lam2 sum (d2p)^2 subject to lo <= p <= hi.

    A primal active-set method: frames outside their bounds are pinned to the bound they
    crossed and the system is solved again (the path bends smoothly around the pins); pins
    whose constraint force points the wrong way (the optimum would leave the bound there) are
    released. Releasing matters: without it the path hugs a noisy bound over whole stretches
    and inherits the detector's jitter, instead of touching it only where it must.
    """
    n = len(target)
    if n < 3:
        return np.clip(target, lo, hi)
    d1 = np.full(n, 2.0)
    d1[[0, -1]] = 1.0
    d2 = np.full(n, 6.0)
    if n == 3:
        d2[:] = [1.0, 4.0, 1.0]
    else:
        d2[[0, -1]] = 1.0
        d2[[1, -2]] = 5.0
    o1 = np.full(n - 1, -4.0)
    o1[[0, -1]] = -2.0
    base0 = 1.0 + lam1 * d1 + lam2 * d2
    base1 = -lam1 + lam2 * o1
    base2 = np.full(n - 2, lam2)

    def gradient(p: np.ndarray) -> np.ndarray:  # (A p - target) with the unpinned matrix
        g = base0 * p - target
        g[:-1] += base1 * p[1:]
        g[1:] += base1 * p[:-1]
        g[:-2] += base2 * p[2:]
        g[2:] += base2 * p[:-2]
        return g

    big = 1e7 * (1.0 + lam1 + lam2)
    low = np.zeros(n, bool)
    high = np.zeros(n, bool)
    tol = 1e-6 * (1.0 + lam2)
    p = target
    for _ in range(200):
        pinned = low | high
        pin_to = np.where(low, lo, hi)
        p = _solve_penta(base0 + big * pinned, base1, base2, target + big * pinned * pin_to)
        g = gradient(p)
        release = (low & (g < -tol)) | (high & (g > tol))
        below = ~pinned & (p < lo - 0.05)
        above = ~pinned & (p > hi + 0.05)
        if not (release.any() or below.any() or above.any()):
            break
        low = (low & ~release) | below
        high = (high & ~release) | above
    return np.clip(p, lo, hi)


def motion_stats(windows: np.ndarray) -> dict[str, float]:
    """Camera motion of a window path: max/mean per-frame movement (px/frame) and max/mean
    acceleration (px/frame^2) of the window's origin (Euclidean over x and y)."""
    p = np.asarray(windows, np.float64)[:, :2]
    if len(p) < 3:
        return dict(max_speed=0.0, mean_speed=0.0, max_accel=0.0, mean_accel=0.0)
    v = np.linalg.norm(np.diff(p, axis=0), axis=1)
    a = np.linalg.norm(np.diff(p, 2, axis=0), axis=1)
    return dict(max_speed=float(v.max()), mean_speed=float(v.mean()),
                max_accel=float(a.max()), mean_accel=float(a.mean()))


def plan(
    track: Sightings,
    frame_hw: tuple[int, int] | None,
    aspect: float,
    fps: float | None = None,
    *,
    smooth: float = 0.5,
    dead_zone: float = 0.04,
    margin: float = 0.1,
    subpixel: bool = False,
) -> np.ndarray:
    """One window per frame, ``[n_frames, 4]`` of ``(x, y, w, h)``, a smooth virtual camera.

    ``frame_hw`` is the size of the frames the windows will cut (None: the track's own size;
    a downscaled size maps the detections accordingly). ``fps`` defaults to the track's.
    The window size is fixed: the largest of ``aspect`` that fits. Per shot, the centre follows
    the subject (see :func:`_subject`): horizontally centred on it, the eye line on the upper
    third. ``dead_zone`` (fraction of the window side) is how far the subject may drift before
    the camera moves; ``smooth`` (seconds) is the time scale of camera moves; ``margin``
    (fraction of the face size) is kept around faces where the window allows (where it is tight,
    a quarter of the spare room on each side). The constraint is the union of the detections
    around each frame, so subject faces stay inside on the frames between detections too (to
    within the detector's own wobble where the face nearly fills the window). Scene cuts start
    a new shot: the camera cuts with it. Frames without a subject hold the last position
    (before the first face of a shot: the centre, unless the face arrives within a second).
    ``subpixel=True`` returns float positions for :func:`crop_window`; otherwise int64.
    """
    return plan_path(track, frame_hw, aspect, fps, smooth, dead_zone, margin, subpixel)[0]


def plan_path(track: Sightings, frame_hw, aspect: float, fps, smooth: float, dead_zone: float, margin: float,
          subpixel: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`plan`, plus a per-frame mask of the frames that had a subject."""
    fh, fw = (int(v) for v in (frame_hw or track.frame_hw))
    fps = float(fps or track.fps or 25.0)
    w, h = window_size((fh, fw), aspect)
    n = track.n_frames
    out = np.zeros((n, 4), np.float64)
    subject = np.zeros(n, bool)
    out[:, 2], out[:, 3] = w, h
    sx, sy = fw / track.frame_hw[1], fh / track.frame_hw[0]
    scale = np.float32([sx, sy])
    faces = [[Face(f.box * np.tile(scale, 2), f.score, f.landmarks * scale) for f in found] for found in track.faces]

    tau = max(smooth * fps, 1.0)
    lam2, lam1 = tau ** 4 / 16.0, tau ** 2 / 4.0
    hold = round(fps)
    cuts = sorted(set(int(c) for c in track.cuts) | {0})
    bounds = cuts[1:] + [n]
    for lo_f, hi_f in zip(cuts, bounds):
        if hi_f <= lo_f:
            continue
        keep, core, eye, size = _subject(track.detected, faces, lo_f, hi_f, (fh, fw), (w, h), fps, track.every)
        valid = ~np.isnan(keep[:, 0])
        subject[lo_f:hi_f] = valid
        m = margin * np.nan_to_num(size, nan=0.0)
        for axis, (win, frame) in enumerate(((w, fw), (h, fh))):
            top = frame - win
            if top <= 0:
                continue  # the window spans this axis: nothing to plan
            lo = np.zeros(hi_f - lo_f)
            hi = np.full(hi_f - lo_f, float(top))
            target = np.full(hi_f - lo_f, np.nan)
            if valid.any():
                # The envelope where it fits the window, else the interpolated box itself.
                a1, a2 = keep[valid, axis], keep[valid, axis + 2]
                tight = a2 - a1 > win
                a1 = np.where(tight, core[valid, axis], a1)
                a2 = np.where(tight, core[valid, axis + 2], a2)
                lo[valid], hi[valid] = axis_range(a1, a2, win, frame, m[valid])
                if axis == 0:
                    want = (core[valid, 0] + core[valid, 2]) / 2 - win / 2
                else:
                    want = eye[valid] - EYE_LINE * win
                target[valid] = np.clip(want, lo[valid], hi[valid])
            target = _fill(target, valid, top / 2, hold)
            target = _running_median(target, max(1, round(0.15 * fps)))
            target = _holds(target, lo, hi, dead_zone * win)
            path = _smooth_path(target, lo, hi, lam1, lam2)
            out[lo_f:hi_f, axis] = path
    if not subpixel:
        out[:, 0] = np.clip(np.round(out[:, 0]), 0, fw - w)
        out[:, 1] = np.clip(np.round(out[:, 1]), 0, fh - h)
        return out.astype(np.int64), subject
    return out, subject
