"""What the overlay costs: ``draw_poses`` + ``draw_stats`` on one video frame with N people, at the frame's size.

    python -m benchmarks.bench_overlay                       # 1280x720 street frame, 10 people
    python -m benchmarks.bench_overlay --people 20 --repeats 500

The people are the shared test skeleton (tests/test_draw.py's standing pose) scaled to a typical street
height and spread over the frame, every joint confident, with boxes and ids on: the most the overlay draws.
Prints the median and 90th percentile milliseconds per frame, wall clock and CPU time; target: <= 3 ms for 10 people at 720p.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from lpn_core.draw import draw_poses, draw_stats
from lpn_core.types import Pose

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "openpose_street_multi_person_720p.avi"
TIMES_MS = {"detect": 21.0, "crop": 1.2, "infer": 24.0, "decode": 0.8, "track": 0.3, "draw": 1.4}
# x, y of the 17 COCO joints of a standing person 200 px tall, box top-left at (0, 0)
STANDING = np.array([[45, 20], [40, 15], [50, 15], [35, 18], [55, 18], [25, 50], [65, 50], [15, 80], [75, 80],
                     [10, 110], [80, 110], [30, 120], [60, 120], [30, 160], [60, 160], [30, 200], [60, 200]], np.float32)


def crowd(width: int, height: int, people: int, person_h: float = 0.35) -> list[Pose]:
    """``people`` standing people of ``person_h`` x the frame height, in a grid over the frame."""
    rng = np.random.default_rng(0)
    scale = person_h * height / 200
    cols = int(np.ceil(np.sqrt(people * width / height)))
    poses = []
    for i in range(people):
        x0 = (i % cols) / cols * (width - 90 * scale) + 5
        y0 = (i // cols) / max(1, people // cols) * (height - 210 * scale) * 0.9 + 5
        xy = STANDING * scale + [x0, y0] + rng.normal(0, 2, STANDING.shape)
        kpts = np.column_stack([xy, np.full(17, 0.9)]).astype(np.float32)
        box = np.array([x0, y0, x0 + 90 * scale, y0 + 210 * scale], np.float32)
        poses.append(Pose(kpts, box, 0.8, track_id=i + 1))
    return poses


def frame(video: Path, size: tuple[int, int]) -> np.ndarray:
    """The 10th frame of ``video`` at ``size`` (W, H); a gray frame if the video is missing."""
    capture, ok, image = cv2.VideoCapture(str(video)), False, None
    for _ in range(10):
        ok, image = capture.read()
    capture.release()
    if not ok:
        return np.full((size[1], size[0], 3), 90, np.uint8)
    return cv2.resize(image, size) if (image.shape[1], image.shape[0]) != size else image


def overlay_ms(image: np.ndarray, poses: list[Pose], repeats: int) -> tuple[list[float], list[float]]:
    """Milliseconds per frame of what the window's inference thread draws (skeletons, boxes, ids, HUD):
    wall-clock time, and this thread's CPU time (the same unless other processes take the cores)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        drawn = draw_poses(image, poses, kpt_thr=0.3)
        draw_stats(drawn, 24.0, TIMES_MS, len(poses), weights_label="lpn50 project-trained, AP 0.07")
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=STREET)
    parser.add_argument("--size", default="1280x720", help="frame size WxH (the overlay is drawn at it)")
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    image, poses = frame(args.video, (width, height)), crowd(width, height, args.people)
    overlay_ms(image, poses, 20)  # warm-up
    wall, cpu = (sorted(samples) for samples in overlay_ms(image, poses, args.repeats))
    print(f"overlay on {width}x{height}, {args.people} people, {args.repeats} frames (target <= 3 ms); "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, samples in (("wall", wall), ("CPU ", cpu)):
        print(f"  {name} median {statistics.median(samples):.2f} ms, p90 {samples[int(0.9 * (len(samples) - 1))]:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
