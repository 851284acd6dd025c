"""The paper's COCO test protocol (LPN_SPEC §3, §4.6): boxes -> flip test -> β-SA -> rescoring -> OKS-NMS -> COCOeval.

``python -m train.evaluate --data DIR --weights PATH|untrained [--boxes detections.json]``.
Heatmaps come from lpn_core's PoseEstimator/backends and codec, so training validation, this CLI and
the app decode identically. Crops of several images are batched together (test batch 32, §4.6).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools.cocoeval import COCOeval

from lpn_core import codec, transforms
from lpn_core.backends import OrtBackend, TorchBackend, cpu_threads
from lpn_core.errors import DataError, LpnError, OutputError
from lpn_core.estimator import PoseEstimator
from lpn_core.model import list_models
from lpn_core.weights import model_with_weights, resolve_weights

from .data import IMREAD_FLAGS, CocoSplit, Instances, load_coco, load_instances, resolve_folder
from .weights_meta import crop_settings

# Standard COCO keypoint sigmas (pycocotools' kpt_oks_sigmas), used by OKS-NMS (§4.6).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


@dataclass(slots=True)
class EvalResult:
    """COCOeval summary (fractions, not %) and the results that produced it."""

    stats: dict[str, float]
    results: list[dict] = field(default_factory=list)
    num_images: int = 0

    def line(self) -> str:
        """One-line summary: AP AP50 AP75 APm APl AR."""
        return " ".join(f"{k} {self.stats[k]:.4f}" for k in STAT_NAMES[:6])


def detection_boxes(path: str | Path, coco, image_dir: Path, score_thre: float = 0.0) -> Instances:
    """Person boxes of a COCO detection-results json (list of {image_id, category_id, bbox, score}).

    As HRNet's _load_coco_person_detection_results: category 1, score >= ``score_thre`` (IMAGE_THRE
    0.0, §4.6), boxes not clipped. Boxes of images absent from ``coco`` are dropped.
    """
    path = Path(path)
    try:
        dets = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"detection file '{path}' is not readable JSON ({str(exc).splitlines()[0][:100]})") from exc
    if not isinstance(dets, list):
        raise DataError(f"detection file '{path}' must be a list of {{image_id, category_id, bbox, score}}")
    try:
        rows = [(int(d["image_id"]), [float(v) for v in d["bbox"]], float(d["score"])) for d in dets
                if d.get("category_id", 1) == 1 and float(d["score"]) >= score_thre and int(d["image_id"]) in coco.imgs]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"detection file '{path}': an entry lacks image_id/bbox/score ({exc})") from exc
    if any(len(r[1]) != 4 for r in rows):
        raise DataError(f"detection file '{path}': every bbox needs 4 numbers (x, y, w, h)")
    if not rows:
        raise DataError(f"detection file '{path}' has no person boxes for the images of the annotations")
    boxes = transforms.xywh_to_xyxy(np.array([r[1] for r in rows]))
    centers, sizes = transforms.box_to_center_size(boxes)
    n = len(rows)
    paths = [str(image_dir / coco.imgs[r[0]]["file_name"]) for r in rows]
    return Instances(paths, np.array([r[0] for r in rows], np.int64), centers, sizes,
                     np.zeros((n, 17, 2)), np.zeros((n, 17), np.float32), np.array([r[2] for r in rows], np.float32))


def _flush(estimator: PoseEstimator, crops: list[np.ndarray], affines: list[np.ndarray]) -> np.ndarray:
    """Keypoints (n, 17, 3) of a batch of crops: flip-merged heatmaps, β-SA + offset, back to pixels."""
    batch, mats = np.concatenate(crops), np.concatenate(affines)
    heatmaps = estimator.heatmaps(batch)
    coords, scores = codec.decode(heatmaps)
    points = transforms.heatmap_to_frame(coords, mats, stride=batch.shape[3] / heatmaps.shape[3])
    return np.concatenate([points, scores[..., None]], axis=2).astype(np.float32)


def predict(estimator: PoseEstimator, instances: Instances, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """Keypoints (N, 17, 3) in image px for every box, crops of consecutive images batched together."""
    out: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    affines: list[np.ndarray] = []
    pending = 0
    order = np.argsort(instances.image_ids, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(instances.image_ids[order]) != 0])
    groups = np.split(order, starts[1:])
    if progress:
        from tqdm import tqdm
        groups = tqdm(groups, desc="eval", unit="img", leave=False, dynamic_ncols=True)
    for group in groups:
        image = cv2.imread(instances.image_paths[group[0]], IMREAD_FLAGS)
        if image is None:
            raise DataError(f"cannot read image '{instances.image_paths[group[0]]}'")
        mats = transforms.crop_affines(instances.centers[group], instances.sizes[group], 0.0, estimator.input_size)
        crops.append(transforms.normalize(transforms.warp_crops(image, mats, estimator.input_size)))
        affines.append(mats)
        pending += len(group)
        if pending >= batch_size:
            out.append(_flush(estimator, crops, affines))
            crops, affines, pending = [], [], 0
    if crops:
        out.append(_flush(estimator, crops, affines))
    keypoints = np.concatenate(out) if out else np.zeros((0, 17, 3), np.float32)
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))
    return keypoints[restore]


def rescore(keypoints: np.ndarray, box_scores: np.ndarray, in_vis_thre: float = 0.2) -> np.ndarray:
    """Box score x mean of the joint maxvals above ``in_vis_thre`` (0 if none), §4.6."""
    conf = keypoints[..., 2]
    mask = conf > in_vis_thre
    count = mask.sum(axis=1)
    mean = np.where(count > 0, (conf * mask).sum(axis=1) / np.maximum(count, 1), 0.0)
    return (mean * box_scores).astype(np.float64)


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """Pairwise OKS (N, N) over all 17 joints, as HRNet's oks_iou with in_vis_thre None."""
    xy = keypoints[..., :2].astype(np.float64)
    d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1)  # (N, N, 17)
    variances = (2 * sigmas) ** 2
    mean_area = (areas[:, None] + areas[None]) / 2 + np.spacing(1)
    e = d2 / variances / mean_area[..., None] / 2
    return np.exp(-e).mean(-1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """Greedy OKS-NMS (§4.6): keep the best-scored pose, drop those with OKS > threshold to it, repeat.

    Hand-written because pycocotools has no NMS; the OKS matrix is one numpy expression, and only the
    greedy pass (inherently sequential) loops, over the poses of one image. Returns kept indices.
    """
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    oks = oks_matrix(keypoints, areas)
    suppressed = np.zeros(len(scores), bool)
    keep = []
    for i in np.argsort(scores)[::-1]:  # HRNet's order: scores.argsort()[::-1]
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= oks[i] > threshold
    return np.array(keep, np.int64)


def coco_results(instances: Instances, keypoints: np.ndarray, in_vis_thre: float = 0.2,
                 oks_thre: float = 0.9) -> list[dict]:
    """Rescore, OKS-NMS per image, and format as COCO keypoint results (category 1)."""
    scores = rescore(keypoints, instances.scores, in_vis_thre)
    areas = instances.sizes[:, 0] * instances.sizes[:, 1]  # (s_w·200)(s_h·200), §4.6
    results = []
    for image_id in np.unique(instances.image_ids):
        idx = np.flatnonzero(instances.image_ids == image_id)
        for i in idx[oks_nms(keypoints[idx], scores[idx], areas[idx], oks_thre)]:
            results.append({"image_id": int(image_id), "category_id": 1,
                            "keypoints": [round(float(v), 3) for v in keypoints[i].reshape(-1)],
                            "score": float(scores[i])})
    return results


def coco_eval(coco, results: list[dict], image_ids: list[int] | None = None) -> dict[str, float]:
    """pycocotools COCOeval, iouType 'keypoints' (maxDets 20); stats as fractions."""
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dets = coco.loadRes(results)
        evaluator = COCOeval(coco, dets, "keypoints")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(max(v, 0.0)) for name, v in zip(STAT_NAMES, evaluator.stats)}


