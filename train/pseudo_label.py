"""``python -m train.pseudo_label --teacher T.pt --images DIR [--video V ...] --out OUT``: teacher keypoints as COCO.

Runs a one-stage pose teacher (an Ultralytics ``*-pose.pt``) over folders of images and the frames of
videos, and writes a COCO person-keypoints folder that ``train/`` reads like any other:

    OUT/images/...                    video frames as JPEG (photos are referenced where they lie)
    OUT/annotations/person_keypoints.json

Each person gets the teacher's box, keypoints with v=2 where the teacher's confidence is >= ``--kpt-thr``
and v=0 elsewhere, and the raw per-joint confidences in an extra ``keypoint_scores`` field, which
``train.data`` turns into per-joint loss weights. ``--agreement`` instead scores the teacher against
ground truth (OKS and PCK per threshold), which is how the thresholds were chosen (docs/WEIGHTS.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from lpn_core.backends import torch_threads_kept
from lpn_core.codec import FLIP_PERM
from lpn_core.errors import DataError, LpnError

from .evaluate import COCO_SIGMAS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
TUNING_FOLDER = "videos_tune"  # videos that choose the pipeline's defaults (docs/PERFORMANCE.md): never trained on


@dataclass(frozen=True, slots=True)
class TeacherPerson:
    """One person found by the teacher: box (x1, y1, x2, y2), box score, keypoints (17, 2), scores (17,)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    keypoint_scores: np.ndarray


class Teacher:
    """An Ultralytics pose model that returns :class:`TeacherPerson` lists for BGR images."""

    def __init__(self, path: str | Path, imgsz: int = 640, conf: float = 0.25, flip: bool = False) -> None:
        from ultralytics import YOLO

        if not Path(path).is_file():
            raise DataError(f"teacher '{path}' not found (expected e.g. ../shared/data/teachers/yolo11n-pose.pt)")
        self.model = YOLO(str(path), task="pose")
        self.imgsz, self.conf, self.flip = imgsz, conf, flip

    def __call__(self, image: np.ndarray) -> list[TeacherPerson]:
        people = self.predict(image)
        if not self.flip:
            return people
        mirrored = mirror_people(self.predict(cv2.flip(image, 1)), image.shape[1])
        return merge_flipped(people, mirrored)

    def predict(self, image: np.ndarray) -> list[TeacherPerson]:
        """The teacher's people on one BGR image, single pass."""
        with torch_threads_kept():
            result = self.model.predict(image, imgsz=self.imgsz, conf=self.conf, verbose=False)[0]
        if result.keypoints is None or len(result.boxes) == 0:
            return []
        boxes = result.boxes.xyxy.cpu().numpy()
        scores = result.boxes.conf.cpu().numpy()
        kpts = result.keypoints.data.cpu().numpy()  # (N, 17, 3): x, y, confidence
        return [TeacherPerson(b, float(s), k[:, :2], k[:, 2]) for b, s, k in zip(boxes, scores, kpts)]


def mirror_people(people: list[TeacherPerson], width: int) -> list[TeacherPerson]:
    """People found on the horizontally flipped image, mapped back: x -> width - x, left/right joints swapped.

    Ultralytics reports continuous coordinates (pixel centres at i + 0.5), hence width - x; train.data.flip_instance's
    width - 1 - x is the same mirror for HRNet's pixel-index convention."""
    mirrored = []
    for p in people:
        box = np.array([width - p.box[2], p.box[1], width - p.box[0], p.box[3]])
        keypoints = p.keypoints[FLIP_PERM].copy()
        keypoints[:, 0] = width - keypoints[:, 0]
        mirrored.append(TeacherPerson(box, p.score, keypoints, p.keypoint_scores[FLIP_PERM]))
    return mirrored


def merge_flipped(people: list[TeacherPerson], mirrored: list[TeacherPerson]) -> list[TeacherPerson]:
    """Flip-test averaging for the teacher: each person's box, joints and scores averaged with the mirrored pass's
    person of highest IoU >= 0.5 (as the flip test of top-down models, Xiao et al. 2018); unmatched people kept."""
    merged = []
    for person, twin in zip(people, match_teacher(mirrored, np.array([p.box for p in people]).reshape(-1, 4))):
        if twin is None:
            merged.append(person)
            continue
        weights = np.stack([person.keypoint_scores, twin.keypoint_scores]) + 1e-6  # the surer pass counts more
        keypoints = (weights[..., None] * np.stack([person.keypoints, twin.keypoints])).sum(0) / weights.sum(0)[:, None]
        merged.append(TeacherPerson((person.box + twin.box) / 2, (person.score + twin.score) / 2, keypoints,
                                    (person.keypoint_scores + twin.keypoint_scores) / 2))
    return merged


