"""Pipeline: frame -> person boxes -> ONE batched LPN call -> tracked, smoothed poses (docs/CONTRACTS.md).

Detection runs every ``det_every`` frames; in between each person's box follows its previous confident
keypoints (rtmlib ``det_frequency`` / MediaPipe ROI tracking), but its size stays tied to the last detected
box: at most ``carry_step`` of change a frame, never outside [``carry_min_scale``, ``carry_max_scale``] of the
detected size (docs/PERFORMANCE.md, "Carried boxes"). A person with fewer than ``carry_min_joints`` confident
joints, or whose keypoints ask for a box outside those bounds, keeps its last box for one frame and the
detector runs early on the next (MediaPipe re-detects when its tracked landmarks lose confidence). With
``detector='none'`` the first crop is the whole frame, then it follows the keypoints without size bounds,
back to the whole frame when they are lost (MoveNet smart cropping).
"""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .detections import Detections, PersonDetector
from .detector import load_detector
from .estimator import PoseEstimator, estimator_from_settings
from .errors import LpnError, SourceError
from .stream import as_bgr
from .tracking import Tracker
from .transforms import ASPECT, keypoints_to_boxes
from .timing import StageTimer
from .types import FrameResult, Pose

SCORE_JOINT_THR = 0.2  # joints that count towards the instance score (official IN_VIS_THRE, ANCHORS §1.2)
CARRY_PAD = 1.25  # keypoint box -> next frame's person box (rtmlib/MMDeploy expansion)
CHEAP_SETTINGS = frozenset({"det_every", "carry_max_people", "overlap", "kpt_thr", "smoothing", "tracking",
                            "flip_test", "max_people", "carry_min_joints", "carry_step", "carry_min_scale",
                            "carry_max_scale", "small_crop_px"})


@dataclass
class PipelineSettings:
    model: str = "lpn50"              # lpn50 | lpn101 | lpn152
    weights: str | None = None        # path, None (resolve: cache → download → bundled), or "untrained"
    backend: str = "onnx"             # onnx | torch
    device: str = "cpu"
    detector: str | None = None       # path, None (bundled YOLOX-nano), or "none" (full frame, then follow keypoints)
    det_every: int = 3                # run the detector every N frames; between, boxes from keypoints
    carry_max_people: int = 6         # ...but every frame while more people than this are tracked
    carry_min_joints: int = 5         # a carried box moves only with this many joints >= kpt_thr, else detect
    carry_step: float = 0.1           # a carried box's size changes by at most this fraction a frame
    carry_min_scale: float = 0.7      # ...and stays within these multiples of its last detected size
    carry_max_scale: float = 1.4      #    (keypoints asking for more: keep the box, detect on the next frame)
    det_conf: float = 0.3
    det_iou: float = 0.5
    det_imgsz: int | None = None      # None: the detector's native size
    kpt_thr: float = 0.3
    flip_test: bool = False
    max_people: int = 20
    tracking: bool = True
    overlap: bool = False             # detect on a worker thread beside LPN; the boxes serve the next frame
    smoothing: bool = True            # One-Euro per track
    threads: int | None = None        # ONNX Runtime intra-op threads (None: all cores)
    precision: str = "auto"           # auto | fp32 | int8 (ONNX Runtime static INT8, lpn_core.quantize)
    small_crop_px: int = 0            # crops at most this tall (frame px) run at estimator.small_crop_size


@dataclass(frozen=True, slots=True)
class CarryRule:
    """How a box follows its keypoints between detections (sizes as ``crop_scales``)."""

    min_joints: int = 5  # joints >= kpt_thr needed to move the box
    step: float = 0.1  # largest relative size change a frame
    min_scale: float = 0.7  # bounds, in multiples of the last detected size
    max_scale: float = 1.4

    @staticmethod
    def of(settings: PipelineSettings) -> CarryRule:
        return CarryRule(settings.carry_min_joints, settings.carry_step, settings.carry_min_scale,
                         settings.carry_max_scale)


UNBOUNDED = CarryRule(min_joints=3, step=np.inf, min_scale=0.0, max_scale=np.inf)  # detector 'none'


@dataclass(frozen=True, slots=True)
class Carried:
    """Next frame's boxes, the detected size (``crop_scales``) each descends from, and ``weak``: a person
    kept its box because its keypoints could not move it (the detector then runs on the next frame)."""

    found: Detections
    ref_scales: np.ndarray
    weak: bool

    def __len__(self) -> int:
        return len(self.found)

    @staticmethod
    def empty() -> Carried:
        return Carried(Detections.empty(), np.zeros(0, np.float32), False)


def instance_scores(box_scores: np.ndarray, keypoints: np.ndarray, joint_thr: float = SCORE_JOINT_THR) -> np.ndarray:
    """Box score x mean score of the joints above ``joint_thr`` (0 when none is): (N,) from (N,), (N, 17, 3)."""
    scores = keypoints[..., 2]
    confident = scores > joint_thr
    mean = np.where(confident.any(axis=1), (scores * confident).sum(axis=1) / np.maximum(confident.sum(axis=1), 1), 0.0)
    return (np.asarray(box_scores, np.float64) * mean).astype(np.float32)