def evaluate(estimator: PoseEstimator, coco, instances: Instances, batch_size: int = 32, in_vis_thre: float = 0.2,
             oks_thre: float = 0.9, image_ids: list[int] | None = None, progress: bool = False) -> EvalResult:
    """Full protocol on ``instances`` (GT or detected boxes with scores)."""
    keypoints = predict(estimator, instances, batch_size, progress)
    results = coco_results(instances, keypoints, in_vis_thre, oks_thre)
    ids = sorted(set(image_ids if image_ids is not None else coco.getImgIds()))
    return EvalResult(coco_eval(coco, results, ids), results, len(ids))


def eval_boxes(split: CocoSplit, coco, boxes: str | None, max_images: int = 0) -> tuple[Instances, list[int] | None]:
    """GT (None) or detected boxes for a split, and the image ids to score (None = all of the json).

    With a detection file only its images are scored, so a partial file (e.g. the 4-image AP-56.4
    excerpt) is not charged for the images it does not cover.
    """
    if boxes is None:
        instances, ids = load_instances(split, coco), None
    else:
        instances = detection_boxes(boxes, coco, split.images)
        ids = sorted(set(instances.image_ids.tolist()))
    if max_images > 0:
        keep_ids = sorted(coco.getImgIds() if ids is None else ids)[:max_images]
        instances = instances.subset(np.isin(instances.image_ids, keep_ids))
        ids = keep_ids
    return instances, ids


