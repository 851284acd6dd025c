"""Do half-size crops keep the joints? Small people of the street video at 64x48 against 128x96.

    python -m benchmarks.small_crops [--frames 45] [--px 128 160]

The teacher (``benchmarks.teacher_pck``) labels too few of the street's small people to score half-size
crops, so this compares them with the full-size crops of the same weights: for every person the bundled
YOLOX-nano finds whose crop is at most ``px`` frame pixels tall, the joints of ``PoseEstimator`` at
``small_size`` against those at ``input_size``, in % of the person's box height. Accuracy only: not timed.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from benchmarks.bench_tracking import frames_of
from benchmarks.videos import STREET
from lpn_core.detector import load_detector
from lpn_core.estimator import build_estimator
from lpn_core.transforms import box_to_center_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=45)
    parser.add_argument("--px", type=int, nargs="+", default=[128, 160], help="small-crop thresholds (frame px)")
    args = parser.parse_args()
    estimator = build_estimator("lpn50", download=False, small_crops=True)
    detector = load_detector(None)
    for px in args.px:
        distances, heights = [], []
        for _, frame in frames_of(STREET, args.frames):
            boxes = detector(frame).boxes
            boxes = boxes[box_to_center_size(boxes)[1][:, 1] <= px]
            if len(boxes):
                full, half = estimator(frame, boxes), estimator(frame, boxes, small_max_px=px)
                height = (boxes[:, 3] - boxes[:, 1])[:, None]
                distances.append((np.linalg.norm(full[..., :2] - half[..., :2], axis=2) / height).ravel())
                heights += list(height.ravel())
        dist = np.concatenate(distances)
        print(f"crops <= {px} px: {len(heights)} person-crops (box height median {np.median(heights):.0f} px); "
              f"64x48 against 128x96 joints: mean {100 * dist.mean():.1f} %, median {100 * np.median(dist):.1f} % "
              f"of the box height; within 0.1 x height: {(dist <= 0.1).mean():.3f} of the joints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
