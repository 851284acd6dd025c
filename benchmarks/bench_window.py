"""The window's displayed FPS against the headless pipeline's, same settings, same video, one run.

    python -m benchmarks.bench_window                  # ~1.5 min: walking video, default settings
    python -m benchmarks.bench_window --video ../shared/data/videos/openpose_street_multi_person_720p.avi

Four phases of ``--seconds`` each: headless, headless decoding the video, window, headless again.
Headless is bench_pipeline.py's measurement (frames decoded beforehand; Pipeline.process + drawing the
overlay; FPS = frames / time); "decoding" adds reading the file as the CLI and the window do.
Window: app.MainWindow offscreen (QT_QPA_PLATFORM=offscreen), the video looping with "Process every
frame" on, default settings (PipelineSettings()); its displayed FPS (the readout on the overlay and
in the side panel: processed frames per second over the last 30) read every 0.5 s after 3 s of
warm-up, median. The window also decodes the video and paints the frames, on the same cores.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]

import cv2  # noqa: E402

from benchmarks.bench_pipeline import WALK, read_frames  # noqa: E402
from benchmarks.soak import close_window, open_window, pump  # noqa: E402
from lpn_core.draw import draw_poses, draw_stats  # noqa: E402
from lpn_core.pipeline import Pipeline, PipelineSettings  # noqa: E402

WARMUP_S = 3.0


def decoded(video: Path):
    """Frames of ``video`` decoded as they are needed, looping (as the window's capture thread reads)."""
    while True:
        capture = cv2.VideoCapture(str(video))
        while (frame := capture.read()[1]) is not None:
            yield frame
        capture.release()


def headless_fps(pipeline: Pipeline, frames: list | None, seconds: float, video: Path | None = None) -> float:
    """Frames per second of process + draw over the looping ``frames`` (or, without them, ``video``
    decoded on the fly) for ``seconds``."""
    source = decoded(video) if frames is None else None
    done, start, fps = 0, time.perf_counter(), None
    while time.perf_counter() - start < seconds:
        frame = next(source) if source is not None else frames[done % len(frames)]
        if frames is not None and done % len(frames) == 0:
            pipeline.reset()
        result = pipeline.process(frame, done, done / 30.0)
        draw_stats(draw_poses(frame, result.poses), fps, result.times_ms, len(result.poses))
        done += 1
        fps = done / (time.perf_counter() - start)
    return done / (time.perf_counter() - start)


def window_fps(video: Path, seconds: float) -> tuple[float, list[float], str]:
    """Median displayed FPS of the window, the readings, and what ran (the model label)."""
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        window = open_window(PipelineSettings(), video, Path(tmp))
        deadline = time.monotonic() + 120
        while window.last_rendered is None and time.monotonic() < deadline:
            pump(100)
        if window.last_rendered is None:
            raise SystemExit("error: the window showed no frame within 120 s")
        pump(int(WARMUP_S * 1000))
        readings, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            pump(500)
            if window.last_rendered.fps:
                readings.append(window.last_rendered.fps)
        label = window.model_label.text()
        close_window(window)
    app.processEvents()
    return statistics.median(readings), readings, label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=WALK)
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each phase")
    args = parser.parse_args()
    frames = read_frames(args.video, 120)
    pipeline = Pipeline(PipelineSettings())
    headless_fps(pipeline, frames[:10], 2.0)  # warm-up
    before = headless_fps(pipeline, frames, args.seconds)
    decoding = headless_fps(pipeline, None, args.seconds, args.video)
    shown, readings, label = window_fps(args.video, args.seconds)
    after = headless_fps(pipeline, frames, args.seconds)
    headless = (before + after) / 2
    print(f"{args.video.name}, default settings ({label}); load average {os.getloadavg()}")
    print(f"headless, frames decoded beforehand (bench_pipeline's measure): {before:.1f} then {after:.1f} FPS, "
          f"mean {headless:.1f}")
    print(f"headless, decoding the video as it goes (the CLI's work): {decoding:.1f} FPS")
    print(f"window displayed FPS: median {shown:.1f} of {len(readings)} readings "
          f"(range {min(readings):.1f}-{max(readings):.1f})")
    print(f"window / bench_pipeline's measure: {shown / headless:.2f} (target: >= 0.90); "
          f"window / headless decoding: {shown / decoding:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
