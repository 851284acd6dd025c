"""End-to-end pipeline FPS (detect + crop + LPN + decode + track + draw) on real videos, with the
Ultralytics one-stage YOLOv8n-pose baselines measured in the same run, and ms/frame against people/frame.

    python benchmarks/bench_pipeline.py                 # ~5-8 min on 2 cores
    python benchmarks/bench_pipeline.py --frames 20 --street-frames 15 --models lpn50   # quick look

LPN weights are untrained here (random init): the cost of the network does not depend on its weights,
but keypoint scores do, so between detections (det-every > 1) boxes are held rather than re-fitted to
keypoints; the detector cost is the same either way. Frames are decoded into memory first: video
decoding and encoding are not timed. All walking-video configurations run interleaved (frame 0 through
every configuration, then frame 1, ...) so that background load on a shared machine hits them alike and
the ratios hold. Prints a table and writes JSON to benchmarks/results/pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never download anything
os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lpn_core.backends import cpu_threads  # noqa: E402
from lpn_core.detector import YoloDetector  # noqa: E402
from lpn_core.draw import draw_poses, draw_stats  # noqa: E402
from lpn_core.estimator import build_estimator  # noqa: E402
from lpn_core.model import list_models  # noqa: E402
from lpn_core.pipeline import Pipeline, PipelineSettings  # noqa: E402
from lpn_core.types import Pose  # noqa: E402

SHARED = Path(os.environ.get("LPN_SHARED_DATA", ROOT.parent / "shared" / "data"))
WALK = SHARED / "videos" / "walk_away_720p.mp4"
STREET = SHARED / "videos" / "openpose_street_multi_person_720p.avi"
DETECTOR = SHARED / "detectors" / "yolov8n_int8_openvino_model"
POSE_INT8 = SHARED / "pose_baselines" / "yolov8n-pose_int8_openvino_model"
WARMUP = 5


@dataclass
class Row:
    name: str
    frames: int
    ms_mean: float  # throughput: detection frames included (det-every > 1 makes frames unequal)
    ms_median: float
    fps: float
    people_mean: float
    stages_ms: dict[str, float] = field(default_factory=dict)
    ratio_vs_int8_pose: float | None = None


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    if not path.is_file():
        sys.exit(f"error: benchmark data missing: expected {path}")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count and (frame := cap.read()[1]) is not None:
        frames.append(frame)
    cap.release()
    return frames


class LpnRunner:
    """One pipeline configuration: process + draw per frame."""

    def __init__(self, name: str, pipeline: Pipeline, fps: float = 30.0) -> None:
        self.name, self.pipeline, self.fps = name, pipeline, fps

    def step(self, frame: np.ndarray, index: int) -> tuple[float, int, dict[str, float]]:
        self.pipeline.estimator.flip_test = self.pipeline.settings.flip_test  # estimators are shared by flip on/off
        start = time.perf_counter()
        result = self.pipeline.process(frame, index, index / self.fps)
        t_draw = time.perf_counter()
        draw_stats(draw_poses(frame, result.poses), 0.0, result.times_ms, len(result.poses), self.pipeline.untrained)
        end = time.perf_counter()
        return (end - start) * 1e3, len(result.poses), {**result.times_ms, "draw": (end - t_draw) * 1e3}


class YoloPoseRunner:
    """Ultralytics one-stage pose: predict (its pre/infer/post) + our drawing of its keypoints."""

    def __init__(self, name: str, model) -> None:
        self.name, self.model = name, model

    def step(self, frame: np.ndarray, index: int) -> tuple[float, int, dict[str, float]]:
        start = time.perf_counter()
        result = self.model.predict(frame, verbose=False, save=False)[0]
        kpts = result.keypoints.data.cpu().numpy() if result.keypoints is not None else np.zeros((0, 17, 3))
        poses = [Pose(k.astype(np.float32), b.astype(np.float32), 1.0)
                 for k, b in zip(kpts, result.boxes.xyxy.cpu().numpy())]
        draw_stats(draw_poses(frame, poses), 0.0, {}, len(poses))
        return (time.perf_counter() - start) * 1e3, len(poses), {}


def run_interleaved(runners: list, frames: list[np.ndarray]) -> list[Row]:
    """Every configuration on frame 0, then every one on frame 1, ... (order rotated each frame): on a
    shared, noisy machine all configurations see the same background load, so their ratios hold."""
    samples: dict[str, tuple[list[float], list[int], dict[str, list[float]]]] = {r.name: ([], [], {}) for r in runners}
    for i, frame in enumerate(frames):
        shift = i % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            ms, people, stages = runner.step(frame, i)
            if i >= WARMUP:
                totals, counts, per_stage = samples[runner.name]
                totals.append(ms)
                counts.append(people)
                for stage, value in stages.items():
                    per_stage.setdefault(stage, []).append(value)
        if i >= WARMUP and (i - WARMUP) % 10 == 9:
            print(f"  {i + 1 - WARMUP} frames timed", file=sys.stderr, flush=True)
    return [row(r.name, samples[r.name][0], samples[r.name][1],
                {k: round(statistics.fmean(v), 2) for k, v in samples[r.name][2].items()}) for r in runners]


def row(name: str, totals: list[float], people: list[int], stages: dict | None = None) -> Row:
    ms = statistics.fmean(totals)
    return Row(name, len(totals), round(ms, 2), round(statistics.median(totals), 2), round(1e3 / ms, 2),
               round(float(np.mean(people)), 2), stages or {})


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

    return {"cpu": cpu, "cores": cpu_threads(), "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__,
            "opencv": cv2.__version__, "ultralytics": ultralytics.__version__, "load_avg_start": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="timed frames of the walking video (every config)")
    parser.add_argument("--street-frames", type=int, default=40, help="timed frames of the street video")
    parser.add_argument("--models", nargs="+", default=list_models())
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    args = parser.parse_args()

    threads = cpu_threads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    info = machine()
    started = time.perf_counter()
    walk = read_frames(WALK, args.frames + WARMUP)
    street = read_frames(STREET, args.street_frames + WARMUP) if args.street_frames > 0 else []
    detector = YoloDetector(DETECTOR, conf=0.3, iou=0.5)

    from ultralytics import YOLO

    runners: list = [YoloPoseRunner("YOLOv8n-pose INT8 OpenVINO (one-stage)", YOLO(str(POSE_INT8), task="pose")),
                     YoloPoseRunner("YOLOv8n-pose fp32 torch, random init (one-stage)",
                                    YOLO("yolov8n-pose.yaml", task="pose"))]
    for model in args.models:
        estimator = build_estimator(model, "untrained", threads=threads)
        for det_every in (1, 5):
            for flip in (False, True):
                settings = PipelineSettings(model=model, weights="untrained", det_every=det_every, flip_test=flip)
                runners.append(LpnRunner(f"{model} det-every {det_every} flip {'on' if flip else 'off'}",
                                         Pipeline(settings, estimator, detector)))
    print(f"walk: {len(runners)} configurations interleaved over {len(walk)} frames", file=sys.stderr, flush=True)
    rows = run_interleaved(runners, walk)
    int8 = rows[0]
    street_result = {}
    if street:
        model = args.models[0]
        lpn = LpnRunner("street", Pipeline(PipelineSettings(model=model, weights="untrained"),
                                           build_estimator(model, "untrained", threads=threads), detector), fps=50.0)
        totals, people, stages = [], [], {}
        print(f"street: {len(street)} frames", file=sys.stderr, flush=True)
        for i, frame in enumerate(street):
            ms, count, per_stage = lpn.step(frame, i)
            if i >= WARMUP:
                totals.append(ms)
                people.append(count)
                for stage, value in per_stage.items():
                    stages.setdefault(stage, []).append(value)
        bins, fit = people_table(totals, people)
        street_result = {"model": model, "frames": len(totals), "det_every": 1, "flip_test": False, "max_people": 20,
                         "ms_mean": round(statistics.fmean(totals), 1), "people_mean": round(float(np.mean(people)), 1),
                         "stages_ms": {k: round(statistics.fmean(v), 1) for k, v in stages.items()},
                         "bins": bins, "fit": fit}
    for r in rows:
        r.ratio_vs_int8_pose = round(r.fps / int8.fps, 2)

    print(f"\nwalk_away_720p.mp4, {args.frames} frames per config after {WARMUP} warm-up; {info['cpu']}, "
          f"{threads} threads; LPN weights UNTRAINED (cost only)")
    print(f"{'pipeline':50} {'ms/frame':>8} {'median':>7} {'FPS':>6} {'x INT8 pose':>11} {'people':>6}  stages (mean ms)")
    for r in rows:
        stages = " ".join(f"{k} {v:.1f}" for k, v in r.stages_ms.items())
        print(f"{r.name:50} {r.ms_mean:8.1f} {r.ms_median:7.1f} {r.fps:6.1f} {r.ratio_vs_int8_pose:11.2f} "
              f"{r.people_mean:6.1f}  {stages}")
    if street_result:
        print(f"\nopenpose_street_multi_person_720p.avi, {street_result['model']}, det-every 1, flip off, "
              f"{street_result['frames']} frames: mean {street_result['ms_mean']} ms/frame, "
              f"{street_result['people_mean']} people/frame; stages (mean ms): "
              + " ".join(f"{k} {v}" for k, v in street_result["stages_ms"].items()))
        print(f"{'people/frame':>12} {'frames':>6} {'ms/frame':>9} {'ms/person':>9}")
        for b in street_result["bins"]:
            print(f"{b['people']:>12} {b['frames']:6d} {b['ms_median']:9.1f} {b['ms_per_person']:9.1f}")
        fit = street_result["fit"]
        print(f"least squares: ms/frame = {fit['ms_fixed']} + {fit['ms_per_person']} x people")
    elapsed = time.perf_counter() - started
    print(f"\nbenchmark took {elapsed / 60:.1f} min")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": info, "frames": args.frames,
                               "warmup": WARMUP, "untrained": True, "walk": [asdict(r) for r in rows],
                               "street": street_result, "seconds": round(elapsed, 1),
                               "load_avg_end": os.getloadavg()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
