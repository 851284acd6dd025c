"""Keypoint-tracked crops (issue 10): what detecting every N frames costs in keypoint accuracy, against
detecting every frame, and what it saves in time.

    python -m benchmarks.bench_tracking                        # 3 videos, N = 2 3 5 10
    python -m benchmarks.bench_tracking --frames 30 --street-frames 20 --n 5   # quick look

Bundled project-trained LPN-50 weights, the bundled YOLOX-nano detector (or ``--detector PATH``), default
settings with smoothing OFF (raw keypoints are compared) and tracking ON. For each video the first frames
are decoded into memory, then the det-every-1 reference and every det-every-N pipeline run interleaved
(frame 0 through every configuration, then frame 1, ..., order rotated) so machine load hits them alike.
Per N, frame by frame against the reference: people matched by Hungarian on box IoU (>= 0.3); joint
distance over joints confident (> kpt_thr) in both, in px and in % of the reference person's box height;
reference people left unmatched (lost) and test people left unmatched (extra); id switches (the matched
test track id changing along a reference track); detector calls per 100 frames; mean ms/frame (wall time
of ``Pipeline.process``). Prints a markdown table per video; writes JSON to benchmarks/results/tracking.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.bench_pipeline import SHARED, STREET, WALK, read_frames
from lpn_core.backends import cpu_threads
from lpn_core.detections import Detections, PersonDetector
from lpn_core.detector import load_detector
from lpn_core.estimator import PoseEstimator, build_estimator
from lpn_core.pipeline import Pipeline, PipelineSettings
from lpn_core.tracking import box_iou
from lpn_core.types import Pose

TREADMILL = SHARED / "videos" / "treadmill_360p.mp4"
MIN_IOU = 0.3
KPT_THR = 0.3
WARMUP = 3  # frames through a throwaway pipeline before timing (ORT / detector first-call costs)


# --- pure comparison functions (tests/test_tracking_quality.py) -------------------------------------------

def match_people(ref: list[Pose], test: list[Pose], min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """Pairs (ref index, test index) of one frame: Hungarian on box IoU, pairs below ``min_iou`` dropped."""
    if not ref or not test:
        return []
    iou = box_iou(np.stack([p.box for p in ref]), np.stack([p.box for p in test]))
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


def joint_distances(ref: Pose, test: Pose, kpt_thr: float = KPT_THR) -> tuple[np.ndarray, float]:
    """Distances (px) of the joints confident (> ``kpt_thr``) in both poses, and the reference box height."""
    both = (ref.keypoints[:, 2] > kpt_thr) & (test.keypoints[:, 2] > kpt_thr)
    dist = np.linalg.norm(ref.keypoints[both, :2].astype(np.float64) - test.keypoints[both, :2], axis=1)
    return dist, float(ref.box[3] - ref.box[1])


def id_switches(matches: Iterable[tuple[int, int]]) -> int:
    """(reference track id, matched test track id) in frame order -> how often a reference track's matched
    test id changes between its consecutive matched frames."""
    last: dict[int, int] = {}
    switches = 0
    for ref_id, test_id in matches:
        switches += ref_id in last and last[ref_id] != test_id
        last[ref_id] = test_id
    return int(switches)


@dataclass
class Quality:
    """One det-every-N run against the reference, over the same frames."""

    ref_people: int  # reference person-frames
    matched: int
    joints: int  # joints compared (confident in both)
    dist_pct_mean: float  # % of the reference box height
    dist_pct_median: float
    dist_px_mean: float
    dist_px_median: float
    lost: int
    lost_pct: float  # % of reference person-frames
    extra: int
    id_switches: int


def compare_runs(ref: list[list[Pose]], test: list[list[Pose]], kpt_thr: float = KPT_THR,
                 min_iou: float = MIN_IOU) -> Quality:
    """Frame-by-frame comparison of two runs over the same frames (lists of per-frame poses)."""
    px: list[np.ndarray] = []
    pct: list[np.ndarray] = []
    ids: list[tuple[int, int]] = []
    ref_people = matched = extra = 0
    for ref_poses, test_poses in zip(ref, test, strict=True):
        pairs = match_people(ref_poses, test_poses, min_iou)
        ref_people += len(ref_poses)
        matched += len(pairs)
        extra += len(test_poses) - len(pairs)
        for r, t in pairs:
            dist, height = joint_distances(ref_poses[r], test_poses[t], kpt_thr)
            px.append(dist)
            pct.append(100.0 * dist / max(height, 1.0))
            if ref_poses[r].track_id is not None and test_poses[t].track_id is not None:
                ids.append((ref_poses[r].track_id, test_poses[t].track_id))
    all_px = np.concatenate(px) if px else np.zeros(0)
    all_pct = np.concatenate(pct) if pct else np.zeros(0)

    def stat(values: np.ndarray, how) -> float:
        return round(float(how(values)), 2) if len(values) else float("nan")

    lost = ref_people - matched
    return Quality(ref_people, matched, len(all_px), stat(all_pct, np.mean), stat(all_pct, np.median),
                   stat(all_px, np.mean), stat(all_px, np.median), lost,
                   round(100.0 * lost / max(ref_people, 1), 2), extra, id_switches(ids))


# --- running the pipelines ----------------------------------------------------------------------------------

class CountingDetector:
    """A shared detector seen through one pipeline: counts that pipeline's calls."""

    def __init__(self, inner: PersonDetector) -> None:
        self.inner, self.calls = inner, 0
        self.name, self.full_frame = inner.name, inner.full_frame

    def __call__(self, image: np.ndarray) -> Detections:
        self.calls += 1
        return self.inner(image)


