"""Screenshot of the real window: ``python -m benchmarks.app_screenshot VIDEO docs/screenshot.png``.

Opens the app's MainWindow on a video (offscreen unless a display is set), waits until ``--frames`` frames
have been shown, lets the status bar settle, and saves ``QWidget.grab()`` of the whole window as PNG.
Default settings (bundled weights and detector) unless flags say otherwise.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=40, help="frames shown before the grab")
    p.add_argument("--model", default="lpn50")
    p.add_argument("--size", default="1280x800", help="window size WxH")
    args = p.parse_args(argv)

    from PyQt6.QtWidgets import QApplication

    from app import MainWindow
    from app.settings import open_store
    from lpn_core.pipeline import PipelineSettings

    qt = QApplication.instance() or QApplication([])
    store = open_store(Path(os.environ.get("TMPDIR", "/tmp")) / "lpn-pose-screenshot.ini")
    window = MainWindow(PipelineSettings(model=args.model), args.video, store=store)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    deadline = time.monotonic() + 300
    while window.frames_shown < args.frames and time.monotonic() < deadline:
        qt.processEvents()
        time.sleep(0.01)
    for _ in range(50):  # let labels and the status bar repaint
        qt.processEvents()
        time.sleep(0.01)
    ok = window.grab().save(args.out, "PNG")
    print(f"{'saved' if ok else 'could not save'} {args.out} after {window.frames_shown} frames")
    window.close()
    window.loader.join(120)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
