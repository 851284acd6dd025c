"""Carried boxes: what detecting every N frames, and the rule that carries boxes between detections, cost in
end-to-end accuracy against detecting every frame, and what they save in time.

    python -m benchmarks.bench_tracking                              # the 4 tuning videos, all frames
    python -m benchmarks.bench_tracking --videos trained --rows n plain old   # walk, treadmill, street
    python -m benchmarks.bench_tracking --frames 60 --rows n         # quick look

Videos: ``--videos tune`` (default) are ``../shared/data/videos_tune/``, never trained on: the defaults are
chosen there. ``--videos trained`` are the walking, treadmill and street videos, which are in the bundled
weights' training data (their numbers flatter the model and cannot choose defaults).

Bundled project-trained LPN-50 (precision auto) and the bundled YOLOX-nano (or ``--detector``); smoothing
OFF (raw keypoints), tracking ON. Each video is decoded frame by frame and every configuration processes
the frame before the next is read, in a rotating order, so machine load hits them alike.

Per configuration, over all frames (``--frames`` caps them):
- **PCK@0.1**: PCK@0.1·height against the YOLO11n-pose teacher's confident joints (``benchmarks.teacher_pck``;
  the teacher's labels are cached outside the repository); ΔPCK against det-every 1; teacher people found.
- against the det-every-1 run on the same frames: people lost (reference person-frames left unmatched,
  Hungarian on box IoU >= 0.3), extra people, id switches (the matched track id changing along a reference
  track), joint distance over joints confident (> kpt_thr) in both, in % of the reference box height.
- cost: detector calls per 100 frames, ms/frame (mean wall time of ``Pipeline.process``), x det-every-1 speed.
- carried box size: on frames without a detection, each box's crop size (``pipeline.crop_scales``) over the
  size of the same track's box at its last detection: min and max (the bounds the carry rule promises).

Prints a markdown table per video, then the default rule's verdict: the fastest configuration whose PCK is
within 0.02 of det-every 1 on every video. Writes JSON to benchmarks/results/tracking.json (``--out``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks.teacher_pck import Pck, TeacherLabels, frame_pck, teacher_labels
from benchmarks.videos import TRAINED, TUNE
from lpn_core.backends import cpu_threads
from lpn_core.detections import Detections, PersonDetector
from lpn_core.detector import load_detector
from lpn_core.estimator import PoseEstimator, build_estimator
from lpn_core.pipeline import Pipeline, PipelineSettings, crop_scales
from lpn_core.tracking import box_iou
from lpn_core.types import Pose

ROOT = Path(__file__).resolve().parents[1]
MIN_IOU = 0.3
KPT_THR = 0.3
WARMUP = 3  # frames through a throwaway pipeline before timing (ORT / detector first-call costs)
PCK_TOLERANCE = 0.02  # a setting may lose at most this much PCK against det-every 1 on any tuning video
OLD_RULE = {"carry_min_joints": 3, "carry_step": math.inf, "carry_min_scale": 0.0, "carry_max_scale": math.inf}
NO_CROWD_RULE = {"carry_max_people": 10_000}


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
    poses: list[list[Pose]] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    detector_calls: int = 0
    pck: Pck = field(default_factory=Pck)
    carried_ratios: list[float] = field(default_factory=list)  # carried box size / its track's detected size
    _detected: dict[int, float] = field(default_factory=dict)  # track id -> size at its last detection

    def record_sizes(self, poses: list[Pose], detected_now: bool) -> None:
        """Remember each track's size on detection frames; on the others, the ratio to it."""
        scales = crop_scales(np.stack([p.box for p in poses])) if poses else []
        for pose, scale in zip(poses, scales):
            if detected_now:
                self._detected[pose.track_id] = float(scale)
            elif pose.track_id in self._detected:
                self.carried_ratios.append(float(scale) / self._detected[pose.track_id])


