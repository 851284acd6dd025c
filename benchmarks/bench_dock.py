"""What the analysis dock costs the window: processed frames per second with the dock open and closed,
interleaved in one run, default settings, the video looping with "Process every frame" on.

    python -m benchmarks.bench_dock                          # ~2.5 min: walking video, 6 + 6 phases of 10 s
    xvfb-run -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb python -m benchmarks.bench_dock
    python -m benchmarks.bench_dock --video ../shared/data/videos/openpose_street_multi_person_720p.avi

The dock is opened and closed as a user does (the Analysis checkbox); each phase drops its first second
(the layout settles), then counts the frames the inference thread processed (not the readout, which
averages over the last 30). Phases alternate closed / open so that a slow drift of the machine (other
processes, thermal) falls on both alike. Target: open within 5 % of closed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.soak import close_window, open_window, pump  # noqa: E402
from lpn_core.pipeline import PipelineSettings  # noqa: E402

WALK = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "walk_away_720p.mp4"
SETTLE_S = 1.0


def phase_fps(window, dock_open: bool, seconds: float) -> float:
    """Frames processed per second during one phase with the dock ``dock_open``."""
    window.show_box.analysis_check.setChecked(dock_open)
    pump(int(SETTLE_S * 1000))
    if window.analysis.isVisible() != dock_open:
        raise SystemExit("error: the analysis dock did not open/close as asked")
    start_frames, start = window.inference.frames_processed, time.monotonic()
    pump(int((seconds - SETTLE_S) * 1000))
    return (window.inference.frames_processed - start_frames) / (time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=WALK)
    parser.add_argument("--phase-s", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--pairs", type=int, default=6, help="closed/open pairs")
    parser.add_argument("--size", default="1280x800", help="window size WxH")
    args = parser.parse_args()
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        window = open_window(PipelineSettings(), args.video, Path(tmp))
        window.resize(*(int(v) for v in args.size.split("x")))
        deadline = time.monotonic() + 180
        while window.last_rendered is None and time.monotonic() < deadline:
            pump(100)
        if window.last_rendered is None:
            raise SystemExit("error: the window showed no frame within 180 s")
        pump(3000)  # warm-up
        closed, opened = [], []
        for _ in range(args.pairs):
            closed.append(phase_fps(window, False, args.phase_s))
            opened.append(phase_fps(window, True, args.phase_s))
        redraws, label = window.analysis.redraws, window.model_label.text()
        close_window(window)
    app.processEvents()
    shut, shown = statistics.median(closed), statistics.median(opened)
    print(f"{args.video.name}, default settings ({label}), window {args.size}, platform "
          f"{os.environ['QT_QPA_PLATFORM']}; load average {os.getloadavg()[0]:.2f}")
    print("dock closed FPS per phase: " + " ".join(f"{v:.1f}" for v in closed))
    print("dock open   FPS per phase: " + " ".join(f"{v:.1f}" for v in opened))
    print(f"median closed {shut:.1f}, open {shown:.1f}: open / closed = {shown / shut:.3f} "
          f"(target >= 0.95); dock redraws {redraws} in {args.pairs * (args.phase_s - SETTLE_S):.0f} s open")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
