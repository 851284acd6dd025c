"""The analysis dock: one person's joint angles, as numbers and as curves over the last 10 s, and the
pipeline's stage times (detect / infer / draw).

Samples are taken from the frames the window paints (``add``, a few numpy operations on one person); the
curves are redrawn by a timer REFRESH_HZ times a second, and only while the dock is visible. A redraw costs
the GUI thread a few milliseconds (measured with benchmarks/bench_dock.py), which on a small CPU is time
the pipeline does not get: hence one plot widget for the three plots, the joint table as the legend, and
5 redraws a second, smooth enough for 10 s curves. Plotting: pyqtgraph (https://www.pyqtgraph.org).
"""
from __future__ import annotations

import time
from collections import deque
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import (QDockWidget, QGridLayout, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget)

from lpn_core.angles import ANGLE_NAMES, joint_angles
from lpn_core.draw import LEFT, RIGHT
from lpn_core.types import Pose

from .workers import Rendered

HISTORY_S = 10.0
REFRESH_HZ = 5  # at most 10 (the brief); each redraw costs the GUI thread ~5-10 ms on 2 cores
LEGS = ("left_knee", "right_knee", "left_hip", "right_hip")
ARMS = ("left_elbow", "right_elbow", "left_shoulder", "right_shoulder")
TIMED = ("detect", "infer", "draw")
TIMING_COLORS = {"detect": "#7850c8", "infer": "#009646", "draw": "#c83c3c"}


def side_color(name: str) -> str:
    """The overlay's side colours as #rrggbb: left orange, right blue."""
    b, g, r = LEFT if name.startswith("left") else RIGHT
    return f"#{r:02x}{g:02x}{b:02x}"


def dashed(name: str) -> bool:
    """Knees and elbows are solid curves, hips and shoulders dashed."""
    return name.endswith(("hip", "shoulder"))


def angle_pen(name: str) -> pg.mkPen:
    return pg.mkPen(side_color(name), width=2, style=Qt.PenStyle.DashLine if dashed(name) else Qt.PenStyle.SolidLine)


def legend_html(names: Sequence[str], colors: dict[str, str]) -> str:
    return " ".join(f"<span style='color:{colors[name]}'>{name}</span>" for name in names)


def person_at(poses: Sequence[Pose], x: float, y: float) -> int | None:
    """Track id of the person whose box holds (x, y) (the smallest box when several do), or None."""
    hits = [(float((p.box[2] - p.box[0]) * (p.box[3] - p.box[1])), p.track_id) for p in poses
            if p.track_id is not None and p.box[0] <= x <= p.box[2] and p.box[1] <= y <= p.box[3]]
    return min(hits)[1] if hits else None


def follow(poses: Sequence[Pose], wanted: int, current: int | None) -> Pose | None:
    """The person to analyse: id ``wanted`` (0: automatic, keep ``current`` while it is in view, else the
    largest box)."""
    by_id = {p.track_id: p for p in poses if p.track_id is not None}
    if wanted:
        return by_id.get(wanted)
    if current in by_id:
        return by_id[current]
    return max(by_id.values(), key=lambda p: float((p.box[2] - p.box[0]) * (p.box[3] - p.box[1])), default=None)


class History:
    """(time s, values) samples of the last HISTORY_S seconds."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._samples: deque[tuple[float, np.ndarray]] = deque()

    def add(self, t: float, values: np.ndarray) -> None:
        self._samples.append((t, values))
        while self._samples and self._samples[0][0] < t - HISTORY_S:
            self._samples.popleft()

    def clear(self) -> None:
        self._samples.clear()

    def arrays(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Seconds before ``now`` (n,) and the values (n, width)."""
        if not self._samples:
            return np.zeros(0), np.zeros((0, self.width))
        times, values = zip(*self._samples)
        return np.asarray(times) - now, np.stack(values)


