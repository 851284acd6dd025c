"""LPN Pose desktop app (PyQt6). Only this package imports Qt; pose logic lives in lpn_core.

``run_gui(settings, source)`` is what ``main.py`` calls. ``main_window.py`` wires the panels
(``source_box.py``, ``controls.py``, ``outputs.py``), the analysis dock (``analysis.py``), the status bar
(``status.py``) and the threads (``capture.py``, ``workers.py``, ``loader.py``); ``view.py`` is the only
place a frame becomes a Qt object; ``settings.py`` holds what the window remembers. Map and threads:
docs/APP.md.
"""
from __future__ import annotations

import os


def _undo_opencv_qt_paths() -> None:
    """opencv-python points Qt at its own bundled (Qt5, xcb-only) plugins and fonts when cv2 is imported.

    PyQt6 would then load cv2's ``libqxcb.so`` on X11 and abort, so the variables are removed again
    before any QApplication exists. Variables a user set to something else are left alone.
    """
    import cv2  # noqa: F401  (importing it is what sets the variables)

    for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR"):
        if "cv2" in os.environ.get(var, ""):
            del os.environ[var]


_undo_opencv_qt_paths()

from .main_window import MainWindow, run_gui  # noqa: E402  (after the environment fix above)

__all__ = ["MainWindow", "run_gui"]
