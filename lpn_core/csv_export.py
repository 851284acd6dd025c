"""Keypoints as CSV: one row per person per frame, readable by any spreadsheet or ``pandas.read_csv(path)``.

Columns: frame, time_s, id, x1, y1, x2, y2, score, then ``<joint>_x``, ``<joint>_y``, ``<joint>_score`` for
the 17 COCO keypoints (frame pixels), then ``<joint>_angle`` in degrees for the joint angles of
``lpn_core.angles``. An unknown value (no track id, no timestamp, an angle of a zero-length limb) is an
empty cell. Shared by the CLI (``--csv``) and the window's CSV export.
"""
from __future__ import annotations

import csv
import errno
import io
import os
from pathlib import Path
from typing import Final

import numpy as np

from .angles import ANGLE_NAMES, joint_angles
from .draw import KEYPOINT_NAMES
from .errors import OutputError
from .stream import prepare_output
from .types import FrameResult

CSV_COLUMNS: Final = (
    "frame", "time_s", "id", "x1", "y1", "x2", "y2", "score",
    *(f"{name}_{part}" for name in KEYPOINT_NAMES for part in ("x", "y", "score")),
    *(f"{name}_angle" for name in ANGLE_NAMES),
)


def _cell(value: float, digits: int) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def csv_rows(result: FrameResult, time_s: float | None) -> list[list[str]]:
    """The rows of one frame, as text cells in CSV_COLUMNS order (x, y, box: 2 decimals; scores: 4; angles: 1)."""
    if not result.poses:
        return []
    angles, _ = joint_angles(np.stack([pose.keypoints for pose in result.poses]))
    rows = []
    for pose, pose_angles in zip(result.poses, angles):
        kpts = np.asarray(pose.keypoints, np.float64)
        rows.append([
            str(result.index), _cell(time_s, 4), "" if pose.track_id is None else str(pose.track_id),
            *(_cell(v, 2) for v in np.asarray(pose.box, np.float64)), _cell(float(pose.score), 4),
            *(_cell(v, 4 if i % 3 == 2 else 2) for i, v in enumerate(kpts[:, :3].reshape(-1))),
            *(_cell(float(a), 1) for a in pose_angles),
        ])
    return rows


class CsvWriter:
    """Appends each frame's rows to ``path``; whatever stops the run (Ctrl-C, a crash, a full disk), the file
    holds the header and every complete row written before it.

    Each frame's rows go to the OS in one unbuffered write; ``close()`` cuts off a row a failed or interrupted
    write left half-written. A failed write raises OutputError (one line) and keeps the rows before it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        prepare_output(self.path)
        try:
            self._file = open(self.path, "wb", buffering=0)
        except OSError as exc:
            raise OutputError(f"cannot write '{self.path}': {exc.strerror or exc}; choose a writable folder") from exc
        self.rows = self.frames = 0
        self._end = 0  # bytes of complete rows
        self._append([list(CSV_COLUMNS)])

    def write(self, result: FrameResult, time_s: float | None = None) -> None:
        """The rows of every person in ``result`` (none for a frame without people)."""
        rows = csv_rows(result, time_s)
        self._append(rows)
        self.rows += len(rows)
        self.frames += 1

    def _append(self, rows: list[list[str]]) -> None:
        if self._file is None:
            raise OutputError(f"'{self.path}' is already closed")
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        view = memoryview(text.getvalue().encode())
        size = len(view)
        try:
            self._file.seek(self._end)
            while view:
                written = self._file.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
        except OSError as exc:
            self._cut_partial_row()
            raise OutputError(f"cannot write '{self.path}': {exc.strerror or exc}; it keeps the {self.rows} "
                              "rows before it") from exc
        self._end += size

    def _cut_partial_row(self) -> None:
        """Truncate to the end of the last complete frame (best effort: a failing disk may refuse even that)."""
        try:
            self._file.truncate(self._end)
        except OSError:
            pass

    def close(self) -> None:
        if self._file is not None:
            self._cut_partial_row()
            self._file.close()
            self._file = None

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