@dataclass
class Run:
    """One configuration's output over a video."""

    label: str
    poses: list[list[Pose]]
    ms: list[float]
    detector_calls: int


def configurations(ns: list[int]) -> dict[str, dict]:
    """Label -> PipelineSettings changes. The reference detects every frame, in line; each plain N
    detects every N frames whatever the crowd; "default" is what ships (det-every 5, every frame for
    more than 6 people); "overlap" detects beside LPN, for the next frame."""
    plain = {"carry_max_people": 10_000}
    default = f"{PipelineSettings.det_every} default (crowd rule)"
    return {"1 (reference)": {"det_every": 1}, "1 overlap": {"det_every": 1, "overlap": True},
            **{str(n): {"det_every": n, **plain} for n in ns},
            default: {}, f"{default} + overlap": {"overlap": True}}


def run_video(frames: list[np.ndarray], fps: float, configs: dict[str, dict], estimator: PoseEstimator,
              detector: PersonDetector) -> list[Run]:
    """Every configuration, interleaved frame by frame (order rotated each frame). An overlapped
    pipeline's look-ahead detection is waited for inside its timed call (the next pipeline shares the
    detector), so its ms here include that detection: see bench_pipeline.py for overlapped speed."""
    def pipeline(changes: dict, people: PersonDetector) -> Pipeline:
        return Pipeline(PipelineSettings(smoothing=False, tracking=True, **changes), estimator, people)

    warm = pipeline({"det_every": 1, "overlap": False}, detector)
    for i, frame in enumerate(frames[:WARMUP]):
        warm.process(frame, i, i / fps)
    counters = [CountingDetector(detector) for _ in configs]
    pipelines = [pipeline(changes, c) for changes, c in zip(configs.values(), counters)]
    runs = [Run(label, [], [], 0) for label in configs]
    order = list(range(len(configs)))
    for i, frame in enumerate(frames):
        shift = i % len(order)
        for k in order[shift:] + order[:shift]:
            start = time.perf_counter()
            result = pipelines[k].process(frame, i, i / fps)
            pipelines[k].settle()
            runs[k].ms.append((time.perf_counter() - start) * 1e3)
            runs[k].poses.append(result.poses)
        if i % 25 == 24:
            print(f"  {i + 1}/{len(frames)} frames", file=sys.stderr, flush=True)
    for run, counter in zip(runs, counters):
        run.detector_calls = counter.calls
    return runs


def summarise(runs: list[Run]) -> list[dict]:
    """One row per configuration: cost, speed-up against det-every 1, quality against det-every 1."""
    ref = runs[0]
    ref_ms = statistics.fmean(ref.ms)
    rows = []
    for run in runs:
        ms = statistics.fmean(run.ms)
        rows.append({"config": run.label, "frames": len(run.ms),
                     "det_calls_per_100": round(100.0 * run.detector_calls / len(run.ms), 1),
                     "ms_mean": round(ms, 1), "ms_median": round(statistics.median(run.ms), 1),
                     "speedup": round(ref_ms / ms, 2),
                     "people_mean": round(float(np.mean([len(p) for p in run.poses])), 2),
                     **asdict(compare_runs(ref.poses, run.poses))})
    return rows


def markdown(name: str, rows: list[dict]) -> str:
    lines = [f"{name}, {rows[0]['frames']} frames, {rows[0]['ref_people']} reference person-frames",
             "",
             "| det-every N | detector calls / 100 frames | ms/frame | × det-every 1 speed | joint dist mean / median "
             "(% person height) | joint dist mean / median (px) | people lost | extra people | id switches |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['det_calls_per_100']:.0f} | {r['ms_mean']:.1f} | "
                     f"{r['speedup']:.2f} | {r['dist_pct_mean']:.2f} / {r['dist_pct_median']:.2f} | "
                     f"{r['dist_px_mean']:.1f} / {r['dist_px_median']:.1f} | {r['lost']} ({r['lost_pct']:.1f} %) | "
                     f"{r['extra']} | {r['id_switches']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150, help="first frames of each 1-person video")
    parser.add_argument("--street-frames", type=int, default=100, help="first frames of the street video")
    parser.add_argument("--n", type=int, nargs="+", default=[2, 3, 5, 10], help="det-every values to compare")
    parser.add_argument("--detector", default=None, help="detector path (default: the bundled YOLOX-nano)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tracking.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    threads = cpu_threads()
    estimator = build_estimator("lpn50", threads=threads, download=False)
    detector = load_detector(args.detector, threads=threads)
    info = {"python": platform.python_version(), "cores": threads, "weights": estimator.weights_label,
            "detector": detector.name, "load_avg_start": os.getloadavg()}
    videos = [(WALK, args.frames), (TREADMILL, args.frames), (STREET, args.street_frames)]
    results = {}
    for path, count in videos:
        fps = cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) or 30.0
        frames = read_frames(path, count)
        configs = configurations(args.n)
        print(f"{path.name}: {len(frames)} frames x {len(configs)} configurations", file=sys.stderr, flush=True)
        rows = summarise(run_video(frames, fps, configs, estimator, detector))
        results[path.name] = rows
        print("\n" + markdown(path.name, rows) + "\n", flush=True)
    elapsed = time.perf_counter() - started
    print(f"benchmark took {elapsed / 60:.1f} min")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": info, "kpt_thr": KPT_THR,
                               "min_iou": MIN_IOU, "videos": results, "seconds": round(elapsed, 1),
                               "load_avg_end": os.getloadavg()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