def image_files(folder: Path) -> list[Path]:
    """Every image under ``folder``, sorted, so ids are stable between runs."""
    if not folder.is_dir():
        raise DataError(f"image folder '{folder}' not found")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def video_frames(video: Path, frames_dir: Path, every: int = 1) -> Iterator[Path]:
    """Write every ``every``-th frame of ``video`` as JPEG under ``frames_dir`` and yield the paths."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DataError(f"cannot open video '{video}'")
    frames_dir.mkdir(parents=True, exist_ok=True)
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                path = frames_dir / f"{video.stem}_{index:06d}.jpg"
                if not path.exists():
                    cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
                yield path
            index += 1
    finally:
        capture.release()


def person_annotation(person: TeacherPerson, ann_id: int, image_id: int, kpt_thr: float) -> dict:
    """COCO annotation of a teacher person: v=2 where confident, 0 elsewhere; raw scores kept."""
    x1, y1, x2, y2 = (float(v) for v in person.box)
    keep = person.keypoint_scores >= kpt_thr
    kpts = np.zeros((17, 3))
    kpts[keep, :2] = person.keypoints[keep]
    kpts[keep, 2] = 2
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "area": round((x2 - x1) * (y2 - y1), 2), "num_keypoints": int(keep.sum()),
            "keypoints": [round(float(v), 2) for v in kpts.ravel()],
            "keypoint_scores": [round(float(v), 4) for v in person.keypoint_scores],
            "score": round(person.score, 4)}


def label_images(teacher: Teacher, paths: list[Path], kpt_thr: float, box_thr: float, min_joints: int,
                 first_image_id: int = 1) -> tuple[list[dict], list[dict]]:
    """COCO ``images`` and ``annotations`` lists for ``paths`` (tqdm progress)."""
    from tqdm import tqdm

    images, anns = [], []
    for offset, path in enumerate(tqdm(paths, desc="teacher", unit="img", dynamic_ncols=True)):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            print(f"warning: skipping unreadable image '{path}'", file=sys.stderr)
            continue
        image_id = first_image_id + offset
        images.append({"id": image_id, "file_name": str(path.resolve()), "height": image.shape[0],
                       "width": image.shape[1]})
        for person in teacher(image):
            if person.score < box_thr or int((person.keypoint_scores >= kpt_thr).sum()) < min_joints:
                continue
            anns.append(person_annotation(person, len(anns) + 1, image_id, kpt_thr))
    return images, anns


def coco_document(images: list[dict], anns: list[dict], teacher: str) -> dict:
    """A person-keypoints json with the standard category and a note of where the labels came from."""
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]
    skeleton = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
    return {"info": {"description": f"pseudo-labels by {teacher} (train.pseudo_label)"},
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names,
                            "skeleton": skeleton}]}


# --- agreement with ground truth: how the thresholds were chosen ---------------------------------------------

def oks(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, area: float) -> float:
    """COCO object keypoint similarity over the labelled joints of one person."""
    d2 = ((pred - gt) ** 2).sum(-1)
    e = d2 / (2 * (2 * COCO_SIGMAS) ** 2 * (area + np.spacing(1)))
    return float(np.exp(-e)[visible].mean()) if visible.any() else float("nan")


def match_teacher(people: list[TeacherPerson], gt_boxes: np.ndarray) -> list[TeacherPerson | None]:
    """For each GT box (x1, y1, x2, y2), the teacher person of highest IoU >= 0.5 (greedy), or None."""
    from lpn_core.tracking import box_iou  # noqa: PLC0415 (only needed here)

    if not people or not len(gt_boxes):
        return [None] * len(gt_boxes)
    iou = box_iou(gt_boxes, np.stack([p.box for p in people]))
    matched: list[TeacherPerson | None] = []
    taken: set[int] = set()
    for row in iou:
        order = [j for j in np.argsort(-row) if row[j] >= 0.5 and j not in taken]
        matched.append(people[order[0]] if order else None)
        if order:
            taken.add(order[0])
    return matched


def downscale(image: np.ndarray, long_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` shrunk (INTER_AREA) so its long side is ``long_side``, and the scale; unchanged if None or smaller."""
    scale = long_side / max(image.shape[:2]) if long_side else 1.0
    if scale >= 1.0:
        return image, 1.0
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def agreement(teacher: Teacher, folders: list[Path], thresholds: list[float], long_side: int | None = None) -> str:
    """Markdown table: per joint-confidence threshold, the share of GT joints kept and their accuracy.

    ``long_side`` scores the teacher on images downscaled to that size (GT scaled alike), e.g. 224 for photos
    that small."""
    from train.data import load_coco, load_instances, resolve_folder

    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]] = []
    found = total = 0
    for folder in folders:
        split = resolve_folder(folder, "train")
        inst = load_instances(split, load_coco(split.ann))
        for path in sorted(set(inst.image_paths)):
            idx = [i for i, p in enumerate(inst.image_paths) if p == path]
            image, scale = downscale(cv2.imread(path), long_side)
            sizes = inst.sizes[idx] * scale / 1.25  # box_to_center_size pads by 1.25; undo for the box
            centers = inst.centers[idx] * scale
            boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], 1)
            for i, person in zip(idx, match_teacher(teacher(image), boxes)):
                total += 1
                if person is None:
                    continue
                found += 1
                w, h = inst.sizes[i] * scale / 1.25
                rows.append((person.keypoints, person.keypoint_scores, inst.joints[i] * scale, inst.visible[i] > 0,
                             float(w * h * 0.53), float(max(w, h))))  # area ~ 0.53 of the box (COCO average)
    lines = [f"teacher found {found} of {total} GT people (IoU >= 0.5)", "",
             "| joint conf >= | GT joints kept | kept joints within PCK@0.05 of box size | mean OKS of kept joints |",
             "|---|---|---|---|"]
    for thr in thresholds:
        kept = labelled = hits = 0
        oks_values = []
        for kp, sc, gt, vis, area, size in rows:
            keep = vis & (sc >= thr)
            labelled += int(vis.sum())
            kept += int(keep.sum())
            dist = np.linalg.norm(kp - gt, axis=-1)
            hits += int((dist[keep] <= 0.05 * size).sum())
            if keep.any():
                oks_values.append(oks(kp, gt, keep, area))
        lines.append(f"| {thr:.2f} | {kept / max(labelled, 1):.3f} | {hits / max(kept, 1):.3f} | "
                     f"{np.mean(oks_values) if oks_values else float('nan'):.3f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.pseudo_label", description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="Ultralytics pose checkpoint, e.g. yolo11n-pose.pt")
    p.add_argument("--images", action="append", default=[], metavar="DIR", help="image folder (repeatable)")
    p.add_argument("--video", action="append", default=[], metavar="FILE", help="video file (repeatable)")
    p.add_argument("--video-every", type=int, default=1, help="label every N-th video frame")
    p.add_argument("--out", help="output COCO folder (images/ for video frames, annotations/person_keypoints.json)")
    p.add_argument("--imgsz", type=int, default=640, help="teacher input size")
    p.add_argument("--flip", action="store_true", help="average the teacher over the image and its mirror (2x time)")
    p.add_argument("--box-thr", type=float, default=0.4, help="minimum person score")
    p.add_argument("--kpt-thr", type=float, default=0.5, help="joints below this confidence get v=0")
    p.add_argument("--min-joints", type=int, default=5, help="drop people with fewer confident joints")
    p.add_argument("--agreement", action="append", default=[], metavar="DIR",
                   help="instead of labelling: score the teacher against this GT COCO folder (repeatable)")
    p.add_argument("--agreement-long-side", type=int, metavar="PX",
                   help="with --agreement: downscale the images to this long side first (224: the photos' size)")
    return p