def pad_boxes(boxes: np.ndarray, factor: float = CARRY_PAD) -> np.ndarray:
    """Scale boxes (N, 4) about their centres."""
    return scale_boxes(boxes, np.full(len(boxes), factor, np.float32))


def scale_boxes(boxes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Scale each box (N, 4) about its centre by its own factor (N,)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * np.asarray(factors)[:, None]
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def crop_scales(boxes: np.ndarray, aspect: float = ASPECT) -> np.ndarray:
    """The height (N,) px of the crop each box (N, 4) gets, before padding: max(h, w / aspect)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.maximum(boxes[:, 3] - boxes[:, 1], (boxes[:, 2] - boxes[:, 0]) / aspect).astype(np.float32)


def carry_boxes(poses: list[Pose], box_scores: np.ndarray, ref_scales: np.ndarray, kpt_thr: float,
                keep_lost: bool, rule: CarryRule = CarryRule(), frame_hw: tuple[int, int] | None = None) -> Carried:
    """Next frame's person boxes from this frame's raw keypoints.

    A box moves to the padded box (x1.25) of its joints >= ``kpt_thr``, clipped to ``frame_hw``, its size
    changed by at most ``rule.step`` and kept within [``rule.min_scale``, ``rule.max_scale``] x ``ref_scales``
    (the size of the detection it descends from). A person with fewer than ``rule.min_joints`` such joints,
    or whose joints ask for a size outside those bounds (a collapse onto a few joints, a jump onto a
    neighbour), keeps its box (``keep_lost``) or is dropped; either way ``weak`` asks for a detection.
    """
    if not poses:
        return Carried.empty()
    kpt_boxes, ok = keypoints_to_boxes(np.stack([p.keypoints for p in poses]), kpt_thr, rule.min_joints)
    old = np.stack([p.box for p in poses]).astype(np.float32)
    proposed = pad_boxes(kpt_boxes)
    if frame_hw is not None:
        proposed = clip_boxes(proposed, frame_hw[1], frame_hw[0])
    wanted = np.maximum(crop_scales(proposed), 1e-3)
    ref = np.asarray(ref_scales, np.float32)
    low, high = rule.min_scale * ref, rule.max_scale * ref
    inside = ok & (wanted >= low) & (wanted <= high)
    last = np.maximum(crop_scales(old), 1e-3)
    size = np.clip(np.clip(wanted, last * (1 - rule.step), last * (1 + rule.step)), low, high)
    boxes = np.where(inside[:, None], scale_boxes(proposed, size / wanted), old)
    keep = inside | keep_lost
    found = Detections(boxes[keep].astype(np.float32), np.asarray(box_scores, np.float32)[keep])
    return Carried(found, ref[keep], bool(not inside.all()))


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes (N, 4) to the frame."""
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)


