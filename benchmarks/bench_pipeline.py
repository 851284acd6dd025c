"""Live speed: end-to-end FPS of LPN Pose against the one-stage YOLOv8n-pose INT8 baseline, the per-crop cost
of LPN (INT8 against fp32, one more person), and accuracy beside every speed option, in one run: PCK@0.1·height
against the YOLO11n-pose teacher on the timed frames themselves (``benchmarks.teacher_pck``), and keypoint AP.

    python -m benchmarks.bench_pipeline                # ~3 min on 2 cores (AP included)
    python -m benchmarks.bench_pipeline --frames 20 --street-frames 15 --no-ap    # quick look

LPN runs the bundled project-trained weights (``assets/weights``; weights=None with downloads off, the
bundled YOLOX-nano unless a row names another detector: nothing is fetched). Frames are decoded into
memory first (video decoding is not timed). What is measured, in this order:

1. ``walk_away_720p.mp4`` (1 person). The baseline (Ultralytics YOLOv8n-pose INT8 OpenVINO: predict +
   drawing) and LPN pipelines (detect + crop + LPN + decode + track + draw): **lpn50 default** =
   ``PipelineSettings()`` (det-every 3, precision auto, YOLOX-nano), the headline number; lpn50 det-every
   1 and 5 in fp32 and in int8; lpn101 and lpn152 default; lpn50 default with the shared YOLOv8n INT8
   OpenVINO detector (``--detector``, the recommended upgrade). All run interleaved (frame 0 through every
   configuration, then frame 1, ..., order rotated) so background load hits them alike and ratios hold;
   configurations with the same model and precision share one estimator. Per row: ms/frame mean and
   median, FPS, x baseline, detect and infer ms, the precision that ran (``estimator.precision``), PCK.
2. ``openpose_street_multi_person_720p.avi`` (7-14 people): the baseline, lpn50 det-every 1 (the reference
   for people lost), lpn50 default and the crowd options (YOLOX at a smaller input, half-size crops for
   small people, carrying boxes in crowds), interleaved on the same frames: FPS of each and their ratio to
   the baseline, PCK, people lost against det-every 1 (``bench_tracking.compare_runs``), stage means,
   ms/frame binned by people and the least-squares line ms/frame = a + b x people.
3. Per crop: lpn50 fp32 and INT8 ``estimator.heatmaps`` on batches of 1, 2, 4, 8, 12 real person crops
   (cut from street frames with the detector's boxes), interleaved, median of ``--crop-calls`` calls each:
   INT8 / fp32 at batch 1, and the marginal cost of one more person = least-squares slope over the batch
   sizes / batch-1 time.
4. After the timing (not timed; ``--no-ap`` skips it): keypoint AP on coco_val2017 (104 images) with
   ground-truth boxes and flip test off (the pipeline's setting), train.evaluate's protocol, for every
   (model, precision) that ran, and the baseline's AP on the same images (weights_card.one_stage_ap).
   det-every N does not change still-image AP: its keypoint cost on video against det-every 1 is quoted
   from bench_tracking.py's results/tracking.json.
5. The targets, PASS / MISS: one-person default FPS / baseline >= 2.5; street default / baseline >= 1.0 with
   <= 5 % of the det-every-1 people lost; extra-person marginal cost <= 0.5; INT8 / fp32 per crop <= 0.8.

Prints tables and writes JSON (machine, load averages at start and end, command) to
benchmarks/results/pipeline.json (``--out``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never download anything
os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.bench_tracking import compare_runs  # noqa: E402
from benchmarks.teacher_pck import TeacherLabels, teacher_labels, video_pck  # noqa: E402
from benchmarks.videos import SHARED, STREET, WALK  # noqa: E402
from lpn_core import quantize, transforms  # noqa: E402
from lpn_core.backends import cpu_threads  # noqa: E402
from lpn_core.detector import PersonDetector, load_detector  # noqa: E402
from lpn_core.draw import draw_poses, draw_stats  # noqa: E402
from lpn_core.estimator import PoseEstimator, build_estimator  # noqa: E402
from lpn_core.pipeline import Pipeline, PipelineSettings  # noqa: E402
from lpn_core.types import Pose  # noqa: E402

DETECTOR = SHARED / "detectors" / "yolov8n_int8_openvino_model"
POSE_INT8 = SHARED / "pose_baselines" / "yolov8n-pose_int8_openvino_model"
COCO_VAL = SHARED / "coco_val2017"
TRACKING_JSON = ROOT / "benchmarks" / "results" / "tracking.json"
BASELINE = "YOLOv8n-pose INT8 OpenVINO (one-stage)"
DEFAULT = "lpn50 default"
EVERY_FRAME = "lpn50 det-every 1"  # the street's reference for people lost
SMALL_CROP_PX = (128, 160)  # crops at most this tall (people up to ~100 / ~130 px) run at 64x48 in those rows
MAX_LOST_PCT = 5.0  # street target: people lost against det-every 1
WARMUP = 5
BATCHES = (1, 2, 4, 8, 12)
AP_STATS = ("AP", "AP50", "AP75", "AR")


@dataclass
class Samples:
    """Per-frame measurements of one configuration (warm-up frames excluded)."""

    ms: list[float] = field(default_factory=list)
    people: list[int] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    poses: list[list[Pose]] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)  # video frame index of each sample

    def add(self, ms: float, poses: list[Pose], stages: dict[str, float], frame: int) -> None:
        self.ms.append(ms)
        self.people.append(len(poses))
        self.poses.append(poses)
        self.frames.append(frame)
        for stage, value in stages.items():
            self.stages.setdefault(stage, []).append(value)


@dataclass
class Row:
    name: str
    precision: str  # what ran: fp32 | int8 (estimator.precision); the baseline: int8 (OpenVINO)
    detector: str
    frames: int
    ms_mean: float  # throughput: detection frames included (det-every > 1 makes frames unequal)
    ms_median: float
    fps: float
    people_mean: float
    stages_ms: dict[str, float] = field(default_factory=dict)
    ratio_vs_baseline: float | None = None
    ap: float | None = None  # coco_val2017, GT boxes, flip off (section 4)
    pck: float | None = None  # PCK@0.1 against the teacher on the timed frames
    lost_pct: float | None = None  # street: % of the det-every-1 row's person-frames this row left unmatched
    dist_pct: float | None = None  # street: mean joint distance from the det-every-1 row, % of person height


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    if not path.is_file():
        sys.exit(f"error: benchmark data missing: expected {path}")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count and (frame := cap.read()[1]) is not None:
        frames.append(frame)
    cap.release()
    return frames


def video_fps(path: Path) -> float:
    """The video's frame rate (timestamps for the smoothing), 30 if unknown."""
    return cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) or 30.0


