"""Overlap and threads on a small CPU: does running the person detector for frame t+1
while LPN estimates frame t help, and how many ONNX Runtime threads should each get?

    python -m benchmarks.bench_threads            # ~3 min on 2 cores
    python -m benchmarks.bench_threads --frames 20 --street-frames 20

Detector (bundled YOLOX-nano) and LPN-50 (bundled weights, ``--precision``) on every frame (det-every 1:
the case where the detector costs most), no tracking or drawing: only the two stages whose scheduling is
in question. Configurations:

* sequential, each session with T intra-op threads (T = 2, and 1), ORT spinning on and off (both
  sessions);
* overlapped: a worker thread runs the detector on frame t+1 while the calling thread runs LPN on frame
  t (one frame of latency), each session with T threads.

Walking video (1 person) and street video (7-14 people). Configurations take turns in blocks of
``--block`` frames (rotating order), so load on a shared machine hits them alike; the first frame of
each block is not timed (the overlapped pipe fills there). Prints the median ms/frame per configuration
and its ratio to the first; JSON in benchmarks/results/threads.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np

from benchmarks.bench_pipeline import STREET, WALK, machine, read_frames
from lpn_core.detector import BUNDLED
from lpn_core.estimator import build_estimator
from lpn_core.yolox import YoloxDetector


class Stages:
    """One detector and one LPN, each with its own ONNX Runtime thread count."""

    def __init__(self, threads: int, spinning: bool, precision: str) -> None:
        self.detector = YoloxDetector(BUNDLED, conf=0.3, iou=0.5, threads=threads, spinning=spinning)
        self.estimator = build_estimator("lpn50", None, threads=threads, download=False, spinning=spinning,
                                         precision=precision)

    def lpn(self, frame: np.ndarray, boxes: np.ndarray) -> None:
        self.estimator(frame, boxes)


class Sequential:
    """detect(t), then LPN(t)."""

    def __init__(self, name: str, stages: Stages) -> None:
        self.name, self.stages = name, stages

    def start(self) -> None:
        pass

    def step(self, frames: list[np.ndarray], i: int) -> None:
        self.stages.lpn(frames[i], self.stages.detector(frames[i]).boxes)


class Overlapped:
    """detect(t+1) on a worker thread while LPN(t) runs here."""

    def __init__(self, name: str, stages: Stages) -> None:
        self.name, self.stages = name, stages
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None

    def start(self) -> None:
        self.pending = None

    def step(self, frames: list[np.ndarray], i: int) -> None:
        found = self.pending.result() if self.pending is not None else self.stages.detector(frames[i])
        self.pending = self.pool.submit(self.stages.detector, frames[(i + 1) % len(frames)])
        self.stages.lpn(frames[i], found.boxes)


def run_blocks(runners: list, frames: list[np.ndarray], block: int) -> dict[str, list[float]]:
    """ms of every timed frame per runner; runners take turns block by block, order rotated."""
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for b, start in enumerate(range(0, len(frames) - 1, block)):
        order = runners[b % len(runners):] + runners[:b % len(runners)]
        for runner in order:
            runner.start()
            for i in range(start, min(start + block, len(frames))):
                t0 = time.perf_counter()
                runner.step(frames, i)
                if i > start:
                    times[runner.name].append((time.perf_counter() - t0) * 1e3)
            if isinstance(runner, Overlapped) and runner.pending is not None:
                runner.pending.result()  # finish the look-ahead before the next runner's turn
    return times


def summary(times: dict[str, list[float]]) -> list[dict]:
    first = statistics.median(next(iter(times.values())))
    return [{"config": name, "frames": len(v), "ms_median": round(statistics.median(v), 1),
             "fps": round(1e3 / statistics.median(v), 1), "x_time_of_first": round(statistics.median(v) / first, 2)}
            for name, v in times.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=110, help="walking-video frames")
    parser.add_argument("--street-frames", type=int, default=60)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "threads.json"))
    args = parser.parse_args()
    info, started = machine(), time.perf_counter()
    cores = os.cpu_count() or 2
    configs = []
    for threads in sorted({cores, 1}, reverse=True):
        for spinning in (True, False):
            stages = Stages(threads, spinning, args.precision)
            spin = "spin on" if spinning else "spin off"
            configs.append(Sequential(f"sequential, {threads}+{threads} threads, {spin}", stages))
            configs.append(Overlapped(f"overlapped, {threads}+{threads} threads, {spin}", stages))
    precision = configs[0].stages.estimator.precision
    results = {}
    for label, path, count in (("walk_away_720p (1 person)", WALK, args.frames),
                               ("street (7-14 people)", STREET, args.street_frames)):
        frames = read_frames(path, count)
        results[label] = summary(run_blocks(configs, frames, args.block))
        print(f"\n{label}, {len(frames)} frames, detector every frame, LPN-50 {precision}")
        print(f"{'configuration':42} {'ms/frame':>9} {'FPS':>6} {'x time':>7}")
        for row in results[label]:
            print(f"{row['config']:42} {row['ms_median']:9.1f} {row['fps']:6.1f} {row['x_time_of_first']:7.2f}")
    elapsed = time.perf_counter() - started
    print(f"\nbenchmark took {elapsed / 60:.1f} min; load average {os.getloadavg()}")
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "machine": info, "precision": precision,
                                          "results": results, "seconds": round(elapsed, 1),
                                          "load_avg_end": os.getloadavg()}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
