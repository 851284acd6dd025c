"""Pipeline: frame -> person boxes -> ONE batched LPN call -> tracked, smoothed poses (docs/CONTRACTS.md).

Detection runs every ``det_every`` frames; in between each person's box comes from its previous
keypoints (rtmlib ``det_frequency`` / MediaPipe ROI tracking). A person with too few confident keypoints
keeps its box for one frame and the detector runs early on the next (MediaPipe re-detects when its
tracked landmarks lose confidence). With ``detector='none'`` the first crop is the whole frame, then it follows
the keypoints, back to the whole frame when they are lost (MoveNet smart cropping).
"""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .detector import Detections, PersonDetector, load_detector
from .estimator import PoseEstimator, estimator_from_settings
from .errors import LpnError, SourceError
from .stream import as_bgr
from .tracking import Tracker
from .transforms import keypoints_to_boxes
from .timing import StageTimer
from .types import FrameResult, Pose

SCORE_JOINT_THR = 0.2  # joints that count towards the instance score (official IN_VIS_THRE, ANCHORS §1.2)
CARRY_PAD = 1.25  # keypoint box -> next frame's person box (rtmlib/MMDeploy expansion)
CHEAP_SETTINGS = frozenset({"det_every", "carry_max_people", "overlap", "kpt_thr", "smoothing", "tracking",
                            "flip_test", "max_people"})


@dataclass
class PipelineSettings:
    model: str = "lpn50"              # lpn50 | lpn101 | lpn152
    weights: str | None = None        # path, None (resolve: cache → download → bundled), or "untrained"
    backend: str = "onnx"             # onnx | torch
    device: str = "cpu"
    detector: str | None = None       # path, None (bundled YOLOX-nano), or "none" (full frame, then follow keypoints)
    det_every: int = 5                # run the detector every N frames; between, boxes from keypoints
    carry_max_people: int = 6         # ...but every frame while more people than this are tracked
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


def instance_scores(box_scores: np.ndarray, keypoints: np.ndarray, joint_thr: float = SCORE_JOINT_THR) -> np.ndarray:
    """Box score x mean score of the joints above ``joint_thr`` (0 when none is): (N,) from (N,), (N, 17, 3)."""
    scores = keypoints[..., 2]
    confident = scores > joint_thr
    mean = np.where(confident.any(axis=1), (scores * confident).sum(axis=1) / np.maximum(confident.sum(axis=1), 1), 0.0)
    return (np.asarray(box_scores, np.float64) * mean).astype(np.float32)


def pad_boxes(boxes: np.ndarray, factor: float = CARRY_PAD) -> np.ndarray:
    """Scale boxes (N, 4) about their centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * factor
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def carry_boxes(poses: list[Pose], box_scores: np.ndarray, kpt_thr: float,
                keep_lost: bool) -> tuple[Detections, bool]:
    """Next frame's person boxes from this frame's raw keypoints: padded keypoint boxes; a person with
    fewer than 3 confident joints keeps its box (``keep_lost``) or is dropped. Also: whether such a weak
    person was kept (the pipeline then detects again on the next frame)."""
    if not poses:
        return Detections.empty(), False
    kpt_boxes, ok = keypoints_to_boxes(np.stack([p.keypoints for p in poses]), kpt_thr)
    old = np.stack([p.box for p in poses]).astype(np.float32)
    boxes = np.where(ok[:, None], pad_boxes(kpt_boxes), old)
    keep = ok | keep_lost
    weak = bool(keep_lost and not ok.all())
    return Detections(boxes[keep].astype(np.float32), np.asarray(box_scores, np.float32)[keep]), weak


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
        self._carried: Detections | None = None
        self._carried_weak = False  # a carried person had < 3 confident joints: detect early
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
            found = found.top(s.max_people)
            boxes = clip_boxes(found.boxes, width, height)
            usable = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= 2  # crops fix the aspect
            found = Detections(boxes[usable], found.scores[usable])
        keypoints = self.estimator(frame, found.boxes)
        times = self.estimator.times
        timer.ms.update(crop=times.crop, infer=times.infer, decode=times.decode)
        scores = instance_scores(found.scores, keypoints)
        poses = [Pose(keypoints=k, box=b, score=float(sc)) for k, b, sc in zip(keypoints, found.boxes, scores)]
        self._carried, self._carried_weak = carry_boxes(poses, found.scores, s.kpt_thr,
                                                        keep_lost=not self.detector.full_frame)
        with timer("track"):
            poses = self.tracker.update(poses, timestamp_s)  # always: switching tracking on later keeps ids
            if not s.tracking:
                poses = [dataclasses.replace(p, track_id=None) for p in poses]
        return FrameResult(index=index, frame=frame, poses=poses, times_ms=timer.ms)

    @staticmethod
    def _checked(frame: np.ndarray, index: int) -> np.ndarray:
        bgr = as_bgr(frame)
        if bgr is None:
            what = "None" if frame is None else f"{getattr(frame, 'dtype', type(frame).__name__)} " \
                f"{getattr(frame, 'shape', '')}"
            raise SourceError(f"frame {index} is not an image ({what}); pass (H, W, 3) uint8 BGR frames")
        return bgr

    def _boxes(self, frame: np.ndarray) -> Detections:
        """This frame's person boxes: detected now, or carried from the last frame's keypoints."""
        if self._should_detect():
            self._since_detect = 1
            return self.detector(frame)
        self._since_detect += 1
        return self._carried

    def _boxes_overlapped(self, frame: np.ndarray) -> Detections:
        """Like ``_boxes``, but when a detection is due it runs on a worker thread beside this frame's LPN
        and serves the next frame (one frame old, like carried boxes). Only the very first frame, or one
        after everyone was lost, waits for the detector."""
        pending, self._pending = self._pending, None
        if pending is None and (self._carried is None or len(self._carried) == 0):
            return self._boxes(frame)  # nothing to carry: detect now
        if pending is not None:
            found, self._since_detect = pending.result(), 1
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
        if self._carried_weak or len(self._carried) > self.settings.carry_max_people:
            return True  # a pose faded, or a crowd: carried boxes drift and the detector is a small share
        return self._since_detect >= max(1, self.settings.det_every)

    def swap_estimator(self, estimator: PoseEstimator) -> None:
        """Use another model from the next frame on; tracks and smoothing state are kept."""
        estimator.flip_test = self.settings.flip_test
        self.estimator = estimator

    def update(self, **changes: object) -> None:
        """Cheap changes between frames: det_every, carry_max_people, kpt_thr, smoothing, tracking, flip_test,
        max_people, overlap."""
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
        self._carried, self._carried_weak, self._since_detect, self._frames = None, False, 0, 0

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