def ap_key(estimator: PoseEstimator) -> str:
    """Section 4's key of an estimator's AP: model and the precision that runs, e.g. "lpn50 int8"."""
    return f"{estimator.model_name} {estimator.precision}"


class LpnRunner:
    """One pipeline configuration: process + draw per frame."""

    def __init__(self, name: str, pipeline: Pipeline, fps: float = 30.0) -> None:
        self.name, self.pipeline, self.fps = name, pipeline, fps
        self.precision = pipeline.estimator.precision
        self.detector = Path(pipeline.detector.name).name
        self.ap_key = ap_key(pipeline.estimator)  # the AP of section 4 that belongs to this row

    def step(self, frame: np.ndarray, index: int) -> tuple[float, list[Pose], dict[str, float]]:
        start = time.perf_counter()
        result = self.pipeline.process(frame, index, index / self.fps)
        t_draw = time.perf_counter()
        draw_stats(draw_poses(frame, result.poses), 0.0, result.times_ms, len(result.poses), self.pipeline.untrained)
        end = time.perf_counter()
        return (end - start) * 1e3, result.poses, {**result.times_ms, "draw": (end - t_draw) * 1e3}


class YoloPoseRunner:
    """Ultralytics one-stage pose: predict (its pre/infer/post) + our drawing of its keypoints."""

    precision = "int8 (OpenVINO)"
    detector = "-"
    ap_key = BASELINE

    def __init__(self, name: str, model) -> None:
        self.name, self.model = name, model

    def step(self, frame: np.ndarray, index: int) -> tuple[float, list[Pose], dict[str, float]]:
        start = time.perf_counter()
        result = self.model.predict(frame, verbose=False, save=False)[0]
        kpts = result.keypoints.data.cpu().numpy() if result.keypoints is not None else np.zeros((0, 17, 3))
        poses = [Pose(k.astype(np.float32), b.astype(np.float32), 1.0)
                 for k, b in zip(kpts, result.boxes.xyxy.cpu().numpy())]
        draw_stats(draw_poses(frame, poses), 0.0, {}, len(poses))
        return (time.perf_counter() - start) * 1e3, poses, {}


