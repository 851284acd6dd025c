"""What the analysis dock costs the window: processed frames per second with the dock open and closed,
interleaved in one run, default settings, the video looping with "Process every frame" on.

    python -m benchmarks.bench_dock                          # ~2.5 min: walking video, 10 + 10 phases of 6 s
    xvfb-run -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb python -m benchmarks.bench_dock
    python -m benchmarks.bench_dock --video ../shared/data/videos/openpose_street_multi_person_720p.avi

The dock is opened and closed as a user does (the Analysis checkbox); each phase drops its first second
(the layout settles), then counts the frames the inference thread processed (not the readout, which
averages over the last 30) and the CPU time of the GUI thread and of the process. Phases alternate
closed / open so that a slow drift of the machine (other processes, thermal) falls on both alike; the
GUI thread's CPU time is the dock's own cost, whatever else runs on the machine. Target: open within 5 %
of closed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.soak import close_window, open_window, pump  # noqa: E402
from lpn_core.pipeline import PipelineSettings  # noqa: E402

WALK = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "walk_away_720p.mp4"
SETTLE_S = 1.0


@dataclass(frozen=True)
class Phase:
    fps: float          # frames processed per second
    gui_cpu: float      # CPU seconds per second of the GUI thread (where the dock draws)
    process_cpu: float  # CPU seconds per second of the whole process (inference, capture, GUI)


def phase(window, dock_open: bool, seconds: float) -> Phase:
    """What one phase with the dock ``dock_open`` achieved. The GUI thread runs the Qt loop (``pump``), so
    its CPU time over the phase is what painting, the status bar and the dock cost."""
    window.show_box.analysis_check.setChecked(dock_open)
    pump(int(SETTLE_S * 1000))
    if window.analysis.isVisible() != dock_open:
        raise SystemExit("error: the analysis dock did not open/close as asked")
    frames, start, gui, process = (window.inference.frames_processed, time.monotonic(), time.thread_time(),
                                   time.process_time())
    pump(int((seconds - SETTLE_S) * 1000))
    elapsed = time.monotonic() - start
    return Phase((window.inference.frames_processed - frames) / elapsed, (time.thread_time() - gui) / elapsed,
                 (time.process_time() - process) / elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=WALK)
    parser.add_argument("--phase-s", type=float, default=6.0, help="length of each phase")
    parser.add_argument("--pairs", type=int, default=10, help="closed/open pairs")
    parser.add_argument("--size", default="1280x800", help="window size WxH")
    args = parser.parse_args()
    from PyQt6.QtWidgets import QApplication

    import app  # noqa: F401  (first: it undoes OpenCV's Qt plugin path before a QApplication exists)

    qt = QApplication.instance() or QApplication([])
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
            closed.append(phase(window, False, args.phase_s))
            opened.append(phase(window, True, args.phase_s))
        redraws, label = window.analysis.redraws, window.model_label.text()
        close_window(window)
    qt.processEvents()
    print(f"{args.video.name}, default settings ({label}), window {args.size}, platform "
          f"{os.environ['QT_QPA_PLATFORM']}; load average {os.getloadavg()[0]:.2f}")
    for name, phases in (("closed", closed), ("open  ", opened)):
        print(f"dock {name} FPS per phase: " + " ".join(f"{p.fps:.1f}" for p in phases))
    shut, shown = (statistics.median(p.fps for p in phases) for phases in (closed, opened))
    pairs = statistics.median(o.fps / c.fps for o, c in zip(opened, closed))
    print(f"median FPS closed {shut:.1f}, open {shown:.1f}: open / closed = {shown / shut:.3f}, median of the "
          f"{args.pairs} pairs' ratios {pairs:.3f} (target >= 0.95)")
    gui = [statistics.median(p.gui_cpu for p in phases) * 1e3 for phases in (closed, opened)]
    cpu = [statistics.median(p.process_cpu for p in phases) for phases in (closed, opened)]
    print(f"GUI thread CPU ms per second: closed {gui[0]:.0f}, open {gui[1]:.0f} (the dock: {gui[1] - gui[0]:.0f} ms/s, "
          f"{(gui[1] - gui[0]) / 1e3 / cpu[0] * 100:.1f} % of the {cpu[0]:.2f} CPU s/s the window uses with it closed)")
    print(f"dock redraws: {redraws} in {args.pairs * args.phase_s:.0f} s open (settling included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
