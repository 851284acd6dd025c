"""What the window shows, offscreen on real videos: status bar sections that never overlap and say each fact
once (1280x800 and 1920x1080), dropdown texts that fit, the HUD's size rule and its switch, cameras listed
by name, a video dropped on the window."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl
from PyQt6.QtGui import QDropEvent
from PyQt6.QtWidgets import QApplication, QComboBox, QLabel

from app import cameras
from lpn_core.draw import HUD_MAX_SHARE, draw_untrained_banner
from tests.conftest import shared_path, wait_frames

WALK = "videos/walk_away_720p.mp4"        # 1280x720
TREADMILL = "videos/treadmill_360p.mp4"   # 480x360
LONG_ERROR = "cannot write '/a/very/long/path/" + "deeply/nested/" * 12 + "poses.mp4': No space left on device"


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_status_bar_sections_never_overlap_and_say_each_fact_once(qtbot, make_window, size) -> None:
    window = make_window(str(shared_path(WALK)))
    window.resize(*size)
    wait_frames(qtbot, window, 3)
    window.show_error(LONG_ERROR)
    qtbot.wait(100)
    bar = window.statusBar()
    sections = [label for label in bar.sections if label.isVisible()]
    assert len(sections) == 5 and window.width() == size[0]
    for a, b in itertools.combinations(sections, 2):
        assert not a.geometry().intersects(b.geometry()), (a.text(), b.text())
    for label in sections:
        assert label.geometry().right() < bar.width()
        painted = QLabel.text(label)  # what is drawn, elided where the section is too narrow
        assert label.fontMetrics().horizontalAdvance(painted) <= label.width(), painted
    texts = [label.text() for label in sections]
    assert sum("LPN-50" in text for text in texts) == 1 and sum("FPS" in text for text in texts) == 1
    assert bar.currentMessage() == f"Error: {LONG_ERROR}" and "…" in QLabel.text(bar.message_label)


def test_dropdown_texts_fit(qtbot, make_window) -> None:
    window = make_window(None)
    qtbot.wait(100)
    boxes = window.findChildren(QComboBox)
    assert len(boxes) >= 4
    for box in boxes:
        if box.isVisible() and box.sizeAdjustPolicy() == QComboBox.SizeAdjustPolicy.AdjustToContents:
            widest = max(box.fontMetrics().horizontalAdvance(box.itemText(i)) for i in range(box.count()))
            assert box.width() >= box.sizeHint().width() and box.width() > widest, box.currentText()


def hud_rows(image: np.ndarray, frame: np.ndarray) -> int:
    """Rows of the readout in the overlay: changed rows at the left edge, below the untrained banner."""
    banner = draw_untrained_banner(frame.copy())
    changed = np.flatnonzero((image[banner:, 1] != frame[banner:, 1]).any(axis=1))
    return int(changed.max()) + 1 if len(changed) else 0


@pytest.mark.parametrize("video", [TREADMILL, WALK])
def test_hud_follows_the_frame_and_can_be_hidden(qtbot, make_window, video) -> None:
    window = make_window(str(shared_path(video)))
    window.source_box.loop_check.setChecked(True)
    for box in (window.show_box.boxes_check, window.show_box.ids_check):
        box.setChecked(False)
    window.model_box.kpt_slider.setValue(100)  # no joints drawn: only the readout changes the frame
    wait_frames(qtbot, window, 2)
    rendered = window.last_rendered
    height = rendered.image.shape[0]
    rows = hud_rows(rendered.image, rendered.result.frame)
    assert 0.05 * height < rows <= HUD_MAX_SHARE * height, (rows, height)

    qtbot.keyClick(window, Qt.Key.Key_H)  # the key and the checkbox are one switch
    assert not window.show_box.hud_check.isChecked() and not window.state.show_hud
    qtbot.waitUntil(lambda: hud_rows(window.last_rendered.image, window.last_rendered.result.frame) == 0,
                    timeout=15000)
    window.show_box.hud_check.setChecked(True)
    qtbot.waitUntil(lambda: hud_rows(window.last_rendered.image, window.last_rendered.result.frame) > 0,
                    timeout=15000)


def test_cameras_by_name_and_a_camera_that_disappeared(qtbot, make_window, monkeypatch) -> None:
    monkeypatch.setattr(cameras, "list_cameras", lambda: [cameras.Camera(57, "Ghost Cam"),
                                                          cameras.Camera(3, "Desk Camera")])
    window = make_window(None)
    window.source_box.refresh_cameras()
    combo = window.source_box.camera_combo
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels == ["Camera (0)", "Desk Camera (3)", "Ghost Cam (57)"]  # camera 0 stays: the last one used
    combo.setCurrentIndex(combo.findData(57))
    window.source_box.camera_button.click()  # listed, but not there any more
    status = window.statusBar().currentMessage
    qtbot.waitUntil(lambda: "camera 57" in status(), timeout=20000)
    assert status().startswith("Error: cannot open camera 57") and "\n" not in status()
    assert window.state.camera_index == 57


def test_a_video_dropped_on_the_window_opens(qtbot, make_window) -> None:
    window = make_window(None)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(shared_path(TREADMILL)))])
    for kind in (QDropEvent.Type.DragEnter, QDropEvent.Type.Drop):
        event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier, kind)
        QApplication.sendEvent(window, event)
        assert event.isAccepted()
    qtbot.waitUntil(lambda: window.source_info is not None, timeout=20000)
    assert window.source_info.size == (480, 360) and window.state.last_source.endswith("treadmill_360p.mp4")
    wait_frames(qtbot, window, 1)
