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