def refuse_tuning_sources(sources: list[str]) -> None:
    """DataError if a video or image folder lies in a ``videos_tune`` folder: its frames must never reach
    training labels, or the defaults chosen on them would be chosen on trained-on people."""
    for source in sources:
        if TUNING_FOLDER in Path(source).resolve().parts:
            raise DataError(f"'{source}' is in a {TUNING_FOLDER}/ folder: those videos choose the pipeline's "
                            "defaults and are never trained on; label other videos")


def run(args: argparse.Namespace) -> int:
    refuse_tuning_sources([*args.images, *args.video])
    teacher = Teacher(args.teacher, args.imgsz, conf=0.05 if args.agreement else args.box_thr, flip=args.flip)
    if args.agreement:
        print(agreement(teacher, [Path(d) for d in args.agreement], [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                        args.agreement_long_side))
        return 0
    if not args.out or not (args.images or args.video):
        raise LpnError("give --out and at least one --images DIR or --video FILE")
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)  # train.data's folder layout; photos stay where they are
    paths = [p for folder in args.images for p in image_files(Path(folder))]
    for video in args.video:
        paths += list(video_frames(Path(video), out / "images", args.video_every))
    images, anns = label_images(teacher, paths, args.kpt_thr, args.box_thr, args.min_joints)
    ann_path = out / "annotations" / "person_keypoints.json"
    try:
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        ann_path.write_text(json.dumps(coco_document(images, anns, Path(args.teacher).name)))
    except OSError as exc:
        raise LpnError(f"cannot write '{ann_path}': {exc.strerror or exc}") from exc
    print(f"{len(anns)} people on {len(images)} images -> {ann_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