def row_groups(ns: list[int]) -> dict[str, dict[str, dict]]:
    """Named groups of configurations (label -> PipelineSettings changes); the reference always runs.

    n: det-every N with the shipped carry rule and crowd rule; plain: the same without the crowd rule;
    old: det-every N with the rule before bounded boxes (padded box of >= 3 confident joints, any size);
    rule: variants of the carry rule at det-every 5; overlap: detection on a worker thread."""
    return {
        "n": {f"{n}": {"det_every": n} for n in ns},
        "plain": {f"{n} no crowd rule": {"det_every": n, **NO_CROWD_RULE} for n in ns},
        "old": {f"{n} old rule": {"det_every": n, **OLD_RULE} for n in ns},
        "rule": {"5 joints >= 3": {"det_every": 5, "carry_min_joints": 3},
                 "5 joints >= 8": {"det_every": 5, "carry_min_joints": 8},
                 "5 bounds 0.8-1.25": {"det_every": 5, "carry_min_scale": 0.8, "carry_max_scale": 1.25},
                 "5 bounds 0.5-2": {"det_every": 5, "carry_min_scale": 0.5, "carry_max_scale": 2.0},
                 "5 step 0.05": {"det_every": 5, "carry_step": 0.05},
                 "5 step 0.25": {"det_every": 5, "carry_step": 0.25}},
        "overlap": {"1 overlap": {"det_every": 1, "overlap": True}, "5 overlap": {"det_every": 5, "overlap": True}},
    }


def configurations(groups: list[str], ns: list[int]) -> dict[str, dict]:
    """The reference (det-every 1, in line) and the configurations of ``groups``."""
    known = row_groups(ns)
    configs = {"1 (reference)": {"det_every": 1}}
    for group in groups:
        configs.update(known[group])
    return configs


def frames_of(path: Path, limit: int) -> Iterable[tuple[int, np.ndarray]]:
    """(index, frame) of the first ``limit`` frames (all when ``limit`` <= 0), decoded one at a time."""
    capture = cv2.VideoCapture(str(path))
    index = 0
    try:
        while (limit <= 0 or index < limit) and (frame := capture.read()[1]) is not None:
            yield index, frame
            index += 1
    finally:
        capture.release()


def run_video(path: Path, limit: int, configs: dict[str, dict], estimator: PoseEstimator,
              detector: PersonDetector, labels: TeacherLabels) -> list[Run]:
    """Every configuration, interleaved frame by frame (order rotated each frame), scored against the
    teacher as it goes. An overlapped pipeline's look-ahead detection is waited for inside its timed call
    (the next pipeline shares the detector), so its ms include that detection."""
    fps = cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) or 30.0

    def pipeline(changes: dict, people: PersonDetector) -> Pipeline:
        return Pipeline(PipelineSettings(smoothing=False, tracking=True, **changes), estimator, people)

    warm = pipeline({"det_every": 1}, detector)
    for i, frame in frames_of(path, WARMUP):
        warm.process(frame, i, i / fps)
    counters = [CountingDetector(detector) for _ in configs]
    pipelines = [pipeline(changes, c) for changes, c in zip(configs.values(), counters)]
    runs = [Run(label) for label in configs]
    order = list(range(len(configs)))
    for i, frame in frames_of(path, limit):
        references = labels.references(i)
        shift = i % len(order)
        for k in order[shift:] + order[:shift]:
            calls = counters[k].calls
            start = time.perf_counter()
            result = pipelines[k].process(frame, i, i / fps)
            pipelines[k].settle()
            runs[k].ms.append((time.perf_counter() - start) * 1e3)
            runs[k].poses.append(result.poses)
            runs[k].pck.add(frame_pck(*references, result.poses))
            runs[k].record_sizes(result.poses, counters[k].calls > calls)
        if i % 50 == 49:
            print(f"  {i + 1} frames", file=sys.stderr, flush=True)
    for run, counter in zip(runs, counters):
        run.detector_calls = counter.calls
    return runs


def summarise(runs: list[Run]) -> list[dict]:
    """One row per configuration: accuracy against the teacher, cost, and agreement with det-every 1."""
    ref = runs[0]
    ref_ms = statistics.fmean(ref.ms)
    rows = []
    for run in runs:
        ms = statistics.fmean(run.ms)
        ratios = run.carried_ratios or [float("nan")]
        rows.append({"config": run.label, "frames": len(run.ms),
                     "pck": round(run.pck.pck, 4), "pck_delta": round(run.pck.pck - ref.pck.pck, 4),
                     "teacher_people": run.pck.people, "teacher_found": run.pck.found,
                     "det_calls_per_100": round(100.0 * run.detector_calls / len(run.ms), 1),
                     "ms_mean": round(ms, 2), "ms_median": round(statistics.median(run.ms), 2),
                     "speedup": round(ref_ms / ms, 2),
                     "people_mean": round(float(np.mean([len(p) for p in run.poses])), 2),
                     "carried_frames": len(run.carried_ratios),
                     "carried_ratio_min": round(min(ratios), 3), "carried_ratio_max": round(max(ratios), 3),
                     **asdict(compare_runs(ref.poses, run.poses))})
    return rows