def format_table(stats: dict[str, float]) -> str:
    """Two-line table of the ten COCOeval numbers."""
    return " | ".join(f"{k:>5}" for k in STAT_NAMES) + "\n" + " | ".join(f"{stats[k]:5.3f}" for k in STAT_NAMES)


def parse_size(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192) (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 256x192, got '{text}'") from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lpn50", choices=list_models())
    parser.add_argument("--weights", required=True, help="checkpoint .pth (model_best.pth, checkpoint.pth, official) or 'untrained'")
    parser.add_argument("--data", help="COCO folder; uses val2017/ or images/ + annotations/person_keypoints_val2017.json")
    parser.add_argument("--images", help="image folder (instead of --data)")
    parser.add_argument("--ann", help="person_keypoints json (instead of --data)")
    parser.add_argument("--boxes", help="COCO detection-results json (e.g. the AP-56.4 file); default: ground-truth boxes")
    parser.add_argument("--input-size", type=parse_size, default=None,
                        help="crop HxW (default: what the weights record: manifest, checkpoint or run config; else 256x192)")
    parser.add_argument("--flip-shift", type=float, default=None,
                        help="flip-test shift in heatmap px (default: 0.75 for weights trained on unbiased targets, else 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    parser.add_argument("--max-images", type=int, default=0, help="score only the first N images (0 = all)")
    parser.add_argument("--out", help="write the COCO results json here")
    return parser


def build_split(args: argparse.Namespace) -> CocoSplit:
    """--data or --images/--ann -> CocoSplit."""
    if args.images and args.ann:
        return CocoSplit(Path(args.images), Path(args.ann))
    if args.data:
        return resolve_folder(args.data, "val")
    raise LpnError("give --data DIR or both --images DIR and --ann JSON")


def make_estimator(model_name: str, weights: str, input_size: tuple[int, int], backend: str = "torch",
                   device: str = "cpu", flip_test: bool = True, flip_shift: float = 1.0) -> PoseEstimator:
    """Model with weights (``model_with_weights``; 'untrained': the random init) behind a backend, for crops of
    ``input_size``."""
    path = resolve_weights(model_name, weights, download=False)
    net = model_with_weights(model_name, path)
    if backend == "onnx":
        if tuple(input_size) != tuple(net.spec.input_size):
            raise LpnError(f"the onnx backend exports at {net.spec.input_size[0]}x{net.spec.input_size[1]}: "
                           "use --backend torch for other input sizes")
        runner = OrtBackend(net)
    else:
        runner = TorchBackend(net, device)
    return PoseEstimator(runner, model_name=model_name, flip_test=flip_test, untrained=path is None,
                         input_size=tuple(input_size), flip_shift=flip_shift)


def write_results(path: str | Path, results: list[dict]) -> None:
    """COCO results json; OutputError if the folder is not writable."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results))
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {exc.strerror or exc}; choose a writable folder") from exc


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads or cpu_threads())
    split = build_split(args)
    coco = load_coco(split.ann)
    instances, image_ids = eval_boxes(split, coco, args.boxes, args.max_images)
    recorded = crop_settings(args.model, args.weights)
    input_size = args.input_size or recorded.input_size
    flip_shift = recorded.flip_shift if args.flip_shift is None else args.flip_shift
    print(f"crops {input_size[0]}x{input_size[1]}, flip shift {flip_shift:g} px "
          f"({'given' if args.input_size else recorded.source})")
    estimator = make_estimator(args.model, args.weights, input_size, args.backend, args.device, not args.no_flip,
                               flip_shift)
    result = evaluate(estimator, coco, instances, args.batch_size, image_ids=image_ids, progress=True)
    boxes = "ground-truth boxes" if args.boxes is None else f"boxes from {Path(args.boxes).name}"
    print(f"{args.model} {input_size[0]}x{input_size[1]}, {result.num_images} images, {len(instances)} "
          f"{boxes}, flip test {'off' if args.no_flip else 'on'}, {len(result.results)} poses after OKS-NMS")
    print(format_table(result.stats))
    if args.out:
        write_results(args.out, result.results)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