Runner = LpnRunner | YoloPoseRunner


def rotated(items: list, i: int) -> list:
    """``items`` starting at position ``i`` (mod length): the order interleaved runs change every round."""
    shift = i % len(items)
    return items[shift:] + items[:shift]


def run_interleaved(runners: list[Runner], frames: list[np.ndarray], label: str) -> list[Samples]:
    """Every configuration on frame 0, then every one on frame 1, ... (order rotated each frame): on a
    shared, noisy machine all configurations see the same background load, so their ratios hold."""
    samples = {r.name: Samples() for r in runners}
    print(f"{label}: {len(runners)} configurations interleaved over {len(frames)} frames", file=sys.stderr, flush=True)
    for i, frame in enumerate(frames):
        for runner in rotated(runners, i):
            measured = runner.step(frame, i)
            if i >= WARMUP:
                samples[runner.name].add(*measured, frame=i)
        if i >= WARMUP and (i - WARMUP) % 10 == 9:
            print(f"  {i + 1 - WARMUP} frames timed", file=sys.stderr, flush=True)
    return [samples[r.name] for r in runners]


def summarise(runners: list[Runner], samples: list[Samples], labels: TeacherLabels | None = None,
              reference: str | None = None) -> list[Row]:
    """One row per configuration; ratios against the first (the baseline); PCK against the teacher's
    ``labels``; people lost against the row named ``reference``."""
    rows = []
    ref = next((s for r, s in zip(runners, samples) if r.name == reference), None)
    for runner, s in zip(runners, samples):
        ms = statistics.fmean(s.ms)
        agreement = compare_runs(ref.poses, s.poses) if ref is not None else None
        rows.append(Row(runner.name, runner.precision, runner.detector, len(s.ms), round(ms, 2),
                        round(statistics.median(s.ms), 2), round(1e3 / ms, 2), round(float(np.mean(s.people)), 2),
                        {k: round(statistics.fmean(v), 2) for k, v in s.stages.items()},
                        pck=None if labels is None else round(video_pck(labels, s.poses, s.frames).pck, 4),
                        lost_pct=agreement and agreement.lost_pct, dist_pct=agreement and agreement.dist_pct_mean))
    for r in rows:
        r.ratio_vs_baseline = round(r.fps / rows[0].fps, 2)
    return rows


