"""The AP table of docs/WEIGHTS.md: ``python -m benchmarks.weights_card --data ../shared/data/coco_val2017``.

For each bundled (or given) LPN: keypoint AP with ground-truth boxes and with detector boxes, flip test on
and off, by the paper's protocol (train.evaluate: beta-soft-argmax, rescoring, OKS-NMS, pycocotools). Beside
them, one-stage peers scored on the same images by the same COCOeval: YOLO11n-pose (the teacher) and the
YOLOv8n-pose INT8 baseline. A measurement, not a test (STYLE §14).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from lpn_core.backends import cpu_threads
from lpn_core.detector import load_detector
from lpn_core.weights import bundled_weights
from train.data import IMREAD_FLAGS, load_coco, resolve_folder
from train.evaluate import coco_eval, eval_boxes, evaluate, make_estimator, parse_size
from train.weights_meta import CropSettings, crop_settings

SHARED = ROOT.parent / "shared" / "data"


def detection_file(detector_spec: str | None, coco, image_dir: Path, out: Path, conf: float) -> tuple[Path, str]:
    """Run the person detector over every image of ``coco`` and write COCO detection results."""
    detector = load_detector(detector_spec, conf=conf, allow_download=False)
    results = []
    for image_id in sorted(coco.getImgIds()):
        image = cv2.imread(str(image_dir / coco.imgs[image_id]["file_name"]), IMREAD_FLAGS)
        found = detector(image)
        for (x1, y1, x2, y2), score in zip(found.boxes.tolist(), found.scores.tolist()):
            results.append({"image_id": image_id, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    out.write_text(json.dumps(results))
    return out, Path(str(getattr(detector, "name", detector_spec))).name


def one_stage_ap(model_path: Path, coco, image_dir: Path, task_imgsz: int = 640) -> dict[str, float]:
    """Keypoint AP of an Ultralytics pose model (conf 0.001, as the data README measured it)."""
    from ultralytics import YOLO

    model = YOLO(str(model_path), task="pose")
    results = []
    for image_id in sorted(coco.getImgIds()):
        image = cv2.imread(str(image_dir / coco.imgs[image_id]["file_name"]), IMREAD_FLAGS)
        pred = model.predict(image, imgsz=task_imgsz, conf=0.001, verbose=False)[0]
        if pred.keypoints is None:
            continue
        kpts, scores = pred.keypoints.data.cpu().numpy(), pred.boxes.conf.cpu().numpy()
        for k, s in zip(kpts, scores):
            flat = np.concatenate([k[:, :2], np.ones((17, 1))], 1).ravel()
            results.append({"image_id": image_id, "category_id": 1, "keypoints": flat.tolist(), "score": float(s)})
    return coco_eval(coco, results, sorted(coco.getImgIds()))


def lpn_rows(model: str, weights: Path, crops: CropSettings, split, coco, det_json: Path,
             det_name: str) -> list[str]:
    rows = []
    for boxes, label in ((None, "GT boxes"), (str(det_json), f"{det_name} boxes")):
        instances, ids = eval_boxes(split, coco, boxes)
        if boxes is not None:
            ids = sorted(coco.getImgIds())  # images where the detector found no one still count
        for flip in (True, False):
            estimator = make_estimator(model, str(weights), crops.input_size, "torch", "cpu", flip, crops.flip_shift)
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                stats = evaluate(estimator, coco, instances, image_ids=ids).stats
            rows.append(f"| {model} {crops.input_size[0]}x{crops.input_size[1]} | {label} | {'on' if flip else 'off'} | "
                        f"{stats['AP']:.3f} | {stats['AP50']:.3f} | {stats['AP75']:.3f} | {stats['APm']:.3f} | "
                        f"{stats['APl']:.3f} | {stats['AR']:.3f} |")
            print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED / "coco_val2017"))
    p.add_argument("--models", nargs="+", default=["lpn50", "lpn101", "lpn152"])
    p.add_argument("--weights", nargs="*", default=[], help="one file per --models entry (default: the bundled ones)")
    p.add_argument("--input-size", type=parse_size, default=None, help="HxW crops (default: what the weights record: manifest, checkpoint or run config)")
    p.add_argument("--detector", default=None, help="person detector for the detector-box rows (default: bundled)")
    p.add_argument("--det-conf", type=float, default=0.05)
    p.add_argument("--teacher", default=str(SHARED / "teachers" / "yolo11n-pose.pt"))
    p.add_argument("--baseline", default=str(SHARED / "pose_baselines" / "yolov8n-pose_int8_openvino_model"))
    p.add_argument("--no-peers", action="store_true", help="skip the one-stage peers")
    args = p.parse_args(argv)
    torch.set_num_threads(cpu_threads())
    split = resolve_folder(args.data, "val")
    coco = load_coco(split.ann)
    header = ["| model | boxes | flip | AP | AP50 | AP75 | APm | APl | AR |", "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(header), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        det_json, det_name = detection_file(args.detector, coco, split.images, Path(tmp) / "det.json", args.det_conf)
        for i, model in enumerate(args.models):
            if args.weights:
                weights = Path(args.weights[i])
            else:
                entry = bundled_weights(model)
                if entry is None:
                    print(f"| {model} | no bundled weights | | | | | | | |")
                    continue
                weights = entry.path
            crops = crop_settings(model, weights)
            if args.input_size:
                crops = replace(crops, input_size=args.input_size)
            rows += lpn_rows(model, weights, crops, split, coco, det_json, det_name)
    if not args.no_peers:
        for name, path in (("YOLO11n-pose (teacher, fp32, 640)", args.teacher),
                           ("YOLOv8n-pose INT8 (baseline, 640)", args.baseline)):
            with contextlib.redirect_stdout(io.StringIO()):
                stats = one_stage_ap(Path(path), coco, split.images)
            rows.append(f"| {name} | own | - | {stats['AP']:.3f} | {stats['AP50']:.3f} | {stats['AP75']:.3f} | "
                        f"{stats['APm']:.3f} | {stats['APl']:.3f} | {stats['AR']:.3f} |")
            print(rows[-1], flush=True)
    print("\n" + "\n".join(header + rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
