"""app/view.py: numpy BGR -> QImage (owning a copy) -> painted to fit."""
from __future__ import annotations

import numpy as np
import pytest

from app.view import FrameView, to_qimage


def test_to_qimage_keeps_bgr_order_and_size() -> None:
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[1, 2] = (255, 0, 0)  # blue in BGR
    frame[3, 5] = (0, 0, 255)  # red
    image = to_qimage(frame)
    assert (image.width(), image.height()) == (6, 4)
    blue, red = image.pixelColor(2, 1), image.pixelColor(5, 3)
    assert (blue.red(), blue.green(), blue.blue()) == (0, 0, 255)
    assert (red.red(), red.green(), red.blue()) == (255, 0, 0)


def test_to_qimage_copies_so_the_array_can_be_reused() -> None:
    frame = np.full((8, 8, 3), 10, np.uint8)
    image = to_qimage(frame)
    frame[:] = 200  # the producer thread reuses its buffer
    assert image.pixelColor(0, 0).red() == 10


def test_to_qimage_accepts_views_and_gray_rejects_other_shapes() -> None:
    big = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    view = big[5:15, 3:25]  # not contiguous
    image = to_qimage(view)
    assert image.pixelColor(0, 0).blue() == view[0, 0, 0]
    assert to_qimage(np.zeros((5, 7), np.uint8)).width() == 7
    with pytest.raises(ValueError, match="uint8"):
        to_qimage(np.zeros((5, 7, 4), np.uint8))


def test_view_paints_frame_scaled_with_borders(qtbot) -> None:
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(600, 200)
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:] = (0, 255, 0)
    view.show_frame(frame)
    grabbed = view.grab().toImage()
    centre, edge = grabbed.pixelColor(300, 100), grabbed.pixelColor(5, 100)
    assert centre.green() > 200 and centre.red() < 50
    assert (edge.red(), edge.green(), edge.blue()) == (0, 0, 0)  # aspect kept: black borders
    assert view.image_rect().width() == pytest.approx(200)