def people_table(totals: list[float], people: list[int]) -> tuple[list[dict], dict]:
    """ms/frame binned by people/frame, and a least-squares line ms = a + b * people."""
    people_arr, ms_arr = np.array(people), np.array(totals)
    edges = np.unique(np.percentile(people_arr, [0, 25, 50, 75, 100]).round().astype(int))
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (people_arr >= lo) & ((people_arr < hi) if hi != edges[-1] else (people_arr <= hi))
        if mask.any():
            bins.append({"people": f"{lo}-{hi}", "frames": int(mask.sum()), "ms_median": round(float(np.median(ms_arr[mask])), 1),
                         "ms_per_person": round(float(np.median(ms_arr[mask] / np.maximum(people_arr[mask], 1))), 1)})
    slope, intercept = np.polyfit(people_arr, ms_arr, 1) if len(set(people)) > 1 else (float("nan"), float(ms_arr.mean()))
    return bins, {"ms_fixed": round(float(intercept), 1), "ms_per_person": round(float(slope), 1)}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import onnxruntime
    import openvino
    import ultralytics

    return {"cpu": cpu, "cores": cpu_threads(), "threads": torch.get_num_threads(), "vnni": quantize.has_vnni(),
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.__version__, "opencv": cv2.__version__, "ultralytics": ultralytics.__version__,
            "load_avg_start": os.getloadavg()}


# --- building the configurations ------------------------------------------------------------------------

def walk_configs() -> list[tuple[str, PipelineSettings]]:
    """The LPN rows of section 1, as (name, settings)."""
    default = PipelineSettings()
    configs = [(DEFAULT, default)]
    configs += [(f"lpn50 det-every {n} {p}", replace(default, det_every=n, precision=p))
                for n in (1, 5) for p in ("fp32", "int8")]
    configs += [(f"{m} default", replace(default, model=m)) for m in ("lpn101", "lpn152")]
    configs.append((f"{DEFAULT} + YOLOv8n INT8 detector", replace(default, detector=str(DETECTOR))))
    return configs


def street_configs() -> list[tuple[str, PipelineSettings]]:
    """The LPN rows of section 2: det-every 1 (the reference for people lost), the default, and the crowd
    options alone and together: YOLOX at 320 px, half-size crops for small people, boxes carried in crowds."""
    default = PipelineSettings()
    small = {"small_crop_px": SMALL_CROP_PX[-1]}
    carried = {"det_every": 2, "carry_max_people": 10_000}
    options = {"YOLOX 320": {"det_imgsz": 320},
               **{f"crops <= {px} px at 64x48": {"small_crop_px": px} for px in SMALL_CROP_PX},
               "det-every 2 in crowds": carried, "det-every 3 in crowds": {**carried, "det_every": 3},
               f"320 + crops <= {SMALL_CROP_PX[-1]} + det-every 2": {"det_imgsz": 320, **small,
                                                                                         **carried}}
    return [(EVERY_FRAME, replace(default, det_every=1)), (DEFAULT, default),
            *((f"{DEFAULT} + {label}", replace(default, **changes)) for label, changes in options.items())]


def build_estimators(settings: list[PipelineSettings]) -> dict[tuple[str, str], PoseEstimator]:
    """One estimator per (model, precision asked) on the bundled weights, never downloading; an explicit
    precision reuses its model's auto estimator when auto picked it (building costs seconds). Models that
    some setting runs with small crops get their half-size backend too."""
    small = {s.model for s in settings if s.small_crop_px}
    built: dict[tuple[str, str], PoseEstimator] = {}
    for s in sorted(settings, key=lambda s: s.precision != "auto"):  # auto first
        if (s.model, s.precision) in built:
            continue
        same = next((e for (m, _), e in built.items() if m == s.model and e.precision == s.precision), None)
        built[(s.model, s.precision)] = same or build_estimator(
            s.model, s.weights, s.backend, s.device, s.flip_test, s.threads, download=False, precision=s.precision,
            small_crops=s.model in small)
    return built


def build_detectors(settings: list[PipelineSettings]) -> dict[tuple[str | None, int | None], PersonDetector]:
    """One detector per (``settings.detector``, ``det_imgsz``) (None: the bundled YOLOX-nano), never downloading."""
    first = {(s.detector, s.det_imgsz): s for s in reversed(settings)}
    return {key: load_detector(s.detector, s.det_conf, s.det_iou, s.det_imgsz, s.device, allow_download=False,
                               threads=s.threads) for key, s in first.items()}


