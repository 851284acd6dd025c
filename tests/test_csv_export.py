"""lpn_core/csv_export.py: one row per person per frame, read back by pandas with no options; a full disk or
an interrupted run leaves every complete row and nothing half-written."""
from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest

from lpn_core.angles import ANGLE_NAMES, joint_angles
from lpn_core.csv_export import CSV_COLUMNS, CsvWriter
from lpn_core.draw import KEYPOINT_NAMES
from lpn_core.errors import OutputError
from lpn_core.types import FrameResult, Pose


def result(index: int, people: int, rng: np.random.Generator) -> FrameResult:
    poses = []
    for p in range(people):
        kpts = np.column_stack([rng.uniform(0, 640, 17), rng.uniform(0, 480, 17), rng.uniform(0, 1, 17)])
        box = np.array([10 + p, 20, 300, 460], np.float32)
        poses.append(Pose(kpts.astype(np.float32), box, 0.5 + 0.1 * p, track_id=None if p == 2 else p + 1))
    return FrameResult(index, np.zeros((480, 640, 3), np.uint8), poses)


def test_columns() -> None:
    assert CSV_COLUMNS[:8] == ("frame", "time_s", "id", "x1", "y1", "x2", "y2", "score")
    assert len(CSV_COLUMNS) == 8 + 17 * 3 + len(ANGLE_NAMES) and len(set(CSV_COLUMNS)) == len(CSV_COLUMNS)
    assert "left_knee_score" in CSV_COLUMNS and "right_elbow_angle" in CSV_COLUMNS


def test_round_trip_through_pandas(tmp_path) -> None:
    rng = np.random.default_rng(1)
    results = [result(i, people=i % 4, rng=rng) for i in range(6)]  # frames with 0 to 3 people
    with CsvWriter(tmp_path / "poses.csv") as writer:
        for r in results:
            writer.write(r, time_s=r.index / 30)
    table = pd.read_csv(tmp_path / "poses.csv")
    assert tuple(table.columns) == CSV_COLUMNS
    assert len(table) == writer.rows == sum(len(r.poses) for r in results) and writer.frames == 6
    assert table["frame"].tolist() == [r.index for r in results for _ in r.poses]
    assert table["id"].isna().sum() == sum(len(r.poses) > 2 for r in results)  # no track id: an empty cell
    rows = [(r, pose) for r in results for pose in r.poses]
    keypoints = np.stack([pose.keypoints for _, pose in rows])
    for j, name in enumerate(KEYPOINT_NAMES):
        assert np.allclose(table[f"{name}_x"], keypoints[:, j, 0], atol=0.006)
        assert np.allclose(table[f"{name}_score"], keypoints[:, j, 2], atol=6e-5)
    angles, _ = joint_angles(keypoints)
    assert np.allclose(table[[f"{n}_angle" for n in ANGLE_NAMES]].to_numpy(), angles, atol=0.06)
    assert np.allclose(table["time_s"], [r.index / 30 for r, _ in rows], atol=1e-4)
    assert np.allclose(table[["x1", "y1", "x2", "y2"]], np.stack([pose.box for _, pose in rows]))


class FailingFile:
    """A writer's file whose next write stores ``room`` bytes, then fails like write(2) on a full disk."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        self.file.write(bytes(data[:self.room]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def test_a_full_disk_keeps_every_complete_row(tmp_path) -> None:
    rng = np.random.default_rng(2)
    writer = CsvWriter(tmp_path / "poses.csv")
    writer.write(result(0, 2, rng), 0.0)
    writer._file = FailingFile(writer._file, room=100)  # half a row reaches the disk
    with pytest.raises(OutputError, match="keeps the 2 rows"):
        writer.write(result(1, 2, rng), 0.1)
    writer._file = writer._file.file
    writer.close()
    table = pd.read_csv(tmp_path / "poses.csv")
    assert len(table) == 2 and table["frame"].tolist() == [0, 0]


def test_interrupted_mid_frame_keeps_the_frames_before(tmp_path) -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(KeyboardInterrupt):
        with CsvWriter(tmp_path / "poses.csv") as writer:
            for i in range(3):
                writer.write(result(i, 1, rng), i / 30)
            writer._file.write(b"3,0.1,1,12.5,4")  # Ctrl-C after part of a row reached the file
            raise KeyboardInterrupt
    table = pd.read_csv(tmp_path / "poses.csv")
    assert table["frame"].tolist() == [0, 1, 2]


def test_unwritable_path_is_one_line(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write") as info:
        CsvWriter(blocker / "poses.csv")
    assert "\n" not in str(info.value)