class Pipeline:
    """Frame -> FrameResult. Builds the estimator and detector it is not given."""

    def __init__(self, settings: PipelineSettings, estimator: PoseEstimator | None = None,
                 detector: PersonDetector | None = None) -> None:
        self.settings = settings
        self.detector = detector or load_detector(settings.detector, settings.det_conf, settings.det_iou,
                                                  settings.det_imgsz, settings.device,
                                                  threads=settings.threads)  # first: fails fastest
        self.estimator = estimator or estimator_from_settings(settings)
        self.estimator.flip_test = settings.flip_test
        self.tracker = Tracker(smoothing=settings.smoothing)
        self._carried: Carried | None = None  # the next frame's boxes when it does not detect
        self._pending: Future | None = None  # overlap: detections of the last frame, for this one
        self._pool: ThreadPoolExecutor | None = None
        self._since_detect = 0
        self._frames = 0

    @property
    def untrained(self) -> bool:
        return bool(self.estimator.untrained)

    def process(self, frame: np.ndarray, index: int | None = None, timestamp_s: float | None = None) -> FrameResult:
        """One BGR frame -> poses in frame pixels with track ids; per-stage ms in ``times_ms``
        (detect, crop, infer, decode, track; the caller adds draw). ``timestamp_s`` drives the
        smoothing (default: the wall clock). Gray and BGRA frames are converted (``stream.as_bgr``); an
        unusable one (None, empty, not 8-bit) is a SourceError."""
        s = self.settings
        index = self._frames if index is None else index
        frame = self._checked(frame, index)
        timestamp_s = time.perf_counter() if timestamp_s is None else timestamp_s
        self._frames += 1
        timer = StageTimer()
        height, width = frame.shape[:2]
        with timer("detect"):
            found = self._boxes_overlapped(frame) if s.overlap and not self.detector.full_frame else self._boxes(frame)
            found, refs = self._usable(found, width, height)
        keypoints = self.estimator(frame, found.boxes, s.small_crop_px)
        times = self.estimator.times
        timer.ms.update(crop=times.crop, infer=times.infer, decode=times.decode)
        scores = instance_scores(found.scores, keypoints)
        poses = [Pose(keypoints=k, box=b, score=float(sc)) for k, b, sc in zip(keypoints, found.boxes, scores)]
        full_frame = self.detector.full_frame
        self._carried = carry_boxes(poses, found.scores, refs, s.kpt_thr, keep_lost=not full_frame,
                                    rule=UNBOUNDED if full_frame else CarryRule.of(s), frame_hw=(height, width))
        with timer("track"):
            poses = self.tracker.update(poses, timestamp_s)  # always: switching tracking on later keeps ids
            if not s.tracking:
                poses = [dataclasses.replace(p, track_id=None) for p in poses]
        return FrameResult(index=index, frame=frame, poses=poses, times_ms=timer.ms)

    def _usable(self, found: Carried, width: int, height: int) -> tuple[Detections, np.ndarray]:
        """The best ``max_people`` boxes, clipped to the frame, at least 2 px; and the detected size each
        descends from (fresh detections: their own, marked NaN by ``_boxes``)."""
        order = np.argsort(-found.found.scores, kind="stable")[:max(self.settings.max_people, 0)]
        boxes = clip_boxes(found.found.boxes[order], width, height)
        refs = np.where(np.isnan(found.ref_scales[order]), crop_scales(boxes), found.ref_scales[order])
        usable = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= 2  # crops fix the aspect
        return Detections(boxes[usable], found.found.scores[order][usable]), refs[usable].astype(np.float32)

    @staticmethod
    def _checked(frame: np.ndarray, index: int) -> np.ndarray:
        bgr = as_bgr(frame)
        if bgr is None:
            what = "None" if frame is None else f"{getattr(frame, 'dtype', type(frame).__name__)} " \
                f"{getattr(frame, 'shape', '')}"
            raise SourceError(f"frame {index} is not an image ({what}); pass (H, W, 3) uint8 BGR frames")
        return bgr

    def _boxes(self, frame: np.ndarray) -> Carried:
        """This frame's person boxes: detected now, or carried from the last frame's keypoints."""
        if self._should_detect():
            self._since_detect = 1
            return detected(self.detector(frame))
        self._since_detect += 1
        return self._carried

    def _boxes_overlapped(self, frame: np.ndarray) -> Carried:
        """Like ``_boxes``, but when a detection is due it runs on a worker thread beside this frame's LPN
        and serves the next frame (one frame old, like carried boxes). Only the very first frame, or one
        after everyone was lost, waits for the detector."""
        pending, self._pending = self._pending, None
        if pending is None and (self._carried is None or len(self._carried) == 0):
            return self._boxes(frame)  # nothing to carry: detect now
        if pending is not None:
            found, self._since_detect = detected(pending.result()), 1
        else:
            found, self._since_detect = self._carried, self._since_detect + 1
        if self._should_detect():  # for the next frame
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lpn-detect")
            self._pending = self._pool.submit(self.detector, frame)
        return found

    def _should_detect(self) -> bool:
        if self._carried is None or len(self._carried) == 0:
            return True
        if self.detector.full_frame:  # follow the keypoints until they are lost
            return False
        if self._carried.weak or len(self._carried) > self.settings.carry_max_people:
            return True  # a pose faded or its box hit its bounds, or a crowd: carried boxes drift there
        return self._since_detect >= max(1, self.settings.det_every)

    def swap_estimator(self, estimator: PoseEstimator) -> None:
        """Use another model from the next frame on; tracks and smoothing state are kept."""
        estimator.flip_test = self.settings.flip_test
        self.estimator = estimator

    def update(self, **changes: object) -> None:
        """Cheap changes between frames: those in ``CHEAP_SETTINGS`` (detection schedule, carry rule,
        thresholds, smoothing, tracking, flip test, max_people, overlap)."""
        unknown = set(changes) - CHEAP_SETTINGS
        if unknown:
            raise LpnError(f"cannot change {', '.join(sorted(unknown))} on a running pipeline: "
                           f"build a new one (cheap: {', '.join(sorted(CHEAP_SETTINGS))})")
        self.settings = dataclasses.replace(self.settings, **changes)
        if not self.settings.overlap:
            self._drop_pending()
        self.estimator.flip_test = self.settings.flip_test
        self.tracker.smoothing = self.settings.smoothing

    def reset(self) -> None:
        """New source: forget tracks, smoothing state, carried boxes and a detection in flight."""
        self._drop_pending()
        self.tracker.reset()
        self._carried, self._since_detect, self._frames = None, 0, 0

    def close(self) -> None:
        """Finish a detection in flight and stop the detector thread (also done when garbage-collected)."""
        self._drop_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def settle(self) -> None:
        """Wait until a detection in flight has finished, keeping it for the next frame (benchmarks that
        share one detector between pipelines)."""
        if self._pending is not None:
            self._pending.exception()

    def _drop_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()  # wait; its result (or error) belongs to a frame nobody will process


def detected(found: Detections) -> Carried:
    """Fresh detections: each is its own size reference (NaN until clipped to the frame, ``_usable``)."""
    return Carried(found, np.full(len(found), np.nan, np.float32), False)