def lpn_runners(configs: list[tuple[str, PipelineSettings]], estimators: dict[tuple[str, str], PoseEstimator],
                detectors: dict[tuple[str | None, int | None], PersonDetector], fps: float) -> list[LpnRunner]:
    return [LpnRunner(name, Pipeline(s, estimators[(s.model, s.precision)], detectors[(s.detector, s.det_imgsz)]), fps)
            for name, s in configs]


def baseline_runner() -> YoloPoseRunner:
    from ultralytics import YOLO

    return YoloPoseRunner(BASELINE, YOLO(str(POSE_INT8), task="pose"))


# --- sections 2-4 ---------------------------------------------------------------------------------------

def street_section(runners: list[Runner], frames: list[np.ndarray], labels: TeacherLabels) -> dict:
    """Baseline and the LPN crowd rows interleaved on the street frames: PCK, people lost against
    det-every 1, people table and fit of each."""
    samples = run_interleaved(runners, frames, "street")
    rows = summarise(runners, samples, labels, reference=EVERY_FRAME)
    fits = {}
    for runner, s in zip(runners, samples):
        bins, fit = people_table(s.ms, s.people)
        fits[runner.name] = {"bins": bins, "fit": fit}
    default = next(r for r in rows if r.name == DEFAULT)
    return {"frames": rows[0].frames, "rows": [asdict(r) for r in rows], "ratio": default.ratio_vs_baseline,
            "lost_pct": default.lost_pct, "people": fits}


def person_crops(frames: list[np.ndarray], detector: PersonDetector, input_size: tuple[int, int],
                 count: int) -> np.ndarray:
    """``count`` normalised crops (count, 3, H, W) of the people ``detector`` finds in ``frames`` (``input_size``
    (H, W)), repeated when fewer are found."""
    crops: list[np.ndarray] = []
    for frame in frames:
        boxes = detector(frame).boxes
        if len(boxes):
            affines = transforms.crop_affines(*transforms.box_to_center_size(boxes), 0.0, input_size)
            crops.append(transforms.normalize(transforms.warp_crops(frame, affines, input_size)))
        if sum(map(len, crops)) >= count:
            break
    if not crops:
        sys.exit("error: the detector found nobody to crop for the per-crop timing")
    found = np.concatenate(crops)
    return found[np.arange(count) % len(found)]


def time_crops(heatmaps: dict[str, Callable[[np.ndarray], np.ndarray]], crops: np.ndarray,
               calls: int) -> dict[str, dict[int, float]]:
    """Median ms of each function on each batch size of ``BATCHES``, all interleaved (order rotated per
    round) after one warm-up call each."""
    jobs = [(label, b) for label in heatmaps for b in BATCHES]
    times: dict[tuple[str, int], list[float]] = {job: [] for job in jobs}
    for label, b in jobs:
        heatmaps[label](crops[:b])
    for i in range(calls):
        for label, b in rotated(jobs, i):
            start = time.perf_counter()
            heatmaps[label](crops[:b])
            times[(label, b)].append((time.perf_counter() - start) * 1e3)
    return {label: {b: round(statistics.median(times[(label, b)]), 3) for b in BATCHES} for label in heatmaps}


def crop_cost(ms: dict[int, float]) -> dict:
    """Least squares ms = fixed + per_crop x batch; marginal = per_crop / batch-1 time."""
    slope, intercept = np.polyfit(list(ms), list(ms.values()), 1)
    return {"ms": ms, "ms_per_extra_crop": round(float(slope), 3), "ms_fixed": round(float(intercept), 3),
            "marginal": round(float(slope) / ms[1], 3)}


