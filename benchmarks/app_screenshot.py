"""Screenshot of the real window under an X server, as a user sees it:

    xvfb-run -s "-screen 0 1280x800x24" python -m benchmarks.app_screenshot \\
        ../shared/data/videos/walk_away_720p.mp4 docs/screenshot.png

Opens the app's MainWindow on a video with default settings (a fresh settings store: bundled weights and
detector, nothing remembered) and the analysis dock open, waits until ``--frames`` frames have been shown
or the video has played to its end, lets the status bar settle, and saves what the X server shows of the window (``QScreen.grabWindow``) as
PNG. It refuses to run offscreen: an offscreen grab skips the platform's own rendering.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=90, help="frames shown before the grab")
    p.add_argument("--size", default="1280x800", help="window size WxH")
    p.add_argument("--dock", action=argparse.BooleanOptionalAction, default=True, help="the analysis dock open")
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        print("error: run under an X server (QT_QPA_PLATFORM unset or xcb), e.g. "
              "xvfb-run -s '-screen 0 1280x800x24' python -m benchmarks.app_screenshot VIDEO OUT", file=sys.stderr)
        return 2

    from PyQt6.QtWidgets import QApplication

    from app import MainWindow
    from app.settings import open_store
    from lpn_core.pipeline import PipelineSettings

    qt = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(PipelineSettings(), args.video, store=open_store(Path(tmp) / "settings.ini"))
        width, height = (int(v) for v in args.size.split("x"))
        window.move(0, 0)
        window.resize(width, height)
        window.show_box.analysis_check.setChecked(args.dock)
        window.show()
        deadline, progress = time.monotonic() + 300, window.source_box.progress
        played = lambda: progress.isVisible() and progress.value() >= progress.maximum()  # noqa: E731
        while window.frames_shown < args.frames and not played() and time.monotonic() < deadline:
            qt.processEvents()
            time.sleep(0.01)
        for _ in range(50):  # let labels, plots and the status bar repaint
            qt.processEvents()
            time.sleep(0.01)
        image = window.screen().grabWindow(window.winId())
        ok = image.save(args.out, "PNG")
        print(f"{'saved' if ok else 'could not save'} {args.out} ({image.width()}x{image.height()}) after "
              f"{window.frames_shown} frames on {qt.platformName()}")
        window.close()
        window.loader.join(120)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