def markdown(name: str, rows: list[dict]) -> str:
    r0 = rows[0]
    lines = [f"`{name}`: {r0['frames']} frames, {r0['teacher_people']} teacher reference people, "
             f"{r0['ref_people']} det-every-1 person-frames",
             "",
             "| configuration | PCK@0.1 | ΔPCK | teacher people found | people lost | id switches | ms/frame | "
             "× det-every 1 speed | detector calls / 100 frames | carried box size / detected, min–max | "
             "joint dist vs det-every 1 (% height) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        carried = "–" if not r["carried_frames"] else f"{r['carried_ratio_min']:.2f}–{r['carried_ratio_max']:.2f}"
        lines.append(f"| {r['config']} | {r['pck']:.3f} | {r['pck_delta']:+.3f} | "
                     f"{100.0 * r['teacher_found'] / max(r['teacher_people'], 1):.1f} % | "
                     f"{r['lost']} ({r['lost_pct']:.1f} %) | {r['id_switches']} | {r['ms_mean']:.1f} | "
                     f"{r['speedup']:.2f} | {r['det_calls_per_100']:.0f} | {carried} | {r['dist_pct_mean']:.2f} |")
    return "\n".join(lines)


def choose_default(results: dict[str, list[dict]], tolerance: float = PCK_TOLERANCE) -> dict:
    """The fastest configuration (mean x det-every-1 speed over the videos) whose PCK is within
    ``tolerance`` of det-every 1 on every video, among those whose boxes cannot collapse (not the old
    rule); and every configuration's worst ΔPCK."""
    labels = [r["config"] for r in next(iter(results.values()))]
    verdict = {}
    for label in labels:
        rows = [next(r for r in rows if r["config"] == label) for rows in results.values()]
        verdict[label] = {"worst_pck_delta": min(r["pck_delta"] for r in rows),
                          "mean_speedup": round(statistics.fmean(r["speedup"] for r in rows), 2),
                          "max_lost_pct": max(r["lost_pct"] for r in rows)}
    passing = [label for label, v in verdict.items() if v["worst_pck_delta"] >= -tolerance
               and "old rule" not in label]  # the old rule lets boxes collapse: a comparison, never a default
    best = max(passing, key=lambda label: verdict[label]["mean_speedup"])
    return {"chosen": best, "tolerance": tolerance, "configs": verdict}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", choices=("tune", "trained"), default="tune",
                        help="tune: videos_tune/ (chooses defaults); trained: walk, treadmill, street")
    parser.add_argument("--only", nargs="+", default=None, help="file names of the videos to run (default: all)")
    parser.add_argument("--frames", type=int, default=0, help="first frames of each video (0: all)")
    parser.add_argument("--n", type=int, nargs="+", default=[2, 3, 5, 10], help="det-every values to compare")
    parser.add_argument("--rows", nargs="+", default=["n", "old", "rule"], choices=list(row_groups([1])),
                        help="configuration groups beside the det-every-1 reference")
    parser.add_argument("--detector", default=None, help="detector path (default: the bundled YOLOX-nano)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tracking.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    threads = cpu_threads()
    estimator = build_estimator("lpn50", threads=threads, download=False)
    detector = load_detector(args.detector, threads=threads)
    info = {"python": platform.python_version(), "cores": threads, "weights": estimator.weights_label,
            "precision": estimator.precision, "detector": detector.name, "load_avg_start": os.getloadavg()}
    videos = [v for v in (TUNE if args.videos == "tune" else TRAINED) if not args.only or v.name in args.only]
    configs = configurations(args.rows, args.n)
    results = {}
    for path in videos:
        labels = teacher_labels(path)
        print(f"{path.name}: {len(configs)} configurations", file=sys.stderr, flush=True)
        rows = summarise(run_video(path, args.frames, configs, estimator, detector, labels))
        results[path.name] = rows
        print("\n" + markdown(path.name, rows) + "\n", flush=True)
    verdict = choose_default(results)
    print(f"fastest configuration within {PCK_TOLERANCE} PCK of det-every 1 on every video: {verdict['chosen']} "
          f"(x{verdict['configs'][verdict['chosen']]['mean_speedup']} mean speed)")
    elapsed = time.perf_counter() - started
    print(f"benchmark took {elapsed / 60:.1f} min")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": info, "kpt_thr": KPT_THR,
                               "min_iou": MIN_IOU, "configs": configs, "videos": results, "verdict": verdict,
                               "seconds": round(elapsed, 1), "load_avg_end": os.getloadavg()}, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