def crop_section(estimators: dict[tuple[str, str], PoseEstimator], frames: list[np.ndarray],
                 detector: PersonDetector, calls: int) -> dict:
    """Per-crop cost of lpn50 fp32 and INT8; ``default`` says which one lpn50 default runs."""
    fp32, int8 = estimators[("lpn50", "fp32")], estimators[("lpn50", "int8")]
    crops = person_crops(frames, detector, fp32.input_size, max(BATCHES))
    print(f"per crop: lpn50 fp32 and int8, batches {BATCHES}, {calls} calls each", file=sys.stderr, flush=True)
    medians = time_crops({"fp32": fp32.heatmaps, "int8": int8.heatmaps}, crops, calls)
    default = estimators[("lpn50", "auto")].precision
    return {"calls": calls, "crop_hw": list(fp32.input_size), "default": default,
            "int8_over_fp32_batch1": round(medians["int8"][1] / medians["fp32"][1], 3),
            **{label: crop_cost(ms) for label, ms in medians.items()}}


def lpn_ap(estimator: PoseEstimator, coco, instances, ids) -> dict[str, float]:
    from train.evaluate import evaluate

    estimator.flip_test = False  # the pipeline's setting
    with contextlib.redirect_stdout(io.StringIO()):
        stats = evaluate(estimator, coco, instances, image_ids=ids).stats
    return {k: round(stats[k], 4) for k in AP_STATS}


def ap_section(estimators: dict[tuple[str, str], PoseEstimator], data: Path) -> dict[str, dict[str, float]]:
    """Keypoint AP (GT boxes, flip off) per (model, precision that ran), keyed "lpn50 int8", and the
    one-stage baseline's on the same images."""
    from train.data import load_coco, resolve_folder
    from train.evaluate import eval_boxes
    from benchmarks.weights_card import one_stage_ap

    split = resolve_folder(str(data), "val")
    coco = load_coco(split.ann)
    instances, ids = eval_boxes(split, coco, None)
    results: dict[str, dict[str, float]] = {}
    for estimator in estimators.values():
        key = ap_key(estimator)
        if key not in results:
            print(f"AP: {key}", file=sys.stderr, flush=True)
            results[key] = lpn_ap(estimator, coco, instances, ids)
    print(f"AP: {BASELINE}", file=sys.stderr, flush=True)
    with contextlib.redirect_stdout(io.StringIO()):
        stats = one_stage_ap(POSE_INT8, coco, split.images)
    results[BASELINE] = {k: round(stats[k], 4) for k in AP_STATS}
    return results


def tracking_note(det_every: int) -> str:
    """det-every N's PCK against det-every 1 on the tuning videos, from bench_tracking's JSON."""
    if not TRACKING_JSON.is_file():
        return f"det-every {det_every}: run python -m benchmarks.bench_tracking for its PCK against det-every 1"
    videos = json.loads(TRACKING_JSON.read_text())["videos"]
    parts = [f"{video}: PCK {r['pck']:.3f} ({r['pck_delta']:+.3f}), {r['lost_pct']:.1f} % people lost"
             for video, rows in videos.items() for r in rows if r["config"] == str(det_every) and "pck" in r]
    if not parts:
        return f"det-every {det_every}: rerun python -m benchmarks.bench_tracking for its PCK against det-every 1"
    return (f"det-every {det_every} changes no still-image AP; against det-every 1 on the tuning videos "
            f"(benchmarks.bench_tracking, {TRACKING_JSON.relative_to(ROOT)}): " + "; ".join(parts))


# --- targets and report ---------------------------------------------------------------------------------

def target(what: str, value: float | None, op: str, goal: float) -> dict:
    if value is None:
        return {"what": what, "value": None, "target": f"{op} {goal}", "result": "NOT MEASURED"}
    ok = value >= goal if op == ">=" else value <= goal
    return {"what": what, "value": round(value, 2), "target": f"{op} {goal}", "result": "PASS" if ok else "MISS"}