class AnalysisDock(QDockWidget):
    """Pick a person (an id, 0 = automatic, or a click on them in the view) and watch their joint angles."""

    def __init__(self, kpt_thr: float, parent: QWidget | None = None) -> None:
        super().__init__("Analysis", parent)
        self.setObjectName("analysis")
        self.threshold = kpt_thr  # angles whose weakest joint scores below it are greyed, and gaps in curves
        self._angles, self._times = History(2 * len(ANGLE_NAMES)), History(len(TIMED))
        self._following: int | None = None  # whose angles the curves hold (kept while briefly out of view)
        self._in_view = False
        self._dirty = False
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.addLayout(self._numbers_panel())
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.plots.setMinimumSize(360, 120)
        self.legs_plot = self._plot("Legs, ° (last 10 s)", (0, 180), {name: angle_pen(name) for name in LEGS})
        self.arms_plot = self._plot("Arms, ° (last 10 s)", (0, 180), {name: angle_pen(name) for name in ARMS})
        self.timing_plot = self._plot("ms: " + legend_html(TIMED, TIMING_COLORS), None,
                                      {name: pg.mkPen(color, width=2) for name, color in TIMING_COLORS.items()})
        layout.addWidget(self.plots, 1)
        self.setWidget(body)
        self.timer = QTimer(self)
        self.timer.setInterval(1000 // REFRESH_HZ)
        self.timer.timeout.connect(self.refresh)
        self.visibilityChanged.connect(lambda visible: self.timer.start() if visible else self.timer.stop())
        self.redraws = 0  # curve refreshes so far (tests check the rate)

    def _numbers_panel(self) -> QVBoxLayout:
        column = QVBoxLayout()
        picker = QHBoxLayout()
        self.person_spin = QSpinBox()
        self.person_spin.setRange(0, 99999)
        self.person_spin.setSpecialValueText("Auto")
        self.person_spin.setPrefix("#")
        self.person_spin.setToolTip("Track id to follow (Auto: the largest person); or click on someone")
        self.person_spin.valueChanged.connect(self._on_person)
        self.following_label = QLabel("nobody in view")
        picker.addWidget(QLabel("Person"))
        picker.addWidget(self.person_spin)
        column.addLayout(picker)
        column.addWidget(self.following_label)
        grid = QGridLayout()
        grid.addWidget(QLabel("<b>joint</b>"), 0, 0)
        grid.addWidget(QLabel("<b>angle</b>"), 0, 1)
        grid.addWidget(QLabel("<b>score</b>"), 0, 2)
        self.value_labels: dict[str, tuple[QLabel, QLabel]] = {}
        widest = self.fontMetrics().horizontalAdvance("180°  ")
        for row, name in enumerate(LEGS + ARMS, start=1):  # the joint names, in their curves' colour and line
            side, joint = name.split("_")
            line = "╍" if dashed(name) else "━"
            grid.addWidget(QLabel(f"<span style='color:{side_color(name)}'>{line} {side[0].upper()} {joint}</span>"),
                           row, 0)
            labels = self.value_labels[name] = (QLabel("–"), QLabel("–"))
            for col, label in enumerate(labels, start=1):
                label.setAlignment(Qt.AlignmentFlag.AlignRight)
                label.setFixedWidth(widest)  # changing numbers never re-lay out the dock
                grid.addWidget(label, row, col)
        column.addLayout(grid)
        column.addStretch(1)
        return column

    def _plot(self, title: str, y_range: tuple[float, float] | None, pens: dict) -> pg.PlotItem:
        """A plot of the last HISTORY_S seconds with one curve per pen (kept in ``self.curves``)."""
        plot = self.plots.addPlot(title=title)
        plot.titleLabel.setText(title, color="k", size="9pt")
        plot.setXRange(-HISTORY_S, 0, padding=0)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        if y_range is not None:
            plot.setYRange(*y_range, padding=0.02)
        for name, pen in pens.items():
            self.curves[name] = plot.plot(pen=pen)
        return plot

    # --- input, from the window (GUI thread) -------------------------------------------------------
    def add(self, rendered: Rendered, now: float | None = None) -> None:
        """Take one painted frame's sample; nothing at all while the dock is hidden."""
        if not self.isVisible():
            return
        now = time.monotonic() if now is None else now
        pose = follow(rendered.result.poses, self.person_spin.value(), self._following)
        self._in_view = pose is not None
        if pose is not None and pose.track_id != self._following:
            self._angles.clear()  # another person: their curves start afresh
            self._following = pose.track_id
        if pose is not None:
            angles, scores = joint_angles(pose.keypoints)
            self._angles.add(now, np.concatenate([angles, scores]))
        self._times.add(now, np.array([rendered.times_ms.get(stage, np.nan) for stage in TIMED]))
        self._dirty = True

    def pick_at(self, poses: Sequence[Pose], x: float, y: float) -> int | None:
        """Follow the person at frame pixel (x, y), if anyone is there; their id, or None."""
        track_id = person_at(poses, x, y)
        if track_id is not None:
            self.person_spin.setValue(track_id)
        return track_id

    def _on_person(self, _: int) -> None:
        self._angles.clear()
        self._following = None
        self._dirty = True

    # --- output, at most REFRESH_HZ ----------------------------------------------------------------
    def refresh(self, now: float | None = None) -> None:
        """Redraw numbers and curves if a sample came since the last redraw."""
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        now = time.monotonic() if now is None else now
        x, samples = self._angles.arrays(now)
        count = len(ANGLE_NAMES)
        angles, scores = samples[:, :count], samples[:, count:]
        shown = np.where(scores >= self.threshold, angles, np.nan)  # weak joints: a gap, not a guess
        for i, name in enumerate(ANGLE_NAMES):
            self.curves[name].setData(x, shown[:, i], connect="finite")
        tx, times = self._times.arrays(now)
        for i, stage in enumerate(TIMED):
            self.curves[stage].setData(tx, times[:, i], connect="finite")
        self._show_numbers(angles[-1] if len(angles) else None, scores[-1] if len(scores) else None)

    def _show_numbers(self, angles: np.ndarray | None, scores: np.ndarray | None) -> None:
        if self._following is None:
            self.following_label.setText("nobody in view")
        else:
            self.following_label.setText(f"following #{self._following}" + ("" if self._in_view else " (not in view)"))
        for name, (value_label, score_label) in self.value_labels.items():
            i = ANGLE_NAMES.index(name)
            if angles is None or not self._in_view:
                value_label.setText("–")
                score_label.setText("–")
                continue
            style = "" if scores[i] >= self.threshold else "color: gray"
            value_label.setText("–" if np.isnan(angles[i]) else f"{angles[i]:.0f}°")
            score_label.setText(f"{scores[i]:.2f}")
            for label in (value_label, score_label):
                if label.styleSheet() != style:
                    label.setStyleSheet(style)
