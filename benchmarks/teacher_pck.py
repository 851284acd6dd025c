"""End-to-end accuracy of the pipeline on video: PCK@0.1·height against a teacher's confident joints.

    python -m benchmarks.teacher_pck VIDEO ...     # label (or find cached) and print people per frame

The teacher is the one-stage YOLO11n-pose (``../shared/data/teachers/yolo11n-pose.pt``, keypoint AP 0.448 on
coco_val2017 against LPN's bundled 0.07). A teacher person is a reference when at least ``MIN_JOINTS`` of its
joints have confidence >= ``JOINT_CONF``; only those joints are scored. Each reference person is matched to
one pipeline pose per frame (Hungarian on box IoU >= ``MIN_IOU``); a joint is correct when the pipeline's
joint lies within ``ALPHA`` x the teacher box height of the teacher's (PCK, Yang & Ramanan, "Articulated
human detection with flexible mixtures of parts", TPAMI 2013, with the person's height as the scale). A
reference person the pipeline misses scores 0 on all its joints, so lost people lower the PCK.

The teacher's labels of every frame are cached per video (keyed by the video's and the teacher's sha256)
in ``lpn_core.weights.cache_dir()/teacher``, outside the repository, so reruns only run the pipelines.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks.videos import SHARED
from lpn_core.tracking import box_iou
from lpn_core.types import Pose
from lpn_core.weights import cache_dir

TEACHER: Final = SHARED / "teachers" / "yolo11n-pose.pt"
TEACHER_IMGSZ: Final = 640
TEACHER_BOX_CONF: Final = 0.25
JOINT_CONF: Final = 0.5  # teacher joints scored
MIN_JOINTS: Final = 10  # teacher people with fewer confident joints are not references
ALPHA: Final = 0.1  # PCK threshold, fraction of the teacher box height
MIN_IOU: Final = 0.3  # box IoU to match a pipeline pose to a reference person


@dataclass(frozen=True)
class TeacherLabels:
    """Every person the teacher found in a video: frame index (P,), boxes (P, 4) xyxy px, keypoints (P, 17, 3)."""

    frames: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    frame_count: int

    def references(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (M, 4) and keypoints (M, 17, 3) of the reference people of one frame."""
        mine = self.frames == frame
        kpts = self.keypoints[mine]
        keep = (kpts[..., 2] >= JOINT_CONF).sum(axis=1) >= MIN_JOINTS
        return self.boxes[mine][keep], kpts[keep]


def sha256_16(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def cache_file(video: Path, teacher: Path = TEACHER) -> Path:
    return cache_dir() / "teacher" / f"{video.stem}-{sha256_16(video)}-{sha256_16(teacher)}-{TEACHER_IMGSZ}.npz"


def label_video(video: Path, teacher: Path = TEACHER) -> TeacherLabels:
    """Run the teacher on every frame of ``video`` (no cache)."""
    from train.pseudo_label import Teacher

    model = Teacher(teacher, imgsz=TEACHER_IMGSZ, conf=TEACHER_BOX_CONF)
    capture = cv2.VideoCapture(str(video))
    frames, boxes, kpts = [], [], []
    index = 0
    while (frame := capture.read()[1]) is not None:
        for person in model(frame):
            frames.append(index)
            boxes.append(person.box)
            kpts.append(np.concatenate([person.keypoints, person.keypoint_scores[:, None]], axis=1))
        index += 1
    capture.release()
    return TeacherLabels(np.asarray(frames, np.int32), np.asarray(boxes, np.float32).reshape(-1, 4),
                         np.asarray(kpts, np.float32).reshape(-1, 17, 3), index)


def teacher_labels(video: Path, teacher: Path = TEACHER) -> TeacherLabels:
    """The teacher's labels of every frame of ``video``, from the cache or made now and cached."""
    for path in (video, teacher):
        if not Path(path).is_file():
            sys.exit(f"error: benchmark data missing: expected {path}")
    target = cache_file(video, teacher)
    if target.is_file():
        data = np.load(target)
        return TeacherLabels(data["frames"], data["boxes"], data["keypoints"], int(data["frame_count"]))
    print(f"teacher: labelling every frame of {video.name} (cached in {target.parent})", file=sys.stderr, flush=True)
    labels = label_video(video, teacher)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}.part.npz")
    np.savez_compressed(partial, frames=labels.frames, boxes=labels.boxes, keypoints=labels.keypoints,
                        frame_count=labels.frame_count)
    partial.replace(target)
    return labels


@dataclass
class Pck:
    """PCK over a run: correct / scored teacher joints, and reference people found (matched) / all."""

    correct: int = 0
    joints: int = 0
    found: int = 0
    people: int = 0

    @property
    def pck(self) -> float:
        return self.correct / self.joints if self.joints else float("nan")

    def add(self, other: Pck) -> None:
        self.correct += other.correct
        self.joints += other.joints
        self.found += other.found
        self.people += other.people


def frame_pck(ref_boxes: np.ndarray, ref_kpts: np.ndarray, poses: list[Pose], alpha: float = ALPHA,
              min_iou: float = MIN_IOU) -> Pck:
    """PCK counts of one frame: reference people (M, 4) boxes, (M, 17, 3) keypoints against ``poses``."""
    scored = ref_kpts[..., 2] >= JOINT_CONF
    result = Pck(joints=int(scored.sum()), people=len(ref_boxes))
    if not len(ref_boxes) or not poses:
        return result
    iou = box_iou(ref_boxes, np.stack([p.box for p in poses]))
    for r, c in zip(*linear_sum_assignment(-iou)):
        if iou[r, c] < min_iou:
            continue
        height = float(ref_boxes[r, 3] - ref_boxes[r, 1])
        dist = np.linalg.norm(poses[c].keypoints[:, :2].astype(np.float64) - ref_kpts[r, :, :2], axis=1)
        result.correct += int(((dist <= alpha * height) & scored[r]).sum())
        result.found += 1
    return result


def video_pck(labels: TeacherLabels, poses: list[list[Pose]], frame_indices: list[int] | None = None) -> Pck:
    """PCK of a run over a video: ``poses[i]`` are the poses of frame ``frame_indices[i]`` (default: i)."""
    total = Pck()
    for i, frame_poses in enumerate(poses):
        total.add(frame_pck(*labels.references(frame_indices[i] if frame_indices else i), frame_poses))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", type=Path)
    args = parser.parse_args()
    for video in args.videos:
        labels = teacher_labels(video)
        refs = [len(labels.references(i)[0]) for i in range(labels.frame_count)]
        print(f"{video.name}: {labels.frame_count} frames, {len(labels.frames)} teacher people, "
              f"{sum(refs)} reference people (>= {MIN_JOINTS} joints >= {JOINT_CONF}), "
              f"{np.mean(refs):.2f} a frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