def targets(walk: list[Row], street: dict, crops: dict) -> list[dict]:
    default = next(r for r in walk if r.name == DEFAULT)
    cost = crops[crops["default"]]
    return [target("one person: lpn50 default FPS / baseline FPS", default.ratio_vs_baseline, ">=", 2.5),
            target("street: lpn50 default FPS / baseline FPS", street.get("ratio"), ">=", 1.0),
            target("street: lpn50 default, % people lost vs det-every 1", street.get("lost_pct"), "<=", MAX_LOST_PCT),
            target(f"one more person: marginal cost / batch-1 time ({crops['default']})", cost["marginal"], "<=", 0.5),
            target("per crop: int8 / fp32 batch-1 time", crops["int8_over_fp32_batch1"], "<=", 0.8)]


def print_rows(rows: list[Row]) -> None:
    print(f"{'pipeline':52} {'precision':15} {'ms/frame':>8} {'median':>7} {'FPS':>6} {'x base':>6} "
          f"{'detect':>6} {'infer':>6} {'people':>6} {'PCK':>6} {'lost %':>6} {'dist %':>6} {'AP':>6}  detector")
    for r in rows:
        pck, lost, dist, ap = ("" if v is None else f"{v:.{d}f}"
                               for v, d in ((r.pck, 3), (r.lost_pct, 1), (r.dist_pct, 2), (r.ap, 3)))
        print(f"{r.name:52} {r.precision:15} {r.ms_mean:8.1f} {r.ms_median:7.1f} {r.fps:6.1f} "
              f"{r.ratio_vs_baseline:6.2f} {r.stages_ms.get('detect', float('nan')):6.1f} "
              f"{r.stages_ms.get('infer', float('nan')):6.1f} {r.people_mean:6.1f} {pck:>6} {lost:>6} {dist:>6} "
              f"{ap:>6}  {r.detector}")


def print_street(street: dict) -> None:
    print(f"\n{STREET.name}, {street['frames']} frames, interleaved; "
          f"lpn50 default / baseline FPS = {street['ratio']:.2f}")
    print_rows([Row(**r) for r in street["rows"]])
    for name, table in street["people"].items():
        fit = table["fit"]
        print(f"{name}: ms/frame = {fit['ms_fixed']} + {fit['ms_per_person']} x people (least squares)")
    print(f"{'people/frame':>12} {'frames':>6} {'ms/frame':>9} {'ms/person':>9}   ({DEFAULT})")
    for b in street["people"][DEFAULT]["bins"]:
        print(f"{b['people']:>12} {b['frames']:6d} {b['ms_median']:9.1f} {b['ms_per_person']:9.1f}")


def print_crops(crops: dict) -> None:
    print(f"\nper crop ({crops['crop_hw'][0]}x{crops['crop_hw'][1]} crops, median of {crops['calls']} calls, "
          f"lpn50 default runs {crops['default']}):")
    print(f"{'precision':9} " + " ".join(f"{'batch ' + str(b):>9}" for b in BATCHES) + "  ms/extra crop  marginal")
    for label in ("fp32", "int8"):
        c = crops[label]
        print(f"{label:9} " + " ".join(f"{c['ms'][b]:9.2f}" for b in BATCHES)
              + f"  {c['ms_per_extra_crop']:13.2f}  {c['marginal']:8.2f}")
    print(f"int8 / fp32 at batch 1: {crops['int8_over_fp32_batch1']:.2f}")


def print_ap(ap: dict[str, dict[str, float]], data: Path) -> None:
    print(f"\nkeypoint AP, {data.name}, ground-truth boxes, flip test off (not timed):")
    for key, stats in ap.items():
        print(f"  {key:40} " + "  ".join(f"{k} {stats[k]:.3f}" for k in AP_STATS))


