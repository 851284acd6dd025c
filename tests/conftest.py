"""Shared fixtures: real data from ../shared/data (never copied into the repository)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: never reach for the network in tests

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LPN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared/data; fails the test (never skips) if it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"test data missing: expected {path} (set LPN_SHARED_DATA to the shared data folder)")
    return path


@pytest.fixture
def shared() -> callable:
    """``shared('videos/walk_away_720p.mp4')`` -> Path, failing with the expected location if absent."""
    return shared_path


@pytest.fixture
def make_window(qtbot, tmp_path):
    """``make_window(source, **settings)``: an app window (untrained LPN, no detector unless given) with its
    settings in a tmp INI file; closed, and its model builds joined, at the end of the test."""
    from app import MainWindow
    from app.settings import open_store
    from lpn_core.pipeline import PipelineSettings

    windows = []

    def make(source=None, store_name: str = "settings.ini", **settings) -> MainWindow:
        base = dict(weights="untrained", detector="none", backend="onnx")
        window = MainWindow(PipelineSettings(**{**base, **settings}), source,
                            store=open_store(tmp_path / store_name))
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert window.loader.join(120), "a model build did not finish"  # as run_gui does before exiting


def wait_frames(qtbot, window, count: int, timeout_ms: int = 90000) -> None:
    """Wait until ``count`` more frames have been painted."""
    target = window.frames_shown + count
    qtbot.waitUntil(lambda: window.frames_shown >= target, timeout=timeout_ms)