def print_targets(rows: list[dict]) -> None:
    print("\ntargets:")
    for t in rows:
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  {t['what']:58} {value:>6}  target {t['target']:7}  {t['result']}")


def estimator_notes(estimators: dict[tuple[str, str], PoseEstimator]) -> dict[str, dict[str, str]]:
    return {f"{m} {p}": {"ran": e.precision, "note": e.precision_note, "weights": e.weights_label}
            for (m, p), e in estimators.items()}


# --- main -----------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="timed frames of the walking video (every config)")
    parser.add_argument("--street-frames", type=int, default=40, help="timed frames of the street video")
    parser.add_argument("--crop-calls", type=int, default=20, help="timed calls per batch size and precision")
    parser.add_argument("--data", type=Path, default=COCO_VAL, help="COCO folder for the AP")
    parser.add_argument("--no-ap", action="store_true", help="skip the AP evaluations")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    return parser.parse_args()


def measure(args: argparse.Namespace) -> dict:
    """Sections 1-3 (timed), then section 4 (AP, not timed)."""
    started = time.perf_counter()
    walk = read_frames(WALK, args.frames + WARMUP)
    street = read_frames(STREET, args.street_frames + WARMUP) if args.street_frames > 0 else []
    teacher_labels(WALK), teacher_labels(STREET)  # labelled (and cached) before anything is timed
    configs, crowd = walk_configs(), street_configs()
    settings = [s for _, s in configs + crowd]
    estimators, detectors = build_estimators(settings), build_detectors(settings)
    for key, note in estimator_notes(estimators).items():
        print(f"{key}: runs {note['ran']} ({note['note']}), weights {note['weights']}", file=sys.stderr)
    baseline = baseline_runner()
    walk_runners: list[Runner] = [baseline, *lpn_runners(configs, estimators, detectors, video_fps(WALK))]
    walk_rows = summarise(walk_runners, run_interleaved(walk_runners, walk, "walk"), teacher_labels(WALK))
    street_result = street_section([baseline, *lpn_runners(crowd, estimators, detectors, video_fps(STREET))],
                                   street, teacher_labels(STREET)) if street else {}
    crops = crop_section(estimators, street or walk, detectors[(None, None)], args.crop_calls)
    timed_s = time.perf_counter() - started
    ap = {} if args.no_ap else ap_section(estimators, args.data)
    for runner, r in zip(walk_runners, walk_rows):
        r.ap = ap.get(runner.ap_key, {}).get("AP")
    return {"frames": args.frames, "warmup": WARMUP, "estimators": estimator_notes(estimators),
            "walk": walk_rows, "street": street_result, "crops": crops, "ap": ap,
            "ap_protocol": f"{args.data.name}, GT boxes, flip test off" if ap else None,
            "targets": targets(walk_rows, street_result, crops), "seconds_before_ap": round(timed_s, 1)}


def report(result: dict, info: dict, data: Path) -> None:
    print(f"\n{WALK.name}, {result['frames']} frames per config after {WARMUP} warm-up, interleaved; "
          f"{info['cpu']}, {info['cores']} threads; LPN: bundled project-trained weights")
    print_rows(result["walk"])
    print(tracking_note(PipelineSettings().det_every))
    if result["street"]:
        print_street(result["street"])
    print_crops(result["crops"])
    if result["ap"]:
        print_ap(result["ap"], data)
    print_targets(result["targets"])


def main() -> int:
    args = parse_args()
    threads = cpu_threads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    info = machine()
    started = time.perf_counter()
    result = measure(args)
    report(result, info, args.data)
    elapsed = time.perf_counter() - started
    print(f"\nbenchmark took {elapsed / 60:.1f} min ({result['seconds_before_ap'] / 60:.1f} min of it before the AP)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result["walk"] = [asdict(r) for r in result["walk"]]
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": info, **result,
                               "seconds": round(elapsed, 1), "load_avg_end": os.getloadavg()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
